# The model registry as a container: gunicorn with the repository's gunicorn.conf.py on port 8000,
# every piece of state under the volume /data, run as a non-root user.
#
#   docker build -t model-registry \
#     --build-arg VERSION="$(git describe --always --dirty)" --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE="$(git remote get-url origin)" .
#   docker run -p 8000:8000 -v registry-data:/data model-registry
#
# BASE is any Debian bookworm image with Python 3.11 and its venv module: the public default, or a local
# one where no registry can be reached (the tests build on a debootstrap image: bench/harness/containers.py).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# The C compiler that builds the tree walker into the package (setup.py), with the base's own C library.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# The pinned runtime requirements first, in a layer of their own: rebuilt only when requirements.txt changes.
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/pip install --no-cache-dir \
        --disable-pip-version-check -r /tmp/requirements.txt
# The Python client (client/), which the trainers' command line uses.
COPY client /tmp/client
RUN PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /tmp/client
# The service itself, as `pip install .` installs it anywhere (pyproject.toml); its requirements are there already.
COPY pyproject.toml setup.py README.md requirements.txt config.py wsgi.py /tmp/service/
COPY migrations /tmp/service/migrations
COPY deploy /tmp/service/deploy
COPY trainers /tmp/service/trainers
COPY registry /tmp/service/registry
COPY api /tmp/service/api
# Then only what running needs: without pip, setuptools, the packages' own test suites (about half of what
# NumPy, SciPy, pandas and scikit-learn install) or JavaScript source maps. pip compiled the bytecode: with a
# read-only root filesystem nothing could cache it later, and every start would compile the app again.
RUN PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        /tmp/service \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/venv -depth -type d -name tests -exec rm -rf {} + \
 && find /opt/venv -type f -name '*.map' -delete

FROM ${BASE}
RUN groupadd --system --gid 10001 registry \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin registry \
 && mkdir /data && chown registry:registry /data
COPY --from=build /opt/venv /opt/venv
# An empty directory the service's user cannot write: the working directory is on gunicorn's sys.path.
WORKDIR /app

# The service's own variables. With INSTANCE_DIR=/data the SQLite database is /data/registry.db, the
# admin token /data/admin_token, the dashboard's session key /data/secret_key and the node cache
# /data/artifact-cache; artifacts go to /data/artifacts. Set DATABASE_URL (or DATABASE_URL_FILE) for
# PostgreSQL and ARTIFACT_ROOT=s3://bucket/prefix for a fleet.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BIND=0.0.0.0:8000 \
    GRPC_BIND=0.0.0.0:8001 \
    INSTANCE_DIR=/data \
    ARTIFACT_ROOT=/data/artifacts
USER 10001:10001
VOLUME /data
EXPOSE 8000 8001
# SIGTERM is a graceful stop (gunicorn.conf.py): give `docker stop -t` more than DRAIN_SECONDS + GRACEFUL_TIMEOUT.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
ENTRYPOINT ["python3", "-m", "deploy.entrypoint"]

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=unknown
# podman build (buildah) reuses a cached LABEL layer whatever the arguments' values are; a RUN's cache
# key has them, so a build of another revision writes its own labels.
RUN true
LABEL org.opencontainers.image.title="model-registry" \
      org.opencontainers.image.description="A registry and prediction server for scikit-learn models" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
