"""The Docker daemon: the only package that imports the Docker SDK (build, tag, push, pull)."""
