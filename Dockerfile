# stylebot on a CUDA GPU.
#   docker build -t stylebot .
#   docker run --gpus all --stop-timeout 60 --env-file .env -v stylebot-data:/data stylebot
# or `docker compose up` (docker-compose.yml). The layers that change least come first: the OS,
# torch (the same version CI tests), the other dependencies, the VGG-19 weights, then the code.
FROM python:3.11.7-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_HOME=/opt/torch

# tini: PID 1 that forwards SIGTERM to the bot and reaps worker processes
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# torch from PyPI ships its own CUDA runtime; only the NVIDIA driver comes from the host
RUN pip install "torch==2.14.1"

WORKDIR /app
COPY pyproject.toml ./
# the project's other dependencies, read from pyproject.toml, without the code
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(d for d in p['dependencies'] + p['optional-dependencies']['postgres'] if not d.startswith('torch')))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# torchvision's ImageNet VGG-19 weights (548 MB), checked against their hash
RUN python -c "import torch; torch.hub.download_url_to_file('https://download.pytorch.org/models/vgg19-dcbb9e9d.pth', '/opt/torch/hub/checkpoints/vgg19-dcbb9e9d.pth', hash_prefix='dcbb9e9d', progress=False)" \
    && chmod -R a+rX /opt/torch

COPY README.md LICENSE ./
COPY bot ./bot
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 stylebot \
    && mkdir -p /data && chown 10001 /data

USER 10001
VOLUME /data
ENV STYLEBOT_DATABASE_URL=sqlite+aiosqlite:////data/stylebot.db \
    STYLEBOT_HEALTH_PORT=8080 \
    STYLEBOT_HEALTH_HOST=0.0.0.0
EXPOSE 8080
# ready = gateway connected and a worker loaded (the first start loads VGG-19: give it time)
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 CMD ["stylebot", "health", "--port", "8080"]
# SIGTERM: stop taking jobs, let running ones finish for STYLEBOT_SHUTDOWN_GRACE (30 s), tell the
# members; run with --stop-timeout 60 (compose: stop_grace_period) so Docker waits for that
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--"]
CMD ["stylebot", "run"]
