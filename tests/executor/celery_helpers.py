"""Real `stylebot worker` processes on a real Redis (and RabbitMQ), for the Celery tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import redis

from bot.executor.celery.backend import CeleryBackend
from bot.executor.dispatch import Dispatcher, ExecutorConfig
from bot.protocol.celery_app import make_celery
from bot.protocol.celery_config import CeleryConfig

# a database of its own; every test has a queue of its own (and every job its own keys), so tests
# can run side by side and nothing needs emptying
REDIS_URL = "redis://127.0.0.1:6379/11"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def celery_config(
    redis_url: str = REDIS_URL, broker_url: str | None = None, **overrides
) -> CeleryConfig:
    return CeleryConfig(
        redis_url=redis_url,
        broker_url=broker_url or redis_url,
        queue=f"stylebot-test-{uuid.uuid4().hex[:8]}",  # nothing left from another run
        **overrides,
    )


class Worker:
    """One `stylebot worker --device cpu` in its own session (so that it can be killed whole)."""

    def __init__(self, config: CeleryConfig, name: str, log_dir: Path, batch_size: int = 1, **env):
        self.name = name
        self.log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        environment = {
            **os.environ,
            "STYLEBOT_REDIS_URL": config.redis_url,
            "STYLEBOT_BROKER_URL": config.broker_url,
            "STYLEBOT_CELERY_QUEUE": config.queue,
            "STYLEBOT_CELERY_MAX_ATTEMPTS": str(config.max_attempts),
            "STYLEBOT_CELERY_VISIBILITY_TIMEOUT": str(config.visibility_timeout),
            "STYLEBOT_CELERY_RESTORE_INTERVAL": str(config.restore_interval),
            "STYLEBOT_JOB_TIME_LIMIT": str(config.time_limit),
            "STYLEBOT_VGG19_WEIGHTS": "random",
            **env,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "worker",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--name",
                name,
                "--batch-size",
                str(batch_size),
            ],
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def job_process(self) -> int:
        """The pid of the process that runs jobs (the prefork child)."""
        children = psutil.Process(self.process.pid).children()
        assert len(children) == 1, children
        return children[0].pid

    def kill_all(self) -> None:
        """kill -9 of the whole worker, as when its machine dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        self.log.close()


def wait_for_workers(config: CeleryConfig, names: list[str], timeout: float = 120) -> None:
    from bot.protocol.celery_keys import worker_key

    client = redis.Redis.from_url(config.redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(client.exists(worker_key(config.queue, n)) for n in names):
            return
        time.sleep(0.2)
    raise AssertionError(f"workers {names} did not announce themselves within {timeout} s")


@contextlib.contextmanager
def running_workers(
    config: CeleryConfig, names: list[str], log_dir: Path, **options
) -> Iterator[dict[str, Worker]]:
    """`stylebot worker`s by name, announced in Redis before the body runs, killed after it
    whatever happens."""
    workers = {name: Worker(config, name, log_dir, **options) for name in names}
    try:
        wait_for_workers(config, names)
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()
        drop_queue(config)


def drop_queue(config: CeleryConfig) -> None:
    """The test's queue leaves the broker (RabbitMQ keeps every queue it ever declared)."""
    try:
        with make_celery(config).connection_for_write() as connection:
            connection.default_channel.queue_delete(config.queue)
    except Exception:  # the broker is down (a test stopped it): nothing more to clean
        pass


def dispatcher(config: CeleryConfig, **executor) -> Dispatcher:
    return Dispatcher(
        CeleryBackend(config, cancel_grace=executor.pop("cancel_grace", 5.0)),
        ExecutorConfig(**executor),
    )
