"""The build's inputs: the context as a streamed tar (honouring `.dockerignore`), the
Dockerfile, and the git facts that label an image."""
