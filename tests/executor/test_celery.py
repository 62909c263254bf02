"""The Celery backend: real `stylebot worker` processes, real Redis, real RabbitMQ.

Each test uses a queue of its own, so they can run side by side. Timings of redelivery are
printed (run with -s to see them); they are figures for the notes, not assertions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import shutil
import subprocess
import time

import pytest
import redis
from PIL import Image

from bot.protocol.messages import (
    BackendBusy,
    JobCancelled,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    JobStarted,
)
from tests.executor.celery_helpers import (
    RABBITMQ_URL,
    REDIS_URL,
    Worker,
    celery_config,
    dispatcher,
    drop_queue,
    reachable,
    running_workers,
    wait_for_workers,
)
from tests.executor.helpers import collect, first, make_job, run, running

pytestmark = pytest.mark.skipif(not reachable(REDIS_URL), reason="needs Redis on 127.0.0.1:6379")

LONG_STEPS = 5000  # runs until it is stopped


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Two workers on one queue, Redis as broker, shared by the tests that do not kill them."""
    config = celery_config()
    with running_workers(config, ["w1", "w2"], tmp_path_factory.mktemp("workers")):
        yield config


def test_submit_progress_and_result(two_workers):
    async def scenario():
        async with running(dispatcher(two_workers)) as executor:
            handle = await executor.submit(make_job(steps=4, preview_every=2))
            events = await collect(handle)
            kept = client.exists(f"stylebot:result:{handle.id}", f"stylebot:job:{handle.id}")
            await handle.forget()  # the bot delivered the ending
            left = client.exists(f"stylebot:result:{handle.id}", f"stylebot:job:{handle.id}")
            return events, kept, left

    client = redis.Redis.from_url(REDIS_URL)
    events, kept, left = run(scenario())
    kinds = [type(e) for e in events]
    assert kinds == [JobQueued, JobStarted] + [JobProgress] * 4 + [JobDone], kinds
    assert events[1].worker in ("w1", "w2") and events[1].device == "cpu"
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert Image.open(io.BytesIO(progress[1].preview)).format == "JPEG"
    image = Image.open(io.BytesIO(events[-1].image))
    assert image.format == "PNG" and image.size == (32, 24)
    # the claim check: the images left Redis with the job; the result and the record stay until
    # the bot has delivered the ending, then leave
    assert not client.keys(f"stylebot:input:{events[-1].job_id}:*")
    assert (kept, left) == (2, 0)


def test_a_gif_comes_back_animated_through_celery(two_workers):
    from bot.media import clips, encoding
    from tests.conftest import moving_clip

    gif = encoding.encode_clip(moving_clip(frames=3, durations=[60, 120, 60]), "gif")

    async def scenario():
        async with running(dispatcher(two_workers)) as executor:
            job = make_job(content=gif, size=32, steps=2)
            assert job.cost == 1  # make_job builds the Job itself; the bot's launcher sets cost
            handle = await executor.submit(dataclasses.replace(job, cost=3))
            return await handle.result()

    done = run(scenario())
    assert isinstance(done, JobDone) and done.format == "gif" and done.frames == 3
    assert clips.decode_clip(done.image).durations == [60, 120, 60]


def test_cancel_while_queued_and_while_running(two_workers):
    async def scenario():
        async with running(dispatcher(two_workers)) as executor:
            long_jobs = [await executor.submit(make_job(u, steps=LONG_STEPS)) for u in (1, 2)]
            queued = await executor.submit(make_job(3, steps=2))
            for handle in long_jobs:
                await first(handle, JobProgress)
            assert executor.queue_length == 1  # released only when a worker is free
            await queued.cancel()
            cancelled_queued = await queued.result()
            asked = time.monotonic()
            await long_jobs[0].cancel()
            cancelled_running = await long_jobs[0].result()
            took = time.monotonic() - asked
            after = await executor.submit(make_job(4, steps=2))
            done_after = await after.result()
            await long_jobs[1].cancel()
            return cancelled_queued, cancelled_running, took, done_after

    cancelled_queued, cancelled_running, took, done_after = run(scenario())
    assert isinstance(cancelled_queued, JobCancelled)
    assert isinstance(cancelled_running, JobCancelled) and cancelled_running.reason == "cancelled"
    assert took < 5.0  # the flag was read between steps; revoke was not needed
    assert isinstance(done_after, JobDone)
    print(f"\ncancel of a running job confirmed in {took:.2f} s")


def test_a_job_over_its_time_limit_fails_with_timeout(two_workers):
    async def scenario():
        async with running(dispatcher(two_workers, time_limit=1.0)) as executor:
            handle = await executor.submit(make_job(steps=LONG_STEPS))
            return await handle.result()

    result = run(scenario())
    assert isinstance(result, JobFailed) and result.kind == "timeout"
    assert "time limit of 1 s" in result.message


def test_a_worker_that_does_not_answer_a_stop_is_revoked_and_the_reason_kept(tmp_path):
    """The job's process is frozen (SIGSTOP): its time limit's stop flag is never read, so after
    the grace the task is revoked with terminate=True; the member's job is over at once, told as
    a timeout (not "Cancelled": the alert on failing jobs must see it), and the worker's new
    process finds the flag on the redelivered task and drops it."""
    config = celery_config()
    with running_workers(config, ["w1"], tmp_path) as workers:
        worker = workers["w1"]

        async def scenario():
            import os
            import signal

            limit = 6.0
            async with running(dispatcher(config, cancel_grace=1.0, time_limit=limit)) as executor:
                handle = await executor.submit(make_job(steps=LONG_STEPS))
                await first(handle, JobStarted)
                started = time.monotonic()
                await first(handle, JobProgress)
                frozen = worker.job_process()
                os.kill(frozen, signal.SIGSTOP)
                result = await handle.result()
                took = time.monotonic() - started
                after = await executor.submit(make_job(2, steps=2))
                return result, took, await after.result(), frozen, limit

        result, took, after, frozen, limit = run(scenario(), timeout=180)
        assert worker.job_process() != frozen  # the frozen process was killed and replaced
    assert isinstance(result, JobFailed) and result.kind == "timeout", result
    assert "time limit" in result.message
    assert limit <= took < limit + 10
    assert isinstance(after, JobDone)


def test_two_workers_share_the_queue_and_members_are_served_fairly(two_workers):
    async def scenario():
        async with running(dispatcher(two_workers)) as executor:
            order: list[tuple[str, str]] = []

            async def watch(name, handle):
                async for event in handle.events():
                    if isinstance(event, JobStarted):
                        order.append((name, event.worker))
                return await handle.result()

            # a2 runs longer than a1, so that the second release (b1, not a3) comes clearly
            # before the third, whatever the workers' timing
            jobs = [("a1", 1, 20), ("a2", 1, 80), ("a3", 1, 20), ("b1", 2, 20), ("b2", 2, 20)]
            handles = [(n, await executor.submit(make_job(u, steps=k))) for n, u, k in jobs]
            results = await asyncio.gather(*(watch(n, h) for n, h in handles))
            return order, results

    order, results = run(scenario())
    assert all(isinstance(r, JobDone) for r in results)
    names = [n for n, _ in order]
    # a1 and a2 took the two free workers at once; then b1 goes before Alice's third job
    assert set(names[:2]) == {"a1", "a2"} and names.index("b1") < names.index("a3")
    assert {w for _, w in order} == {"w1", "w2"}


def test_a_killed_job_process_is_redelivered_and_finishes(tmp_path):
    """kill -9 of the process running the job (the OOM killer's way): Celery sees the worker
    lost, rejects the task back to the queue, and the worker's new process runs it again."""
    config = celery_config()
    with running_workers(config, ["w1"], tmp_path) as workers:
        worker = workers["w1"]

        async def scenario():
            async with running(dispatcher(config)) as executor:
                handle = await executor.submit(make_job(steps=60))
                await first(handle, JobProgress)
                killed = time.monotonic()
                import os
                import signal

                os.kill(worker.job_process(), signal.SIGKILL)
                restarted = await first(handle, JobStarted)
                redelivered = time.monotonic() - killed
                return await handle.result(), redelivered, restarted

        result, redelivered, _ = run(scenario(), timeout=180)
    assert isinstance(result, JobDone)
    attempts = redis.Redis.from_url(REDIS_URL).hget(f"stylebot:job:{result.job_id}", "attempts")
    assert attempts == b"2"
    print(f"\nRedis broker, job process killed: the job started again after {redelivered:.1f} s")


def test_a_job_that_kills_its_worker_every_time_fails_after_the_attempt_limit(tmp_path):
    config = celery_config(max_attempts=2)
    with running_workers(config, ["w1"], tmp_path) as workers:
        worker = workers["w1"]

        async def scenario():
            import os
            import signal

            async with running(dispatcher(config)) as executor:
                handle = await executor.submit(make_job(steps=LONG_STEPS))
                for _ in range(2):
                    await first(handle, JobProgress)
                    os.kill(worker.job_process(), signal.SIGKILL)
                return await handle.result()

        result = run(scenario(), timeout=180)
    assert isinstance(result, JobFailed) and result.kind == "worker_crashed"
    assert "2 times" in result.message


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_a_dead_workers_job_goes_to_another_worker(broker, tmp_path):
    """kill -9 of a whole worker (its machine died). RabbitMQ hands the job out again as soon as
    the connection drops; the Redis broker after the visibility timeout (short here: in
    production it is above the longest job)."""
    if broker == "rabbitmq" and not _rabbitmq_up():
        pytest.skip("needs RabbitMQ on 127.0.0.1:5672")
    config = celery_config(
        broker_url=RABBITMQ_URL if broker == "rabbitmq" else None,
        visibility_timeout=8,
        restore_interval=1,
    )
    with running_workers(config, ["w1", "w2"], tmp_path) as workers:

        async def scenario():
            async with running(dispatcher(config)) as executor:
                handle = await executor.submit(make_job(steps=60))
                started = await first(handle, JobStarted)
                await first(handle, JobProgress)
                killed = time.monotonic()
                workers[started.worker].kill_all()
                again = await first(handle, JobStarted)
                redelivered = time.monotonic() - killed
                return started, again, await handle.result(), redelivered

        started, again, result, redelivered = run(scenario(), timeout=180)
    assert isinstance(result, JobDone)
    assert again.worker != started.worker
    print(
        f"\n{broker} broker, whole worker killed: the job started again after {redelivered:.1f} s"
    )


def test_a_batching_worker_steps_several_jobs_together(tmp_path):
    """`stylebot worker --batch-size 2`: two task threads feed one batcher; both jobs run at
    once, a cancel of one leaves the other, and a third waits for a slot."""
    config = celery_config()
    with running_workers(config, ["wb"], tmp_path, batch_size=2):

        async def scenario():
            async with running(dispatcher(config)) as executor:
                cancelled = await executor.submit(make_job(1, steps=LONG_STEPS))
                healthy = await executor.submit(make_job(2, steps=40))
                third = await executor.submit(make_job(3, steps=3))
                await first(cancelled, JobProgress)
                await first(healthy, JobProgress)
                both_running = executor.running == 2 and executor.queue_length == 1
                await cancelled.cancel()
                return (
                    both_running,
                    await cancelled.result(),
                    await healthy.result(),
                    await third.result(),
                )

        both_running, cancelled, healthy, third = run(scenario(), timeout=180)
    assert both_running
    assert isinstance(cancelled, JobCancelled)
    assert isinstance(healthy, JobDone) and healthy.steps == 40
    assert isinstance(third, JobDone)


def test_the_bot_restarted_mid_job_still_gets_the_results(two_workers):
    """One job ends while no bot listens, one is still running when the new bot re-attaches."""

    async def scenario():
        first_bot = dispatcher(two_workers)
        await first_bot.start()
        short = make_job(1, steps=3)
        long = make_job(2, steps=100)
        await first_bot.submit(short)
        handle = await first_bot.submit(long)
        await first(handle, JobProgress)
        # the bot dies: nothing is stopped or cancelled, its Redis connections just go
        await first_bot.backend.close()
        await asyncio.sleep(3)  # the short job ends meanwhile, and nobody hears it

        async with running(dispatcher(two_workers)) as second_bot:
            handles = [await second_bot.reattach(job) for job in (short, long)]
            assert all(handles)
            return [await h.result() for h in handles]

    results = run(scenario(), timeout=180)
    assert all(isinstance(r, JobDone) for r in results), results


def test_redis_restarted_mid_job_with_appendonly_loses_nothing(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server")
    port = 6391
    url = f"redis://127.0.0.1:{port}/0"
    command = [
        server, "--port", str(port), "--dir", str(tmp_path), "--appendonly", "yes",
        "--appendfsync", "always", "--save", "",
    ]  # fmt: skip
    redis_process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    config = celery_config(redis_url=url)

    async def scenario():
        nonlocal redis_process
        async with running(dispatcher(config)) as executor:
            handle = await executor.submit(make_job(steps=100))
            await first(handle, JobProgress)
            redis_process.kill()
            redis_process.wait()
            await asyncio.sleep(2)
            redis_process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            return await handle.result()

    try:
        _wait_until(lambda: reachable(url))
        with running_workers(config, ["w1"], tmp_path):
            result = run(scenario(), timeout=240)
    finally:
        redis_process.kill()
        redis_process.wait()
    assert isinstance(result, JobDone)


def test_with_redis_down_a_job_is_refused_as_busy():
    config = celery_config(redis_url="redis://127.0.0.1:6399/0")  # nothing listens there

    async def scenario():
        async with running(dispatcher(config)) as executor:
            with pytest.raises(BackendBusy, match="busy"):
                await executor.submit(make_job())
            return executor.backend.workers_ready()

    assert run(scenario()) == 0


def _rabbitmq_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


def _wait_until(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_a_forged_task_message_names_no_key_the_worker_reads_or_deletes(two_workers):
    """Whoever can write to the broker cannot make a worker read or delete another app's keys:
    every key comes from the job id, and a job id that is not the bot's is refused."""
    from bot.protocol.celery_app import make_celery
    from bot.protocol.celery_config import TASK_NAME

    client = redis.Redis.from_url(REDIS_URL)
    client.set("otherapp:session:42", b"secret")
    app = make_celery(two_workers)
    forged = [
        {"job_id": "0" * 32, "user_id": 1, "guild_id": 1, "params": {}, "time_limit": None,
         "result_limit": None, "style_keys": ["otherapp:session:42"]},
        {"job_id": "otherapp:session:42", "user_id": 1, "guild_id": 1, "params": {},
         "time_limit": None, "result_limit": None, "styles": 1},
    ]  # fmt: skip
    results = [
        app.send_task(TASK_NAME, args=[m], queue=two_workers.queue, retry=False) for m in forged
    ]
    for result in results:
        with pytest.raises(Exception):  # noqa: B017 (the task fails: which error is Celery's)
            result.get(timeout=60)
    assert client.get("otherapp:session:42") == b"secret"
    client.delete("otherapp:session:42")


def test_forgetting_a_delivered_job_drops_its_images_too():
    """A job whose worker was killed with SIGKILL and never redelivered left its input images in
    Redis for their TTL (24 h); once its ending is delivered, the bot drops them."""
    from bot.protocol import celery_keys as keys
    from bot.protocol.messages import new_job_id

    job_id = new_job_id()
    client = redis.Redis.from_url(REDIS_URL)
    left_behind = keys.input_keys(job_id, 2)
    for key in left_behind:
        client.set(key, b"image", ex=600)

    async def scenario():
        async with running(dispatcher(celery_config())) as executor:
            await executor.forget(job_id)

    run(scenario())
    assert client.exists(*left_behind) == 0


def test_a_worker_holds_its_metrics_port_from_the_start_and_serves_its_device_there(tmp_path):
    """`STYLEBOT_METRICS_PORT`: the port is bound before the model loads (before the worker
    announces itself), so a second worker started on it meanwhile stops at once with the reason
    (exit 2; issue 48, item 9: both started, and one served no metrics); the prefork child that
    paints serves its device's metrics on that very socket, which prometheus_client's parser
    reads; the steps of a job show up within a few seconds."""
    import socket
    import subprocess
    import sys
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from bot.protocol.celery_keys import worker_key

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = celery_config()
    client = redis.Redis.from_url(config.redis_url)
    first = Worker(config, "wm", tmp_path, STYLEBOT_METRICS_PORT=str(port))
    try:
        deadline = time.monotonic() + 60
        while True:  # listening, or announced: whichever comes first
            announced = bool(client.exists(worker_key(config.queue, "wm")))
            with socket.socket() as knock:
                listening = knock.connect_ex(("127.0.0.1", port)) == 0
            if listening or announced or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "bot", "worker", "--device", "cpu", "--name", "wm2"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={
                **os.environ, "STYLEBOT_VGG19_WEIGHTS": "random",
                "STYLEBOT_REDIS_URL": config.redis_url, "STYLEBOT_CELERY_QUEUE": config.queue,
                "STYLEBOT_METRICS_PORT": str(port),
            },
        )  # fmt: skip
        wait_for_workers(config, ["wm"])

        async def scenario():
            async with running(dispatcher(config)) as executor:
                return await (await executor.submit(make_job(1, steps=12))).result()

        assert isinstance(run(scenario(), timeout=120), JobDone)
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
            found = {
                (s.name, s.labels.get("worker")): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            if (
                found.get(("stylebot_job_steps_total", "wm"), 0) >= 12
                or time.monotonic() > deadline
            ):
                break
            time.sleep(0.5)
    finally:
        first.stop()
        drop_queue(config)
    assert listening and not announced  # bound before the model loaded
    assert second.returncode == 2, second.stderr
    assert f"the metrics port 127.0.0.1:{port} is taken" in second.stderr
    assert "its own STYLEBOT_METRICS_PORT" in second.stderr
    assert found[("stylebot_job_steps_total", "wm")] >= 12
    assert found[("stylebot_batches_total", "wm")] >= 12
    assert found[("stylebot_device_busy_seconds_total", "wm")] > 0
    assert found[("stylebot_device_memory_peak_bytes", "wm")] > 0
    assert ("process_start_time_seconds", None) in found
