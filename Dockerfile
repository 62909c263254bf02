# stylebot on a CUDA GPU: `docker build -t stylebot .`
# `docker run --gpus all -e STYLEBOT_DISCORD_TOKEN=... -v stylebot-data:/data stylebot`
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TORCH_HOME=/opt/torch \
    STYLEBOT_DATABASE_URL=sqlite+aiosqlite:////data/stylebot.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
# torch and torchvision come with the base image; install the rest
RUN pip install '.[postgres]' \
    && stylebot download-weights \
    && chmod -R a+rX /opt/torch

RUN useradd --create-home --uid 10001 stylebot \
    && mkdir -p /data && chown stylebot /data
USER stylebot
VOLUME /data

CMD ["stylebot", "run"]
