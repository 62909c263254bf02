"""The Celery app that the bot (to send) and `stylebot worker` (to run) both build.

Each setting below is one that was measured elsewhere as a pitfall when left at its default.
Celery is an optional extra (`stylebot[celery]`): this module is imported only where Celery was
chosen (bot/executor/factory.py, `stylebot worker`).
"""

from __future__ import annotations

from celery import Celery

from bot.protocol.celery_config import CeleryConfig


def make_celery(config: CeleryConfig):
    """A Celery app; nothing connects until it is used."""
    app = Celery("stylebot", broker=config.broker_url, backend=config.redis_url)
    visibility = {"visibility_timeout": int(config.visibility_timeout)}
    app.conf.update(
        # json only: no pickled code crosses the wire; images travel by reference (claim check)
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=config.queue,
        # a job is acknowledged when it ends, so a worker that dies mid-job gives it back;
        # the attempt counter in the job's record stops a job that kills every worker
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # each of a worker's slots (its --batch-size) holds one job at a time: the bot's
        # dispatcher keeps the queue and the positions
        worker_prefetch_multiplier=1,
        # Redis broker: a job unacknowledged this long is handed out again; it is read by the
        # broker transport and by the result backend, and it is above the longest job
        broker_transport_options={
            **visibility,
            "unacked_restore_interval": config.restore_interval,
            "unacked_restore_throttle": 1,  # scan on every interval, not every tenth
        },
        result_backend_transport_options=visibility,
        task_soft_time_limit=config.soft_time_limit,
        task_time_limit=config.hard_time_limit,
        result_expires=int(config.blob_ttl),
        worker_max_memory_per_child=config.max_memory_mb * 1024,  # KiB
        # loading VGG-19 in the process that runs jobs takes longer than Celery's 4 s default
        worker_proc_alive_timeout=config.start_timeout,
        # a job in flight when the broker connection drops finishes and stores its result; the
        # redelivered copy finds that result and only republishes it
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app
