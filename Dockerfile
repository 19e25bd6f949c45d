# syntax=docker/dockerfile:1
# The zoom-worker image: `docker build -t zoom-worker .`
# Stage 1 builds the wheel and installs it with its pinned dependencies into /opt/venv;
# stage 2 copies only that environment, so no source tree, compiler or build tool ships.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY worker ./worker
COPY connect ./connect
COPY schemas ./schemas
COPY token_store ./token_store
COPY migrations ./migrations
# pip is not needed at run time (a smaller image has less to patch), so it leaves the venv.
RUN pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint constraints.txt /dist/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE} AS runtime
# Remove the base image's installers too: nothing is installed at run time.
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 zoomworker \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin zoomworker
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HTTP_PORT=8080
# Numeric, so Kubernetes can verify runAsNonRoot without resolving the name.
USER 10001:10001
WORKDIR /tmp
# /healthz, /readyz and /metrics of `zoom-worker run`; `serve` listens on SERVE_PORT (8000).
EXPOSE 8080
ENTRYPOINT ["zoom-worker"]
CMD ["run"]
