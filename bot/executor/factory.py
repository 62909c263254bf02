"""make_executor(): the dispatcher over the backend the settings name, the local pool or Celery
workers."""

from __future__ import annotations

import logging

from bot.config import Settings, precision_cache_file
from bot.executor.dispatch import Dispatcher, ExecutorConfig
from bot.executor.pool import LocalExecutor
from bot.extras import require
from bot.logs import LogConfig
from bot.metrics import BotMetrics


def make_executor(settings: Settings, metrics: BotMetrics | None = None) -> Dispatcher:
    """The dispatcher over the backend the settings name, the local pool or Celery workers,
    counting into `metrics` (the bot's, which /metrics serves)."""
    config = ExecutorConfig(
        devices=settings.device_list,
        workers_per_device=settings.workers_per_device,
        threads_per_worker=settings.worker_threads,
        batch_size=settings.batch_size,
        shape_buckets=settings.shape_buckets,
        memory_limit=settings.memory_limit_bytes,
        max_queued=settings.max_queued,
        per_user_limit=settings.per_user_jobs,
        time_limit=settings.job_time_limit,
        weights=settings.vgg19_weights,
        precision=settings.precision,
        precision_cache=str(precision_cache_file()),
        image_limits=settings.image_limits,
        start_method=settings.worker_start,
        log=LogConfig(
            level=getattr(logging, settings.log_level), json=settings.log_format == "json"
        ),
    )
    if settings.executor == "celery":
        # Celery and Redis are an optional extra (stylebot[celery]): imported where chosen
        require("celery", "STYLEBOT_EXECUTOR=celery")
        from bot.executor.celery.backend import CeleryBackend

        return Dispatcher(
            CeleryBackend(settings.celery, cancel_grace=config.cancel_grace), config, metrics
        )
    return LocalExecutor(config, metrics)
