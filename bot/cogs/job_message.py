"""The one message that lives through a job: queue position, progress with a preview, the result."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.cogs.views import cancel_view
from bot.executor.protocol import (
    Event,
    FailureKind,
    JobCancelled,
    JobDone,
    JobFailed,
    JobProgress,
    JobQueued,
    JobStarted,
    StopReason,
)
from bot.text import bar, format_seconds

if TYPE_CHECKING:
    from bot.executor.base import JobHandle

log = logging.getLogger(__name__)

FAILURE_TEXT = {
    FailureKind.BAD_INPUT: "This job could not run: {message}.",
    FailureKind.OUT_OF_MEMORY: "Too big for the GPU: {message}.",
    FailureKind.TIMEOUT: "Timed out: {message}. Try fewer steps or a smaller size.",
    FailureKind.WORKER_CRASHED: "The worker crashed while painting ({message}). Please try again.",
    FailureKind.INTERNAL: "Something went wrong: {message}.",
}
RESTARTING_TEXT = "The bot is restarting; please try again in a minute."


@dataclass(frozen=True)
class JobSummary:
    """What the caption says about the parameters used."""

    text: str  # e.g. "strength 1 · 512 px · 200 steps"
    notes: tuple[str, ...] = ()  # e.g. "size capped at 1024 by this server"


def upload_limit(interaction: discord.Interaction) -> int:
    """Bytes a result may take: the channel's upload limit, less room for the form's other parts."""
    limit = getattr(interaction, "filesize_limit", 0) or 8 * 1024 * 1024
    return limit - 64 * 1024


class JobMessage:
    """Follows a job's events and keeps the interaction's message up to date."""

    def __init__(self, interaction: discord.Interaction, handle: JobHandle, summary: JobSummary, *,
                 edit_interval: float, token_ttl: float):
        self.interaction = interaction
        self.handle = handle
        self.summary = summary
        self.edit_interval = edit_interval
        self.token_ttl = token_ttl
        self.created = time.monotonic()
        self.started_at: float | None = None
        self._last_edit = 0.0
        self._pending: dict | None = None
        self._flush: asyncio.TimerHandle | None = None
        self._edit_lock = asyncio.Lock()

    def token_alive(self) -> bool:
        return time.monotonic() - self.created < self.token_ttl

    async def follow(self) -> None:
        try:
            async for event in self.handle.events():
                if event.terminal:
                    await self._finish(event)
                else:
                    self._show(event)
        except Exception:
            log.exception("following job %s failed", self.handle.id)
        finally:
            if self._flush is not None:
                self._flush.cancel()

    # --- live updates -------------------------------------------------------------------------

    def _show(self, event: Event) -> None:
        view = cancel_view(self.handle.id, self.handle.job.user_id)
        if isinstance(event, JobQueued):
            edit = {"content": f"⏳ Queued: position **{event.position}**. {self.summary.text}", "view": view,
                    "embed": None, "attachments": []}
        elif isinstance(event, JobStarted):
            self.started_at = time.monotonic()
            edit = {"content": f"🎨 Painting on `{event.device}`… {self.summary.text}", "view": view, "embed": None,
                    "attachments": []}
        elif isinstance(event, JobProgress):
            eta = format_seconds(event.eta)
            content = f"🎨 `{bar(event.step, event.total, 20)}` {event.step}/{event.total} · ETA {eta} · {self.summary.text}"
            edit = {"content": content, "view": view}
            if event.preview is not None:
                embed = discord.Embed(title="Preview").set_image(url="attachment://preview.jpg")
                edit.update(embed=embed, attachments=[discord.File(io.BytesIO(event.preview), "preview.jpg")])
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
        self._flush = asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self._edit_pending()))

    async def _edit_pending(self) -> None:
        self._flush = None
        edit, self._pending = self._pending, None
        if edit is None or self.handle.done or not self.token_alive():
            return
        async with self._edit_lock:
            if self.handle.done:
                return
            self._last_edit = time.monotonic()
            try:
                await self.interaction.edit_original_response(**edit)
            except discord.HTTPException as exc:
                log.warning("could not update the message of job %s: %s", self.handle.id, exc)

    # --- the end ------------------------------------------------------------------------------

    async def _finish(self, event: Event) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        async with self._edit_lock:
            if isinstance(event, JobDone):
                await self._post_result(event)
            elif isinstance(event, JobFailed):
                await self._post_text("❌ " + FAILURE_TEXT.get(event.kind, "{message}").format(message=event.message.rstrip(".")))
            elif isinstance(event, JobCancelled):
                text = RESTARTING_TEXT if event.reason == StopReason.SHUTDOWN else "Cancelled."
                await self._post_text("🛑 " + text)

    def _caption(self, done: JobDone) -> str:
        waited = (self.started_at - self.created) if self.started_at else 0.0
        parts = [f"✅ Done in {done.seconds:.1f} s" + (f" (after {waited:.0f} s in the queue)" if waited >= 1 else ""),
                 f"{self.summary.text} · {done.width}×{done.height} · seed {done.seed}"]
        parts += [f"_{note}_" for note in self.summary.notes]
        return "\n".join(parts)

    async def _post_result(self, done: JobDone) -> None:
        # the worker fitted the picture to the job's result_limit (upload_limit below)
        file = discord.File(io.BytesIO(done.image), f"stylized.{'jpg' if done.format == 'jpeg' else done.format}")
        caption = self._caption(done)
        if self.token_alive():
            try:
                await self.interaction.edit_original_response(content=caption, embed=None, attachments=[file], view=None)
                return
            except discord.HTTPException as exc:
                log.warning("could not edit the result of job %s into its message (%s); posting it", self.handle.id, exc)
                file.reset()
        await self._post_to_channel(caption, file)

    async def _post_text(self, text: str) -> None:
        if self.token_alive():
            try:
                await self.interaction.edit_original_response(content=text, embed=None, attachments=[], view=None)
                return
            except discord.HTTPException as exc:
                log.warning("could not edit the end of job %s into its message: %s", self.handle.id, exc)
        await self._post_to_channel(text, None)

    async def _post_to_channel(self, text: str, file: discord.File | None) -> None:
        """After the interaction token expired: an ordinary message that mentions the member."""
        channel = self.interaction.channel
        user = self.interaction.user
        if channel is None or not hasattr(channel, "send"):
            log.error("job %s ended but there is no channel to post to", self.handle.id)
            return
        kwargs = {"file": file} if file is not None else {}
        try:
            await channel.send(f"{user.mention} {text}", allowed_mentions=discord.AllowedMentions(users=[user]), **kwargs)
        except discord.HTTPException:
            log.exception("could not post the end of job %s to channel %s", self.handle.id, channel.id)
