"""The dispatcher over a backend that is not the local pool: release by capacity, re-attach."""

import time

from bot.engine.params import StyleParams
from bot.executor.base import Backend, Listener
from bot.executor.dispatch import Dispatcher, ExecutorConfig
from bot.metrics import BotMetrics, size_class
from bot.protocol.messages import (
    FailureKind,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    JobStarted,
    StopReason,
)
from tests.asyncrun import run
from tests.executor.helpers import job_done


class RemoteBackend(Backend):
    """Stands for a backend on other machines: one slot, and it still runs a job from before."""

    def __init__(self, still_running: set[str]):
        self.still_running = still_running
        self.listener: Listener | None = None
        self.running: list[str] = []
        self.stopped: list[str] = []
        self.reasons: list[StopReason] = []  # why each stop was asked for

    async def start(self, listener: Listener) -> None:
        self.listener = listener

    def free_slots(self) -> int:
        return 1 - len(self.running)

    def run(self, job: Job) -> None:
        self.running.append(job.id)
        self.listener.on_event(job.id, JobStarted(job_id=job.id, worker="remote", device="gpu"))

    def stop(self, job_id: str, reason: StopReason) -> None:
        self.stopped.append(job_id)
        self.reasons.append(reason)

    async def close(self) -> None:
        pass

    async def reattach(self, job_id: str) -> bool:
        return job_id in self.still_running

    def finish(self, job_id: str) -> None:
        self.running.remove(job_id)
        self.listener.on_event(
            job_id,
            job_done(job_id),
        )
        self.listener.on_capacity()


def job(user: int, job_id: str) -> Job:
    return Job(id=job_id, user_id=user, guild_id=None, content=b"", styles=(), params=StyleParams())


def test_jobs_are_released_only_into_free_slots_and_positions_stay_true():
    async def scenario():
        backend = RemoteBackend(set())
        dispatcher = Dispatcher(backend, ExecutorConfig())
        await dispatcher.start()
        first = await dispatcher.submit(job(1, "a" * 32))
        second = await dispatcher.submit(job(2, "b" * 32))
        assert backend.running == ["a" * 32]  # one slot: the second waits in the dispatcher's queue
        events = second.received()
        assert [type(e) for e in events] == [JobQueued] and events[0].position == 1
        backend.finish("a" * 32)
        assert isinstance(await first.result(), JobDone)
        assert backend.running == ["b" * 32]
        backend.finish("b" * 32)
        return await second.result()

    assert isinstance(run(scenario()), JobDone)


def test_a_job_from_before_a_restart_is_re_attached_and_its_result_arrives():
    async def scenario():
        backend = RemoteBackend({"c" * 32})
        dispatcher = Dispatcher(backend, ExecutorConfig())
        await dispatcher.start()
        assert (
            await dispatcher.reattach(job(1, "d" * 32)) is None
        )  # lost: the backend does not know it
        handle = await dispatcher.reattach(job(1, "c" * 32))
        assert handle is not None and dispatcher.handle("c" * 32) is handle
        backend.running.append("c" * 32)
        backend.listener.on_event(
            "c" * 32,
            JobProgress(job_id="c" * 32, step=5, total=10, losses={}, elapsed=1.0, eta=1.0),
        )
        backend.finish("c" * 32)
        return [event async for event in handle.events()]

    events = run(scenario())
    assert [type(e) for e in events] == [JobProgress, JobDone]


def test_a_re_attached_job_that_paints_is_not_waiting_and_its_turnaround_counts_from_submission():
    """Issue 48, item 6: a job an earlier bot process submitted 300 s ago and a worker started is
    painting, not waiting (StylebotLongWait would fire on it), and what its member waited in all
    counts from its submission, as its row says, not from the re-attach."""
    metrics = BotMetrics()

    async def scenario():
        backend = RemoteBackend({"c" * 32})
        dispatcher = Dispatcher(backend, ExecutorConfig(), metrics)
        await dispatcher.start()
        handle = await dispatcher.reattach(
            job(1, "c" * 32), submitted_at=time.time() - 300, started=True
        )
        assert handle is not None
        oldest_wait = dispatcher.queue_state().oldest_wait
        backend.running.append("c" * 32)
        backend.finish("c" * 32)
        await handle.result()
        return oldest_wait

    assert run(scenario()) == 0.0
    turnaround = metrics.registry.get_sample_value(
        "stylebot_job_turnaround_seconds_sum",
        {"kind": "still", "size": size_class(StyleParams().size), "outcome": "done"},
    )
    assert turnaround is not None and 300 <= turnaround < 330


class Timers:
    """The dispatcher's clock, driven by the test: each timer is kept until the test fires it."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, object, tuple]] = []

    def call_later(self, delay: float, callback, *args):
        entry = (delay, callback, args)
        self.pending.append(entry)
        timers = self

        class Handle:
            def cancel(self) -> None:
                if entry in timers.pending:
                    timers.pending.remove(entry)

        return Handle()

    def fire_all(self) -> list[float]:
        due, self.pending = self.pending, []
        for _, callback, args in due:
            callback(*args)  # type: ignore[operator]
        return [delay for delay, _, _ in due]


def test_a_time_limit_stops_the_job_and_fails_it_as_a_timeout():
    """No sleeping: the time limit's timer is fired by the test. It is armed at release (a
    backstop of twice the limit, for a start never reported) and again, at the limit, when the
    job starts."""
    timers = Timers()

    async def scenario():
        backend = RemoteBackend(set())
        dispatcher = Dispatcher(
            backend, ExecutorConfig(time_limit=30.0), call_later=timers.call_later
        )
        await dispatcher.start()
        handle = await dispatcher.submit(job(1, "e" * 32))
        assert [delay for delay, _, _ in timers.pending] == [30.0]  # re-armed at JobStarted
        assert backend.stopped == []
        assert timers.fire_all() == [30.0]
        assert backend.stopped == ["e" * 32] and backend.reasons == [StopReason.TIMEOUT]
        backend.running.remove("e" * 32)
        backend.listener.on_event(  # the worker confirms the stop, with the reason it was given
            "e" * 32, JobCancelled(job_id="e" * 32, reason=StopReason.TIMEOUT)
        )
        return await handle.result()

    result = run(scenario())
    assert isinstance(result, JobFailed) and result.kind is FailureKind.TIMEOUT
    assert "time limit of 30 s" in result.message


class TwoSlotBackend(RemoteBackend):
    """A worker of two slots (one that steps jobs of one shape together, say)."""

    def free_slots(self) -> int:
        return 2 - len(self.running)


def test_jobs_are_released_in_the_fair_order_whatever_their_shape():
    """No preference for a job that would join a running batch (issue 43): it passed members
    whose positions did not move, and routed nowhere with several workers."""
    from dataclasses import replace

    def shaped(user: int, job_id: str, shape: tuple[int, int]) -> Job:
        return replace(job(user, job_id), shape=shape)

    async def scenario():
        backend = TwoSlotBackend(set())
        dispatcher = Dispatcher(backend, ExecutorConfig())
        await dispatcher.start()
        await dispatcher.submit(shaped(1, "a-photo", (4032, 3024)))  # runs at once
        await dispatcher.submit(shaped(2, "b-tall", (1080, 1920)))  # runs at once
        backend.finish("b-tall")  # a's 4:3 job runs on: one slot free again
        await dispatcher.submit(shaped(3, "c-tall", (1080, 1920)))
        await dispatcher.submit(shaped(4, "d-tall", (1080, 1920)))
        await dispatcher.submit(shaped(5, "e-photo", (800, 600)))  # 4:3 too: a's bucket
        first_free = list(backend.running)
        backend.finish("c-tall")
        return first_free, list(backend.running)

    first_free, after = run(scenario())
    assert first_free == ["a-photo", "c-tall"]  # c came into a free slot
    # d came before e: d goes first, though e's 4:3 would have joined a's batch
    assert after == ["a-photo", "d-tall"]
