"""The local pool with real worker processes, random weights and tiny images."""

import asyncio
import io
import os
import signal
import time

import psutil
import pytest
from PIL import Image

from bot.executor.dispatch import ExecutorConfig
from bot.executor.pool import LocalExecutor, WorkerStartError
from bot.jobs.follow import unreadable
from bot.protocol.messages import (
    JobCancelled,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    JobStarted,
    QueueFull,
    StopReason,
    UserLimitReached,
)
from tests.conftest import noise_image, png_bytes
from tests.executor.helpers import collect, first, long_job, make_job, run, started_executor


def test_event_order_for_one_job():
    async def scenario():
        executor = await started_executor()
        try:
            handle = await executor.submit(make_job(steps=4, preview_every=2))
            return await collect(handle), await handle.result()
        finally:
            await executor.shutdown()

    events, result = run(scenario())
    kinds = [type(e) for e in events]
    assert kinds == [JobQueued, JobStarted] + [JobProgress] * 4 + [JobDone]
    assert events[0].position == 1 and events[1].device == "cpu"
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert [p.step for p in progress] == [1, 2, 3, 4] and progress[0].total == 4
    assert [p.preview is not None for p in progress] == [False, True, False, True]
    assert Image.open(io.BytesIO(progress[1].preview)).format == "JPEG"
    assert result is events[-1]
    image = Image.open(io.BytesIO(result.image))
    assert image.format == "PNG" and image.size == (32, 24) == (result.width, result.height)
    assert "RANDOM" in result.weights


def test_jobs_from_two_users_run_in_fair_order():
    async def scenario():
        executor = await started_executor()
        try:
            starts: list[str] = []
            names = {}
            handles = []
            for name, user in [("a1", 1), ("a2", 1), ("a3", 1), ("b1", 2), ("b2", 2)]:
                handle = await executor.submit(make_job(user, steps=2))
                names[handle.id] = name
                handles.append(handle)

            async def watch(handle):
                positions = []
                async for event in handle.events():
                    if isinstance(event, JobQueued):
                        positions.append(event.position)
                    if isinstance(event, JobStarted):
                        starts.append(names[handle.id])
                return positions

            positions = await asyncio.gather(*(watch(h) for h in handles))
            return starts, dict(zip([names[h.id] for h in handles], positions, strict=True))
        finally:
            await executor.shutdown()

    starts, positions = run(scenario())
    assert starts == ["a1", "b1", "a2", "b2", "a3"]
    assert positions["b1"][-1] == 1 and positions["a3"][-1] == 1
    assert (
        positions["b2"] == sorted(positions["b2"], reverse=True) and len(positions["b2"]) > 1
    )  # re-announced


def test_cancel_while_queued_and_while_running():
    async def scenario():
        executor = await started_executor(cancel_grace=10)
        try:
            running = await executor.submit(long_job(1))
            queued = await executor.submit(long_job(2))
            await first(running, JobProgress)
            pid = executor.backend.worker_pids()
            assert await queued.cancel()
            queued_result = await queued.result()
            asked = time.monotonic()
            await running.cancel()
            running_result = await running.result()
            took = time.monotonic() - asked
            after = await executor.submit(make_job(3, steps=2))
            return (
                queued_result,
                [e async for e in queued.events()],
                running_result,
                took,
                pid,
                executor.backend.worker_pids(),
                await after.result(),
            )
        finally:
            await executor.shutdown()

    queued_result, queued_events, running_result, took, pids_before, pids_after, after = run(
        scenario()
    )
    assert isinstance(queued_result, JobCancelled)
    assert not any(isinstance(e, JobStarted) for e in queued_events)
    assert isinstance(running_result, JobCancelled) and took < 5
    assert pids_before == pids_after  # stopped cooperatively: the same warm worker goes on
    assert isinstance(after, JobDone)


def test_a_worker_that_does_not_confirm_a_cancel_is_replaced():
    async def scenario():
        executor = await started_executor(cancel_grace=1.0)
        try:
            handle = await executor.submit(long_job())
            await first(handle, JobProgress)
            (pid,) = executor.backend.worker_pids()
            os.kill(pid, signal.SIGSTOP)
            await handle.cancel()
            result = await handle.result()
            await executor.backend.wait_ready()
            after = await executor.submit(make_job(steps=2))
            return result, pid, executor.backend.worker_pids(), await after.result()
        finally:
            await executor.shutdown()

    result, pid, pids, after = run(scenario())
    assert isinstance(result, JobCancelled)
    assert pid not in pids and len(pids) == 1
    assert isinstance(after, JobDone)


def test_kill_9_fails_the_job_and_a_fresh_worker_takes_the_next():
    async def scenario():
        executor = await started_executor()
        try:
            handle = await executor.submit(long_job())
            waiting = await executor.submit(make_job(2, steps=2))
            await first(handle, JobProgress)
            (pid,) = executor.backend.worker_pids()
            os.kill(pid, signal.SIGKILL)
            crashed = await handle.result()
            return crashed, pid, await waiting.result(), executor.backend.worker_pids()
        finally:
            await executor.shutdown()

    crashed, pid, next_result, pids = run(scenario())
    assert isinstance(crashed, JobFailed) and crashed.kind == "worker_crashed"
    assert "SIGKILL" in crashed.message
    assert isinstance(next_result, JobDone)
    assert pids and pid not in pids


def test_a_job_over_its_time_limit_fails_with_timeout():
    async def scenario():
        executor = await started_executor(time_limit=1.0)
        try:
            started = time.monotonic()
            result = await (await executor.submit(long_job())).result()
            return result, time.monotonic() - started
        finally:
            await executor.shutdown()

    result, took = run(scenario())
    assert (
        isinstance(result, JobFailed)
        and result.kind == "timeout"
        and "time limit" in result.message
    )
    assert took < 10  # the limit (1 s), plus at most the grace (5 s) before a kill, plus start-up


def test_full_queue_and_per_user_limit_refuse_at_submit():
    async def scenario():
        executor = await started_executor(max_queued=1, per_user_limit=2)
        try:
            first_job = await executor.submit(long_job(1))
            await executor.submit(long_job(1))  # queued
            with pytest.raises(UserLimitReached, match="limit is 2"):
                await executor.submit(long_job(1))
            with pytest.raises(QueueFull, match="queue is full"):
                await executor.submit(long_job(2))
            await first_job.cancel()
        finally:
            await executor.shutdown(graceful=False)

    run(scenario())


def test_bad_input_a_painting_that_diverges_and_the_style_cache():
    """A picture the worker cannot read is a refusal (bad_input); a painting whose loss becomes
    infinite after it started is a failure of its own kind (issue 48, item 2: it was told "your
    job did not start", refunded and hidden from the failing-jobs alert)."""

    async def scenario():
        executor = await started_executor()
        try:
            bad = await (await executor.submit(make_job(content=b"this is not a picture"))).result()
            one = await (await executor.submit(make_job(steps=1))).result()
            two = await (await executor.submit(make_job(steps=1))).result()
            # finite settings, a loss that overflows fp32 at the first step
            diverging = make_job(steps=2, content_weight=1.0, style_weight=1e300)
            diverged = await (await executor.submit(diverging)).result()
            return bad, diverged, one, two
        finally:
            await executor.shutdown()

    bad, diverged, one, two = run(scenario())
    assert isinstance(bad, JobFailed) and bad.kind == "bad_input" and "content image" in bad.message
    assert isinstance(diverged, JobFailed) and diverged.kind == "diverged", diverged
    assert "lower the strength" in diverged.message and not unreadable(diverged)
    assert not one.cache_hit and two.cache_hit


def test_missing_weights_stop_the_start_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("STYLEBOT_VGG19_WEIGHTS", raising=False)

    async def scenario():
        executor = LocalExecutor(ExecutorConfig(devices=("cpu",), weights="torchvision"))
        with pytest.raises(WorkerStartError, match="download-weights"):
            await executor.start()
        return executor.backend.worker_pids()

    assert run(scenario()) == []


def test_shutdown_cancels_queued_jobs_and_leaves_no_child():
    async def scenario():
        executor = await started_executor()
        running = await executor.submit(long_job(1))
        queued = await executor.submit(long_job(2))
        await first(running, JobProgress)
        await executor.shutdown(timeout=0.5)
        with pytest.raises(Exception, match="shutting down"):
            await executor.submit(make_job())
        return await running.result(), await queued.result()

    running, queued = run(scenario())
    assert isinstance(queued, JobCancelled) and queued.reason == "shutdown"
    assert isinstance(running, JobCancelled) and running.reason == "shutdown"
    assert _live_children() == []


def test_sigterm_shuts_down_the_hosting_process(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "host.py"
    script.write_text(
        "import asyncio\n"
        "from tests.executor.helpers import long_job, started_executor\n"
        "async def main():\n"
        "    executor = await started_executor()\n"
        "    executor.handle_signals(timeout=0.5)\n"
        "    handle = await executor.submit(long_job())\n"
        "    async for event in handle.events():\n"
        "        if event.type == 'progress' and event.step == 1:\n"
        "            print('running', flush=True)\n"
        "    print('ended', (await handle.result()).type, flush=True)\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    host = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert host.stdout.readline().strip() == "running"
        workers = [c.pid for c in psutil.Process(host.pid).children(recursive=True)]
        assert workers
        host.send_signal(signal.SIGTERM)
        out, _ = host.communicate(timeout=60)
    finally:
        host.kill()
    assert "ended cancelled" in out
    assert host.returncode == 0
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(workers) == []


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _live_children() -> list[str]:
    """Child processes other than multiprocessing's resource tracker and forkserver (they live as
    long as we do; the forkserver is the one other tests' bots fork their workers from)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            lasting = "resource_tracker" in cmdline or "multiprocessing.forkserver" in cmdline
            if child.status() != psutil.STATUS_ZOMBIE and not lasting:
                found.append(cmdline)
        except psutil.NoSuchProcess:
            pass
    return found


def test_a_stopped_worker_does_not_freeze_the_event_loop():
    """A job larger than a pipe's buffer, handed to a worker that is stopped (SIGSTOP while idle):
    on 2b49b96 the write blocked the loop until the worker was resumed."""
    big = png_bytes(noise_image(300, 300, seed=4))
    assert len(big) > 256 * 1024

    async def scenario():
        executor = await started_executor(cancel_grace=1.0)
        lags: list[float] = []
        stop = asyncio.Event()

        async def monitor():
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        watcher = asyncio.create_task(monitor())
        try:
            (pid,) = executor.backend.worker_pids()
            os.kill(pid, signal.SIGSTOP)
            handle = await executor.submit(make_job(content=big, steps=2))
            await asyncio.sleep(1.0)  # the job sits in a write to the stopped worker
            await handle.cancel()  # nothing answers: the worker is killed after the grace
            result = await asyncio.wait_for(handle.result(), 10)
            await executor.backend.wait_ready()
            after = await (await executor.submit(make_job(steps=2))).result()
            return result, max(lags), after
        finally:
            stop.set()
            await watcher
            await executor.shutdown()

    result, worst_lag, after = run(scenario())
    assert isinstance(result, JobCancelled)
    print(f"worst event-loop lag while the worker was stopped: {worst_lag * 1000:.1f} ms")
    assert worst_lag < 0.2, worst_lag
    assert isinstance(after, JobDone)


def test_the_worker_decodes_with_the_configured_limits():
    from bot.engine.params import ImageLimits

    async def scenario():
        executor = await started_executor(image_limits=ImageLimits(max_pixels=1000))
        try:
            return await (await executor.submit(make_job(steps=1))).result()  # 40x30 = 1200 pixels
        finally:
            await executor.shutdown()

    result = run(scenario())
    assert (
        isinstance(result, JobFailed)
        and result.kind == "bad_input"
        and "at most 1,000" in result.message
    )


def test_a_worker_says_its_precision_and_why(tmp_path, caplog):
    """auto on a CPU: the answer kept on disk for this machine is used (here a forced one: no
    measurement runs), and the ready line names it."""
    import json

    from bot.engine.cpu_precision import machine_key

    kept = tmp_path / "cpu-precision.json"
    answer = {"precision": "bf16", "why": "forced by the test", "fp32_ms": 2.0, "bf16_ms": 1.0}
    kept.write_text(json.dumps({machine_key(1): answer}))

    async def scenario():
        executor = await started_executor(threads_per_worker=1, precision_cache=str(kept))
        await executor.shutdown()

    with caplog.at_level("INFO", logger="bot.executor.pool"):
        run(scenario())
    assert f"precision bf16 (forced by the test; kept in {kept})" in caplog.text


def test_a_stopped_job_comes_back_with_the_reason_it_was_stopped_for():
    """The reason travels with the Cancel to the worker and back with its JobCancelled: a
    member's cancel says so, a bot that stops says it is restarting."""

    async def scenario():
        executor = await started_executor()
        cancelled = await executor.submit(long_job(1))
        await first(cancelled, JobProgress)
        await executor.cancel(cancelled.job.id)
        stopped = await executor.submit(long_job(2))
        await first(stopped, JobProgress)
        await executor.shutdown(graceful=False)
        return await cancelled.result(), await stopped.result()

    by_member, by_shutdown = run(scenario())
    assert isinstance(by_member, JobCancelled) and by_member.reason == StopReason.CANCELLED
    assert isinstance(by_shutdown, JobCancelled) and by_shutdown.reason == StopReason.SHUTDOWN
