"""The Distribution (registry) HTTP API: auth, manifests and blobs (digests from bytes), tag
lists, copies and mounts, and Docker Hub's pull rate limit headers."""
