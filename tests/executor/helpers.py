from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from bot.engine.params import StyleParams
from bot.executor.dispatch import Dispatcher, ExecutorConfig
from bot.executor.pool import LocalExecutor
from bot.metrics import BotMetrics
from bot.protocol.messages import Job, JobDone
from tests.asyncrun import run
from tests.conftest import PARALLEL, gradient_image, noise_image, png_bytes

__all__ = ["run"]  # the tests of this folder take it from here

CONTENT = png_bytes(gradient_image(40, 30))
STYLE = png_bytes(noise_image(32, 32))


def make_job(
    user_id: int = 1,
    *,
    steps: int = 4,
    size: int = 32,
    content: bytes = CONTENT,
    style: bytes = STYLE,
    **params,
) -> Job:
    return Job(
        user_id=user_id,
        guild_id=10,
        content=content,
        styles=(style,),
        params=StyleParams(size=size, steps=steps, **params),
    )


def long_job(user_id: int = 1) -> Job:
    return make_job(user_id, steps=5000)


@contextlib.asynccontextmanager
async def running(executor: Dispatcher) -> AsyncIterator[Dispatcher]:
    """The executor started for the body, shut down after it whatever happens."""
    await executor.start()
    try:
        yield executor
    finally:
        await executor.shutdown()


async def started_executor(metrics: BotMetrics | None = None, **config) -> Dispatcher:
    if PARALLEL:  # one torch thread per process (tests/conftest.py)
        config.setdefault("threads_per_worker", 1)
    executor = LocalExecutor(ExecutorConfig(weights="random", devices=("cpu",), **config), metrics)
    await executor.start()
    return executor


async def collect(handle) -> list:
    return [event async for event in handle.events()]


async def first(handle, kind):
    """Wait for the first event of type `kind` (events before it are consumed)."""
    async for event in handle.events():
        if isinstance(event, kind):
            return event
        if event.terminal:
            raise AssertionError(f"job ended with {event} before a {kind.__name__}")
    raise AssertionError("no events")


def job_done(job_id: str, **fields) -> JobDone:
    """A JobDone of a small PNG, with `fields` changed."""
    return JobDone(
        **{
            "job_id": job_id, "image": b"png", "format": "png", "width": 1, "height": 1,
            "seed": 0, "steps": 1, "seconds": 0.1, "device": "gpu", "weights": "w", **fields,
        }
    )  # fmt: skip
