"""The interfaces of the bot's side: Executor (what the bot sees; the dispatcher implements it),
the caller's handle on a job, and Backend and Listener (what runs the jobs the dispatcher
releases: the local pool or Celery, and how it reports back)."""

from __future__ import annotations

import abc
import asyncio
import signal
from collections.abc import AsyncIterator

from bot.metrics import QueueState
from bot.protocol.messages import Event, Job, StopReason, Terminal, WorkerStats


class Executor(abc.ABC):
    """Runs jobs somewhere; the bot sees only this."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def submit(self, job: Job) -> JobHandle:
        """Queue a job. Raises a SubmitError (QueueFull, UserLimitReached, ExecutorClosed)."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> bool:
        """Ask a job to stop; its terminal event follows. False if the job is unknown or over."""

    @abc.abstractmethod
    async def reattach(
        self, job: Job, *, submitted_at: float | None = None, started: bool = False
    ) -> JobHandle | None:
        """Follow a job an earlier bot process submitted, if it still runs (or its result waits);
        None if it was lost with that process. `submitted_at`: when it was submitted (wall clock
        seconds, from its row); `started`: a worker had started it (it is not waiting)."""

    @abc.abstractmethod
    async def forget(self, job_id: str) -> None:
        """The job's ending reached the member (or the bot's own database keeps it for a later
        try): whatever the backend still holds of it may go. Best effort."""

    @abc.abstractmethod
    def queue_state(self) -> QueueState:
        """The queue and the workers now, for the metrics (on the event loop)."""

    @abc.abstractmethod
    def jobs_of(self, user_id: int) -> int:
        """How many of the member's jobs are queued or running (the per-member limit counts these)."""

    @abc.abstractmethod
    async def shutdown(self, *, graceful: bool = True, timeout: float = 30.0) -> None: ...

    def handle_signals(self, *signals: int, timeout: float = 30.0) -> None:
        """Shut down gracefully (running jobs get `timeout` seconds) on SIGTERM, or the given signals."""
        loop = asyncio.get_running_loop()
        for sig in signals or (signal.SIGTERM,):
            loop.add_signal_handler(
                sig, lambda: asyncio.ensure_future(self.shutdown(timeout=timeout))
            )


class JobHandle:
    """The caller's view of one job: its events in order, its result, and a way to cancel it."""

    def __init__(self, job: Job, executor: Executor):
        self.job = job
        self.id = job.id
        self._executor = executor
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._result: asyncio.Future[Terminal] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._result.done()

    def deliver(self, event: Event) -> None:
        """An event of this job, from the dispatcher (on the event loop's thread)."""
        if self._result.done():
            return  # nothing follows a terminal event
        self._events.put_nowait(event)
        if event.terminal:
            self._result.set_result(event)  # type: ignore[arg-type]

    def received(self) -> list[Event]:
        """The events delivered and not yet taken by `events()`, taken now (without waiting)."""
        taken = []
        while not self._events.empty():
            taken.append(self._events.get_nowait())
        return taken

    async def events(self) -> AsyncIterator[Event]:
        """Every event from now on, ending with the terminal one. One consumer at a time."""
        while True:
            event = await self._events.get()
            yield event
            if event.terminal:
                return

    async def result(self) -> Terminal:
        return await asyncio.shield(self._result)

    async def cancel(self) -> bool:
        return await self._executor.cancel(self.id)

    async def forget(self) -> None:
        """Its ending reached the member: the executor may drop what it still keeps of it."""
        await self._executor.forget(self.id)


class Listener(abc.ABC):
    """What a backend reports to the dispatcher (on the event loop's thread)."""

    @abc.abstractmethod
    def on_event(self, job_id: str, event: Event) -> None:
        """An event of a released job; exactly one terminal event ends it."""

    @abc.abstractmethod
    def on_capacity(self) -> None:
        """The backend may take more jobs."""

    @abc.abstractmethod
    def on_unavailable(self, message: str) -> None:
        """The backend can run nothing any more (every worker gave up)."""

    def on_stats(self, worker: str, stats: WorkerStats) -> None:
        """A worker's totals since it started, for the metrics of its device (bot/metrics.py)."""
        return None


class Backend(abc.ABC):
    """Runs the jobs the dispatcher releases to it."""

    @abc.abstractmethod
    async def start(self, listener: Listener) -> None: ...

    @abc.abstractmethod
    def free_slots(self) -> int:
        """How many more jobs it can start now."""

    @abc.abstractmethod
    def run(self, job: Job) -> None:
        """Start `job` (a slot is free); JobStarted and the rest come through the listener."""

    @abc.abstractmethod
    def stop(self, job_id: str, reason: StopReason) -> None:
        """Ask a running job to stop; a terminal event follows, by force if it must: a
        JobCancelled carrying `reason` when the job stopped for it."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop every worker (jobs are over or stopped by then)."""

    def workers_ready(self) -> int:
        """Workers able to take a job now or when their current one ends."""
        return 0

    def worker_restarts(self) -> int:
        return 0

    async def reattach(self, job_id: str) -> bool:
        """Whether a job released by an earlier process still runs here and will report to the
        listener. The local pool's jobs die with the bot, so by default: no."""
        return False

    async def forget(self, job_id: str) -> None:
        """The ending of a finished job was taken over by the bot: drop what is kept of it
        (nothing, unless the backend keeps endings for a bot that restarts)."""
        return None

    def unavailable(self) -> str | None:
        """Why no job can be taken now (the backend's service is down), or None."""
        return None
