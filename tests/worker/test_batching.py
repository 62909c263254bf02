"""Several jobs stepped together in one worker process of the local pool."""

import asyncio
import io
from dataclasses import replace

import numpy as np
from PIL import Image

from bot.metrics import BotMetrics
from bot.protocol.messages import JobCancelled, JobDone, JobFailed, JobProgress, JobStarted
from tests.conftest import noise_image, png_bytes
from tests.executor.helpers import first, long_job, make_job, run, started_executor


def pixels(done: JobDone) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(done.image)), dtype=np.float64) / 255


def test_jobs_of_a_batch_run_at_once_and_match_the_same_jobs_alone():
    styles = [png_bytes(noise_image(32, 32, seed=s)) for s in (1, 2, 3)]

    def jobs():
        return [make_job(u, steps=6, seed=u, style=styles[u]) for u in range(3)]

    async def scenario(batch_size):
        executor = await started_executor(batch_size=batch_size)
        try:
            handles = [await executor.submit(job) for job in jobs()]
            started_together = executor.running == batch_size
            return [await h.result() for h in handles], started_together
        finally:
            await executor.shutdown()

    batched, together = run(scenario(3))
    alone, _ = run(scenario(1))
    assert together
    assert all(isinstance(r, JobDone) for r in batched + alone)
    for b, a in zip(batched, alone, strict=True):
        # the tolerance of tests/engine/test_painting.py: two 8-bit levels on average
        assert np.abs(pixels(b) - pixels(a)).mean() < 2 / 255


def test_a_cancel_or_a_bad_job_in_a_batch_leaves_the_others_untouched():
    async def scenario():
        executor = await started_executor(batch_size=3)
        try:
            cancelled = await executor.submit(long_job(1))
            bad = await executor.submit(make_job(2, content=b"not a picture"))
            healthy = await executor.submit(make_job(3, steps=30))
            await first(cancelled, JobProgress)
            await cancelled.cancel()
            return await cancelled.result(), await bad.result(), await healthy.result()
        finally:
            await executor.shutdown()

    cancelled, bad, healthy = run(scenario())
    assert isinstance(cancelled, JobCancelled)
    assert isinstance(bad, JobFailed) and bad.kind == "bad_input"
    assert isinstance(healthy, JobDone) and healthy.steps == 30


def test_jobs_join_a_running_batch_between_steps():
    async def scenario():
        executor = await started_executor(batch_size=2)
        try:
            long = await executor.submit(long_job(1))
            await first(long, JobProgress)
            late = await executor.submit(make_job(2, steps=3))
            started = await first(late, JobStarted)
            result = await late.result()
            still_running = not long.done
            await long.cancel()
            return started, result, still_running
        finally:
            await executor.shutdown()

    started, result, still_running = run(scenario())
    assert started.worker == "cpu#0" and isinstance(result, JobDone) and still_running


def test_out_of_memory_splits_the_batch_and_fails_only_a_job_that_does_not_fit_alone(
    monkeypatch,
):
    """The Batcher in-process, with the engine's batched step made to run out of memory for any
    batch of two or more, and for the job asked at 64 px even alone."""
    import threading

    import bot.worker.batcher as batcher_module
    from bot.protocol.messages import RunnerSpec
    from bot.worker.batcher import Batcher
    from bot.worker.runner import JobRunner

    real = batcher_module.step_together

    def tight_memory(paintings):
        if len(paintings) > 1 or paintings[0].params.size == 64:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(paintings)

    monkeypatch.setattr(batcher_module, "step_together", tight_memory)
    runner = JobRunner(RunnerSpec(device="cpu", weights="random"))
    batcher = Batcher(runner, max_jobs=3)
    endings: dict[str, object] = {}
    done = threading.Event()
    jobs = [make_job(1, steps=3), make_job(2, steps=3), make_job(3, steps=3, size=64)]

    def finish(event):
        endings[event.job_id] = event
        if len(endings) == len(jobs):
            done.set()
            batcher.stop()

    for job in jobs:
        batcher.add(job, emit=lambda e: None, finish=finish, should_cancel=lambda: False)
    thread = threading.Thread(target=batcher.run, daemon=True)
    thread.start()
    assert done.wait(120)
    thread.join(10)
    small, other, large = (endings[j.id] for j in jobs)
    assert isinstance(small, JobDone) and isinstance(other, JobDone)
    assert isinstance(large, JobFailed) and large.kind == "out_of_memory"
    assert "64 px" in large.message


def test_a_job_beyond_the_memory_limit_runs_tiled_or_is_refused_with_the_size_that_fits(capfd):
    """STYLEBOT_GPU_MEMORY_LIMIT (here 150 MB), planned by bot/engine/memory.py before the job
    runs: a 256 px job with shallow layers (16 px margins) runs in tiles and matches the same job
    run whole without a limit; with the default layers (80 px margins) even tiles do not fit, so
    it is refused with the largest size that fits, and that size runs."""
    from bot.engine.memory import plan, tile_margin

    limit = 150 * 2**20
    shallow = {"style_layers": ("relu1_1", "relu2_1", "relu3_1"), "content_layers": ("relu3_1",)}
    tiled_plan = plan(
        256, 192, limit, optimizer="lbfgs", margin=tile_margin(shallow["style_layers"])
    )
    assert tiled_plan is not None and tiled_plan.tile == 128

    async def scenario(memory_limit, *jobs):
        executor = await started_executor(memory_limit=memory_limit)
        try:
            return [await (await executor.submit(job)).result() for job in jobs]
        finally:
            await executor.shutdown()

    fits = 192
    tiled, big, small = run(
        scenario(
            limit,
            make_job(size=256, steps=3, seed=1, **shallow),
            make_job(size=256, steps=2),
            make_job(size=fits, steps=2),
        )
    )
    (whole,) = run(scenario(None, make_job(size=256, steps=3, seed=1, **shallow)))
    assert "256x192 in tiles of 128 px, L-BFGS history 50" in capfd.readouterr().err
    assert isinstance(tiled, JobDone) and isinstance(whole, JobDone)
    assert (tiled.width, tiled.height) == (256, 192)
    assert np.abs(pixels(tiled) - pixels(whole)).mean() < 2 / 255  # see tests/engine/test_tiling.py
    assert isinstance(big, JobFailed) and big.kind == "out_of_memory"
    assert f"the largest size that fits is {fits} px" in big.message and "256x192" in big.message
    assert plan(fits, fits * 3 // 4, limit, optimizer="lbfgs") is not None
    assert isinstance(small, JobDone)


def test_a_job_waiting_in_a_worker_for_memory_is_cancelled_alone_and_timed_from_its_start():
    """A batch of two, but room for one 128 px job: the second waits inside the worker. Its
    cancel ends it at once and leaves the painting job alone (no worker killed); it is never
    reported started; and a job that waits longer than its time limit still runs, because the
    limit counts from when it starts painting."""

    async def scenario():
        executor = await started_executor(batch_size=2, memory_limit=120 * 2**20, cancel_grace=3.0)
        try:
            painting = await executor.submit(make_job(1, steps=5000, size=128))
            await first(painting, JobProgress)
            waiting = await executor.submit(make_job(2, steps=2, size=128))
            seen_waiting = [e async for e in _until_idle(waiting, 2.0)]
            await waiting.cancel()
            cancelled = await waiting.result()
            # a time limit of 6 s, and 8 s of waiting behind the painting job
            late = await executor.submit(replace(make_job(3, steps=2, size=128), time_limit=6.0))
            await asyncio.sleep(8)
            await painting.cancel()
            return seen_waiting, cancelled, await painting.result(), await late.result()
        finally:
            await executor.shutdown()

    seen_waiting, cancelled, painting, late = run(scenario(), timeout=180)
    assert not any(isinstance(e, JobStarted) for e in seen_waiting)
    assert isinstance(cancelled, JobCancelled)
    assert isinstance(painting, JobCancelled)  # cancelled by us, not killed with its worker
    assert isinstance(late, JobDone), late


async def _until_idle(handle, seconds: float):
    """The events of a job for `seconds`."""
    events = handle.events().__aiter__()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            yield await asyncio.wait_for(events.__anext__(), left)
        except (TimeoutError, StopAsyncIteration):
            return


def test_a_clip_being_read_holds_no_one_back_and_its_cancel_ends_only_it():
    """Reading a member's clip (seconds of decoding) happens beside the stepping loop: the still
    being painted keeps its progress coming, and a cancel during the reading ends the clip
    alone, promptly, without killing the worker."""
    import time

    from bot.engine.params import ImageLimits
    from tests import hostile_clips

    slow_to_read = hostile_clips.gif_of_tiny_frames(4000, 2000)
    # this worker reads 25 frames of 16 MP of it: seconds of work (not a timing: the cancel
    # comes whenever it comes, and the reading must take it)
    limits = ImageLimits(max_clip_pixels=4_000_000_000)

    async def scenario():
        executor = await started_executor(batch_size=2, image_limits=limits)
        try:
            still = await executor.submit(long_job(1))
            await first(still, JobProgress)
            seen: list[float] = []

            async def watch():
                async for event in still.events():
                    if isinstance(event, JobProgress):
                        seen.append(time.monotonic())

            watcher = asyncio.create_task(watch())
            clip = await executor.submit(make_job(2, content=slow_to_read, steps=3))
            submitted = time.monotonic()
            await asyncio.sleep(1.0)  # into the reading
            await clip.cancel()
            clip_ending = await clip.result()
            ended = time.monotonic()
            during = [t for t in seen if submitted < t < ended]
            await still.cancel()
            still_ending = await still.result()
            watcher.cancel()
            return clip_ending, still_ending, during, ended - submitted
        finally:
            await executor.shutdown()

    clip_ending, still_ending, during, took = run(scenario())
    assert isinstance(clip_ending, JobCancelled)  # not worker_crashed
    assert isinstance(still_ending, JobCancelled)  # it was still running, on the same worker
    assert len(during) >= 5, f"the still made {len(during)} steps in {took:.1f} s of reading"


def test_a_batching_worker_paints_near_shapes_in_one_bucket_and_delivers_each_at_its_shape():
    """STYLEBOT_SHAPE_BUCKETS: two stills of 64x42 and 64x43 share the 64x40 bucket
    (bot/media/buckets.py): one VGG-19
    pass a step for both (the worker's own counts, bot/worker/stats.py), each result at the
    member's shape."""
    from tests.conftest import gradient_image

    contents = [
        png_bytes(gradient_image(96, 63, seed=1)),
        png_bytes(gradient_image(96, 65, seed=2)),
    ]

    async def scenario():
        metrics = BotMetrics()
        executor = await started_executor(metrics, batch_size=2, shape_buckets=True)
        try:
            handles = [
                await executor.submit(make_job(u, steps=6, size=64, content=c, pyramid_levels=1))
                for u, c in enumerate(contents)
            ]
            results = [await h.result() for h in handles]
            labels = {"worker": "cpu#0", "device": "cpu"}
            registry = metrics.registry
            for _ in range(100):  # the worker's totals arrive every STATS_INTERVAL seconds
                steps = registry.get_sample_value("stylebot_job_steps_total", labels) or 0
                if steps >= 12:
                    break
                await asyncio.sleep(0.1)
            return results, steps, registry.get_sample_value("stylebot_batches_total", labels)
        finally:
            await executor.shutdown()

    results, steps, batches = run(scenario())
    assert [(r.width, r.height) for r in results] == [(64, 42), (64, 43)]
    assert steps == 12
    assert batches is not None and batches < 12  # steps of the two jobs shared passes


def test_a_job_cancelled_after_painting_is_answered_and_never_held_against_the_worker(monkeypatch):
    """A finished job waits for the encoder (here held by another job's slow encoding, as a
    300-frame clip takes 7.5 s): the worker has said it is painted (the pool then never kills it
    over a cancel), and a cancel ends it cancelled, unencoded, once the encoder reaches it."""
    import threading
    import time

    from bot.protocol.messages import RunnerSpec
    from bot.worker.batcher import Batcher
    from bot.worker.runner import JobRunner

    runner = JobRunner(RunnerSpec(device="cpu", weights="random", threads=1, precision="fp32"))
    gate = threading.Event()
    encode = runner.done

    def slow_for_the_first(job, *args, **kwargs):
        if job.user_id == 1:
            gate.wait(60)
        return encode(job, *args, **kwargs)

    monkeypatch.setattr(runner, "done", slow_for_the_first)
    batcher = Batcher(runner, max_jobs=2)
    said, endings, cancelled = [], {}, threading.Event()
    finished = threading.Event()

    def add(user):
        def finish(event):
            endings[user] = event
            if len(endings) == 2:
                finished.set()

        batcher.add(
            make_job(user, steps=3 if user == 1 else 6),
            emit=lambda event: None,
            finish=finish,
            should_cancel=lambda: user == 2 and cancelled.is_set(),
            painted=lambda: said.append(user),
        )

    loop = threading.Thread(target=batcher.run, daemon=True)
    loop.start()
    add(1)
    add(2)
    try:
        deadline = time.monotonic() + 60
        while said != [1, 2]:  # both painted: 1 held in its encoding, 2 waiting behind it
            assert time.monotonic() < deadline, said
            time.sleep(0.05)
        cancelled.set()
        gate.set()
        assert finished.wait(60)
    finally:
        gate.set()
        batcher.stop()
        loop.join(30)
    assert isinstance(endings[1], JobDone)
    assert isinstance(endings[2], JobCancelled)
