# syntax=docker/dockerfile:1
#
# fieldsync service image. Multi-stage: the builder makes a virtualenv and installs the fieldsync
# wheel (with its dependencies) into it, and the runtime copies only that virtualenv onto a
# python:3.11-slim base and runs it as an unprivileged user.
#
#   docker build -t fieldsync .
#   docker run -p 8000:8000 -v fieldsync-data:/data fieldsync          # embedded PostgreSQL in /data
#
# compose.yaml runs it with PostgreSQL 16 and MinIO instead; see docs/operations.md.
# This file has not been built in the development environment, which has no Docker engine.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/fieldsync-*.whl

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FIELDSYNC_DATA_DIR=/data
RUN groupadd --system --gid 10001 fieldsync \
 && useradd --system --uid 10001 --gid fieldsync --home-dir /data --no-create-home --shell /usr/sbin/nologin fieldsync \
 && mkdir -p /data \
 && chown fieldsync:fieldsync /data
COPY --from=builder /opt/venv /opt/venv
USER fieldsync
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# curl is not in the slim image; the standard library is.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
# uvicorn stops gracefully on SIGTERM (in-flight requests get up to 20 s), then the lifespan
# closes the pool and, in embedded mode, stops PostgreSQL.
STOPSIGNAL SIGTERM
CMD ["fieldsync", "serve", "--host", "0.0.0.0", "--port", "8000"]
