"""Running the service: its gunicorn settings, the ``model-registry`` command and the container's entrypoint
(the Dockerfile is at the repository root)."""
