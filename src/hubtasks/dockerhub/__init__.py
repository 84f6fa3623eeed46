"""Docker Hub's web API (hub.docker.com/v2): the repository page (`describe`) and tag
retention (`prune`, which also works on any Distribution registry)."""
