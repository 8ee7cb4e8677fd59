# esm-poller image. Build: docker build -t esm-poller:0.1.0 .
# Run:   docker run --read-only --tmpfs /tmp -v esm-state:/var/lib/esm-poller \
#          -v "$PWD/poller.yaml:/etc/esm-poller/poller.yaml:ro" esm-poller:0.1.0
# The build steps live in docker/build.sh, which the tests also run on the host.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# A C compiler builds the Cython batcher; it stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY poller/ poller/
COPY docker/build.sh docker/build.sh
RUN docker/build.sh wheels /wheels && docker/build.sh install /wheels /opt/esm-poller

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="esm-poller" \
      org.opencontainers.image.description="Self-hosted AWS Lambda event source mapping service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}"
# poller runs as PID 1: it handles SIGTERM itself (drain, final checkpoint, exit 0) and starts
# no child processes, so no init process is needed. Everything it writes goes to the state
# volume (/var/lib/esm-poller); the root filesystem can be read-only.
RUN groupadd --system --gid 10001 poller \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/esm-poller --no-create-home \
       --shell /usr/sbin/nologin poller \
    && mkdir -p /var/lib/esm-poller /etc/esm-poller \
    && chown 10001:10001 /var/lib/esm-poller
COPY --from=builder /opt/esm-poller /opt/esm-poller
ENV PATH=/opt/esm-poller/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/esm-poller
WORKDIR /var/lib/esm-poller
USER 10001:10001
EXPOSE 9464
# Docker only (Kubernetes uses the chart's probes); assumes the default metrics.port 9464.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9464/healthz', timeout=2)"]
ENTRYPOINT ["poller"]
CMD ["run", "-c", "/etc/esm-poller/poller.yaml"]
