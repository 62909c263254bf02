"""What a job's message looks like: its live texts (queue position, painting, progress with a
preview), its ending, and its buttons. The follower (bot/jobs/follow.py) decides when to edit."""

from __future__ import annotations

import io
from typing import Any

import discord

from bot.cogs.ui.views import cancel_view, result_view
from bot.guild_policy import Summary
from bot.protocol.messages import (
    Event,
    FailureKind,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    JobStarted,
    JobStatus,
    StopReason,
    Terminal,
)
from bot.text import bar, format_seconds

FAILURE_TEXT = {
    FailureKind.BAD_INPUT: "This job could not run: {message}.",
    FailureKind.DIVERGED: "The painting went wrong partway: {message}.",
    FailureKind.OUT_OF_MEMORY: "Too big for the GPU: {message}.",
    FailureKind.TIMEOUT: "Timed out: {message}. Try fewer steps or a smaller size.",
    FailureKind.WORKER_CRASHED: "The worker crashed while painting ({message}). Please try again.",
    FailureKind.INTERNAL: "Something went wrong: {message}.",
}
RESTARTING_TEXT = "The bot is restarting; please try again in a minute."


def work_done(event: JobProgress) -> float:
    """The share of the job's work done: a coarse pyramid step counts by its pixels."""
    return event.fraction if event.fraction is not None else event.step / max(1, event.total)


def ending(event: Terminal, summary: Summary, waited: float) -> tuple[str, JobStatus]:
    """The final text of a job, and the state it leaves in the jobs table."""
    if isinstance(event, JobDone):
        parts = [
            f"✅ Done in {event.seconds:.1f} s"
            + (f" (after {waited:.0f} s in the queue)" if waited >= 1 else ""),
            f"{summary.text} · {event.width}×{event.height} · seed {event.seed}"
            + (f" · converged at step {event.converged_at}" if event.converged_at else ""),
        ]
        parts += [f"_{note}_" for note in (*summary.notes, *event.notes)]
        return "\n".join(parts), JobStatus.DONE
    if isinstance(event, JobFailed):
        text = FAILURE_TEXT.get(event.kind, "{message}").format(message=event.message.rstrip("."))
        return "❌ " + text, JobStatus.FAILED
    reason = event.reason if isinstance(event, JobCancelled) else StopReason.CANCELLED
    return "🛑 " + (
        RESTARTING_TEXT if reason == StopReason.SHUTDOWN else "Cancelled."
    ), JobStatus.CANCELLED


class DiscordJobLook:
    """The look of every job's message (bot/jobs/follow.py's JobLook)."""

    def live(self, job: Job, event: Event, summary: Summary, pending: dict | None) -> dict | None:
        view = cancel_view(job.id, job.user_id)
        if isinstance(event, JobQueued):
            waiting = (
                " No worker is online right now: it starts as soon as one is."
                if event.no_worker
                else ""
            )
            return {
                "content": f"⏳ Queued: position **{event.position}**.{waiting} {summary.text}",
                "view": view,
                "embed": None,
                "attachments": [],
            }
        if isinstance(event, JobStarted):
            return {
                "content": f"🎨 Painting on `{event.device}`… {summary.text}",
                "view": view,
                "embed": None,
                "attachments": [],
            }
        if not isinstance(event, JobProgress):
            return None
        eta = format_seconds(event.eta)
        done = work_done(event)
        content = (
            f"🎨 `{bar(done, 1.0, 20)}` {event.step}/{event.total} · ETA {eta} · {summary.text}"
        )
        edit: dict[str, Any] = {"content": content, "view": view}
        if event.preview is not None:
            embed = discord.Embed(title="Preview").set_image(url="attachment://preview.jpg")
            edit.update(
                embed=embed,
                attachments=[discord.File(io.BytesIO(event.preview), "preview.jpg")],
            )
        elif pending is not None and "embed" in pending:
            edit.update(embed=pending["embed"], attachments=pending["attachments"])
        return edit

    def ending(self, event: Terminal, summary: Summary, waited: float) -> tuple[str, JobStatus]:
        return ending(event, summary, waited)

    def result_buttons(self, job_id: str) -> discord.ui.View:
        return result_view(job_id)
