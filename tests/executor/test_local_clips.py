"""Moving pictures through the local pool: real worker processes, random weights, tiny clips."""

import time

from bot.media import clips, encoding
from bot.protocol.messages import JobCancelled, JobDone, JobFailed, JobProgress
from tests.conftest import moving_clip
from tests.executor.helpers import first, make_job, run, started_executor


def test_a_gif_comes_back_animated_with_its_timing_and_a_note():
    gif = encoding.encode_clip(moving_clip(frames=4, durations=[60, 90, 60, 90]), "gif")

    async def scenario():
        executor = await started_executor()
        try:
            handle = await executor.submit(make_job(content=gif, size=48, steps=3, preview_every=1))
            events = [e async for e in handle.events()]
            return events
        finally:
            await executor.shutdown()

    events = run(scenario())
    done = events[-1]
    assert isinstance(done, JobDone), done
    assert done.format == "gif" and done.frames == 4 and done.flicker is not None
    assert done.notes == ("4 frames as a looping GIF",)
    back = clips.decode_clip(done.image)
    assert back.durations == [60, 90, 60, 90] and back.loop
    assert back.frames[0].size == (done.width, done.height) == (48, 36)
    previews = [e.preview for e in events if isinstance(e, JobProgress) and e.preview]
    assert previews and previews[0][:2] == b"\xff\xd8"  # a JPEG of the current frame


def test_a_clip_over_the_limits_is_fitted_and_told():
    video = encoding.encode_clip(moving_clip(frames=20, durations=[50] * 20, loop=False), "mp4")

    async def scenario():
        executor = await started_executor()
        try:
            job = make_job(
                content=video, size=64, steps=2, clip_frames=3, clip_seconds=0.5, clip_size=40
            )
            return await (await executor.submit(job)).result()
        finally:
            await executor.shutdown()

    done = run(scenario())
    assert isinstance(done, JobDone), done
    assert done.format == "mp4" and done.frames == 3 and max(done.width, done.height) == 40
    assert done.notes == (
        "painted at 40 px, the largest size for moving pictures here",
        "the first 0.5 s of 1.0 s",
        "6 frames a second instead of 20",  # every 4th of 10 frames in 0.5 s
        "3 frames as an MP4",
    )


def test_a_cancelled_clip_frees_its_worker_for_the_next_job():
    gif = encoding.encode_clip(moving_clip(frames=6), "gif")

    async def scenario():
        executor = await started_executor(cancel_grace=10)
        try:
            clip = await executor.submit(make_job(1, content=gif, size=48, steps=5000))
            await first(clip, JobProgress)
            pids = executor.backend.worker_pids()
            asked = time.monotonic()
            await clip.cancel()
            ending = await clip.result()
            took = time.monotonic() - asked
            after = await (await executor.submit(make_job(2, steps=2))).result()
            return ending, took, pids, executor.backend.worker_pids(), after
        finally:
            await executor.shutdown()

    ending, took, before, after_pids, after = run(scenario())
    assert isinstance(ending, JobCancelled) and took < 5
    assert before == after_pids  # stopped between steps: the same warm worker goes on
    assert isinstance(after, JobDone)


def test_a_damaged_clip_fails_as_bad_input():
    video = encoding.encode_clip(moving_clip(frames=4, loop=False), "mp4")

    async def scenario():
        executor = await started_executor()
        try:
            return await (
                await executor.submit(make_job(content=video[:60] + b"\0" * 100))
            ).result()
        finally:
            await executor.shutdown()

    failed = run(scenario())
    assert isinstance(failed, JobFailed) and failed.kind == "bad_input"
    assert "video" in failed.message
