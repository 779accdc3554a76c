"""Running the service in containers: the image's entrypoint (the Dockerfile is at the repository root)."""
