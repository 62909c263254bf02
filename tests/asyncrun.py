"""How tests run a coroutine: within a time limit, in a fresh event loop, with a teardown that
cannot hang. asyncio.run() waits without limit for the tasks it cancels and for the default
executor's threads; here both get TEARDOWN seconds, so that a thread stuck in a blocking call
fails its own test instead of holding the whole run."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
TEARDOWN = 30.0


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=TEARDOWN))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), TEARDOWN))
        except TimeoutError:
            pass  # a thread that does not end is left to the process's end
        finally:
            loop.close()
