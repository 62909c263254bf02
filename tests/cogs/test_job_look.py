"""The texts of a job's message: its progress bar and its ending."""

from bot.cogs.ui.job_look import ending, work_done
from bot.guild_policy import Summary
from bot.protocol.messages import JobDone, JobProgress, JobStatus


def done(**changes) -> JobDone:
    fields = dict(
        job_id="j1", image=b"png", format="png", width=512, height=384, seed=7, steps=300,
        seconds=12.5, device="cpu", weights="test",
    )  # fmt: skip
    return JobDone(**(fields | changes))


def test_the_ending_says_where_the_last_level_converged():
    summary = Summary("strength 1 · 512 px · 300 steps", ())
    text, state = ending(done(converged_at=212), summary, waited=0)
    assert state == JobStatus.DONE
    assert text.splitlines()[1] == (
        "strength 1 · 512 px · 300 steps · 512×384 · seed 7 · converged at step 212"
    )
    text, _ = ending(done(), summary, waited=3)
    assert text.splitlines() == [
        "✅ Done in 12.5 s (after 3 s in the queue)",
        "strength 1 · 512 px · 300 steps · 512×384 · seed 7",
    ]


def test_the_bar_follows_the_work_done_when_the_worker_sends_it():
    progress = dict(job_id="j1", step=160, total=220, losses={}, elapsed=1.0, eta=2.0)
    assert work_done(JobProgress(**progress, fraction=0.4)) == 0.4
    assert work_done(JobProgress(**progress)) == 160 / 220  # an older worker: steps
