# One image for the API (default command) and both agents:
#   python -m app | python -m agents.collector | python -m agents.cleanup
# The base is a build argument so CI can build from a local Debian base:
#   buildah bud --build-arg BASE_IMAGE=localhost/debian-python:3.11 -t cloudnative-journey:0.1.0 .
ARG BASE_IMAGE=python:3.11-slim

# ---- builder: turns the project and its dependencies into wheels ------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The package metadata first: the dependency layer is reused while only code changes.
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
# Every dependency as a wheel (binary ones from PyPI, pure-Python sdists built
# here): the runtime stage installs offline from /wheels and needs no compiler.
RUN python -m pip wheel --wheel-dir /wheels .

# ---- runtime: the wheels installed, nothing else ----------------------------
FROM ${BASE_IMAGE} AS runtime
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="cloudnative-journey" \
      org.opencontainers.image.description="Cache-aside key/value API over Redis and PostgreSQL, with a node log collector and a cleanup job" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/cloudnative-journey/cloudnative-journey" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app
# The wheels are bind-mounted from the builder, so they never become a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels cloudnative-journey
# Nothing of the image is writable at run time; Kubernetes mounts /tmp.
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080 9102
CMD ["python", "-m", "app"]
