# syntax=docker/dockerfile:1
# Countersign's image. By default it serves the web app (`countersign serve`, gunicorn on $PORT); the same image
# runs the job workers (`countersign worker`), the migrations (`countersign db upgrade`) and every other command.
#
#   docker build -t countersign .
#   docker run --env-file .env -p 8000:8000 countersign            (see compose.yaml for the whole setup)

# The Python the lock is resolved and tested with; both stages use the same image, so the venv's interpreter
# path in the build stage is the runtime stage's.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: Countersign's wheel and its runtime dependencies, pinned by requirements.lock, in a venv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock ./
# The build backend at the lock's version (tests/test_container.py keeps the two equal), instead of whatever
# pip's build isolation would download.
RUN python -m pip install --no-cache-dir setuptools==84.2.1
COPY pyproject.toml README.md ./
COPY gating ./gating
COPY jira_client ./jira_client
COPY simulators ./simulators
COPY templates ./templates
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .
# Wheels only (nothing compiled, so no compiler is needed), every version taken from the lock; the venv gets no
# pip of its own: the runtime stage installs nothing.
RUN python -m venv --without-pip /opt/countersign \
 && python -m pip --python /opt/countersign/bin/python install --no-cache-dir --only-binary=:all: \
        --constraint requirements.lock "$(ls /wheels/countersign_gate-*.whl)[postgres]"

# ---- runtime: the venv, a user without privileges, nothing to build with ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="Countersign" \
      org.opencontainers.image.description="Gates merges and deployments on Jira approvals; keeps the evidence." \
      org.opencontainers.image.licenses="Apache-2.0"
# The base image's installers are not needed to run, and are what scanners flag; a fixed uid lets Kubernetes'
# runAsNonRoot verify the user, and files mounted for it (the keys) be owned by it.
RUN python -m pip uninstall --yes --no-cache-dir setuptools wheel pip \
 && groupadd --system --gid 10001 countersign \
 && useradd --system --uid 10001 --gid countersign --home-dir /var/lib/countersign --create-home \
        --shell /usr/sbin/nologin countersign
COPY --from=build /opt/countersign /opt/countersign
ENV PATH=/opt/countersign/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000
WORKDIR /var/lib/countersign
USER 10001:10001
EXPOSE 8000
# Liveness of the web app; compose turns it off for the worker and migrate services, which serve no HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
ENTRYPOINT ["countersign"]
CMD ["serve"]
