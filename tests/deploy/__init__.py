"""Offline checks of the deployable stack (docker/): the Compose file, the Dockerfile, the Kubernetes example."""
