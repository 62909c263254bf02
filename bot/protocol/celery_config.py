"""The settings of the Celery executor (no Celery here: bot/config.py reads them into every
bot's settings; app.py builds the Celery app from them)."""

from __future__ import annotations

from dataclasses import dataclass

TASK_NAME = "stylebot.stylize"
QUEUE = "stylebot"


@dataclass(frozen=True, kw_only=True)
class CeleryConfig:
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = "redis://127.0.0.1:6379/0"
    time_limit: float = 900.0  # the longest a job may run (the dispatcher's limit)
    max_attempts: int = 3  # deliveries of one job before it is failed (a job that kills workers)
    visibility_timeout: float = 1500.0  # Redis broker: must be above the longest job
    restore_interval: float = 5.0  # Redis broker: seconds between scans for dead workers' jobs
    blob_ttl: float = 24 * 3600  # images, results and job records in Redis
    max_memory_mb: int = 16384  # a worker process above this is replaced after its job
    start_timeout: float = 300.0  # a worker process may take this long to load VGG-19
    # a task handed to the broker that has not gone after this long fails its job (a broker that
    # blocks its publishers, as RabbitMQ does under a disk or memory alarm, would hold it forever)
    send_timeout: float = 30.0
    queue: str = QUEUE  # one per deployment that shares a broker

    @property
    def soft_time_limit(self) -> float:
        """The worker's own backstop for a job of cost 1 (`task_limits`)."""
        return self.task_limits(self.time_limit)[0]

    @property
    def hard_time_limit(self) -> float:
        return self.task_limits(self.time_limit)[1]

    @staticmethod
    def task_limits(job_limit: float) -> tuple[float, float]:
        """(soft, hard) seconds for a task whose job may paint `job_limit` seconds
        (Job.limit_within: the same rule as the bot's): the bot stops a job at its limit; these
        are for a worker whose bot has gone, or a job that did not answer the stop."""
        return job_limit + 60, job_limit + 90
