"""The one message that lives through a job: queue position, progress with a preview, the result.

Every state change goes to the jobs table, and the end of the job is delivered through `Reply`;
an end that could not be delivered stays in the table (with its picture) for the retrier in
bot/cogs/recovery.py. No image work happens here: the worker already fitted the picture to the
upload limit.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from bot.cogs.ui.views import cancel_view, result_view
from bot.guild_policy import Summary
from bot.jobs.cooldown import Claim
from bot.jobs.refusals import Refusal, cannot_use
from bot.jobs.replies import Reply
from bot.protocol.messages import (
    Event,
    FailureKind,
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
from bot.storage import result_key
from bot.text import bar, format_seconds

if TYPE_CHECKING:
    from bot.executor.base import JobHandle
    from bot.metrics import BotMetrics
    from bot.storage import Storage

log = logging.getLogger(__name__)

FAILURE_TEXT = {
    FailureKind.BAD_INPUT: "This job could not run: {message}.",
    FailureKind.OUT_OF_MEMORY: "Too big for the GPU: {message}.",
    FailureKind.TIMEOUT: "Timed out: {message}. Try fewer steps or a smaller size.",
    FailureKind.WORKER_CRASHED: "The worker crashed while painting ({message}). Please try again.",
    FailureKind.INTERNAL: "Something went wrong: {message}.",
}
RESTARTING_TEXT = "The bot is restarting; please try again in a minute."
# the end of a job is written to the jobs table until it is taken: first again after this
# long, then twice as long each time, at most ENDING_RETRY_MAX apart
ENDING_RETRY_FIRST, ENDING_RETRY_MAX = 0.5, 30.0
RESULT_KEEP_SECONDS = 24 * 3600  # an undelivered picture waits this long for a delivery


DEFAULT_UPLOAD_LIMIT = 8 * 1024 * 1024 - 64 * 1024  # where the channel's limit is not known


def upload_limit(interaction: discord.Interaction) -> int:
    """Bytes a result may take: the channel's upload limit, less room for the form's other parts."""
    limit = getattr(interaction, "filesize_limit", 0)
    return limit - 64 * 1024 if limit else DEFAULT_UPLOAD_LIMIT


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


def unreadable(event: Terminal) -> bool:
    """The worker refused the job's pictures or options (BAD_INPUT) before painting: the bot
    reads only headers, so a damaged picture is found there."""
    return isinstance(event, JobFailed) and event.kind == FailureKind.BAD_INPUT


class JobMessage:
    """Follows a job's events and keeps the job's message (and its row) up to date."""

    def __init__(
        self,
        client: discord.Client,
        reply: Reply,
        handle: JobHandle,
        summary: Summary,
        storage: Storage,
        *,
        edit_interval: float,
        metrics: BotMetrics | None = None,
        claim: Claim | None = None,
    ):
        self.client = client
        self.reply = reply
        self.handle = handle
        self.summary = summary
        self.storage = storage
        self.edit_interval = edit_interval
        self.metrics = metrics
        self.claim = claim  # the member's cooldown: refunded when the job is refused
        self.created = time.monotonic()
        self.started_at: float | None = None
        self._last_edit = 0.0
        self._pending: dict | None = None
        self._flush: asyncio.TimerHandle | None = None
        self._edit_lock = asyncio.Lock()

    async def follow(self) -> None:
        try:
            async for event in self.handle.events():
                if isinstance(event, JobStarted):
                    await self._record(
                        self.storage.jobs.set_state(self.handle.id, JobStatus.RUNNING)
                    )
                if event.terminal:
                    await self._finish(event)  # type: ignore[arg-type]
                else:
                    self._show(event)
        except Exception:
            log.exception("following job %s failed", self.handle.id)
        finally:
            if self._flush is not None:
                self._flush.cancel()

    async def _record(self, write: Awaitable[None]) -> None:
        """A write to the jobs table, best effort: the database being down must not keep the
        member's message from following the job to its end."""
        try:
            await write
        except Exception:
            log.exception("could not record the state of job %s", self.handle.id)

    async def _record_ending(self, write: Callable[[], Awaitable[None]]) -> None:
        """The job's last writes, retried with backoff until the database takes them (the ending
        kept in memory meanwhile): a row left `running` would be adopted and run again by the
        next bot, and a delivered job told twice."""
        delay = ENDING_RETRY_FIRST
        while True:
            try:
                await write()
                return
            except Exception as exc:
                log.warning(
                    "could not record the end of job %s (%s); trying again in %.0f s",
                    self.handle.id,
                    exc.__class__.__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, ENDING_RETRY_MAX)

    # --- live updates -------------------------------------------------------------------------

    def _show(self, event: Event) -> None:
        view = cancel_view(self.handle.id, self.handle.job.user_id)
        if isinstance(event, JobQueued):
            waiting = (
                " No worker is online right now: it starts as soon as one is."
                if event.no_worker
                else ""
            )
            edit = {
                "content": f"⏳ Queued: position **{event.position}**.{waiting} {self.summary.text}",
                "view": view,
                "embed": None,
                "attachments": [],
            }
        elif isinstance(event, JobStarted):
            self.started_at = time.monotonic()
            edit = {
                "content": f"🎨 Painting on `{event.device}`… {self.summary.text}",
                "view": view,
                "embed": None,
                "attachments": [],
            }
        elif isinstance(event, JobProgress):
            eta = format_seconds(event.eta)
            done = work_done(event)
            content = f"🎨 `{bar(done, 1.0, 20)}` {event.step}/{event.total} · ETA {eta} · {self.summary.text}"
            edit = {"content": content, "view": view}
            if event.preview is not None:
                embed = discord.Embed(title="Preview").set_image(url="attachment://preview.jpg")
                edit.update(
                    embed=embed,
                    attachments=[discord.File(io.BytesIO(event.preview), "preview.jpg")],
                )
            elif self._pending is not None and "embed" in self._pending:
                edit.update(embed=self._pending["embed"], attachments=self._pending["attachments"])
        else:
            return
        self._pending = edit
        self._schedule()

    def _schedule(self) -> None:
        if self._flush is not None:
            return
        delay = max(0.0, self._last_edit + self.edit_interval - time.monotonic())
        self._flush = asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self._edit_pending())
        )

    async def _edit_pending(self) -> None:
        self._flush = None
        edit, self._pending = self._pending, None
        if edit is None or self.handle.done or not self.reply.token_alive:
            return
        async with self._edit_lock:
            if self.handle.done:
                return
            self._last_edit = time.monotonic()
            try:
                await self.reply.edit(self.client, **edit)
            except discord.HTTPException as exc:
                log.warning("could not update the message of job %s: %s", self.handle.id, exc)

    # --- the end ------------------------------------------------------------------------------

    async def _finish(self, event: Terminal) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if isinstance(event, JobFailed) and unreadable(event) and await self._refuse(event):
            return
        waited = (self.started_at - self.created) if self.started_at else 0.0
        text, state = ending(event, self.summary, waited)
        picture = event.image if isinstance(event, JobDone) else None
        async with self._edit_lock:
            view = result_view(self.handle.id) if isinstance(event, JobDone) else None
            message_id = await self.reply.deliver(self.client, text, picture=picture, view=view)
        delivered = message_id is not None
        if not delivered and isinstance(event, JobDone):
            await self._record_ending(
                lambda: self.storage.blobs.put(
                    result_key(self.handle.id), event.image, keep=RESULT_KEEP_SECONDS
                )
            )
        await self._record_ending(
            lambda: self.storage.jobs.set_state(
                self.handle.id, state, outcome=text, delivered=delivered, message_id=message_id
            )
        )
        if delivered:  # else the executor may still hold it for a bot that restarts
            await self.handle.forget()
        if not delivered:
            log.warning(
                "the end of job %s could not be delivered; it will be tried again", self.handle.id
            )

    async def _refuse(self, event: JobFailed) -> bool:
        """The member is told as if the bot had refused the pictures itself: a short public note,
        the reason privately, the cooldown given back, no result kept. False when that cannot be
        done (the token expired): the ending is delivered as a failure instead."""
        reason = cannot_use(event.message)
        async with self._edit_lock:
            if not await self.reply.refuse(self.client, reason):
                return False
        if self.claim is not None:
            self.claim.refund()
        if self.metrics is not None:
            self.metrics.refused(Refusal.BAD_INPUT)
        await self._record_ending(lambda: self.storage.jobs.refused(self.handle.id, reason))
        await self.handle.forget()
        return True
