"""Following a job: its events into its row and its one message (queue position, progress with a
preview, the result), edits throttled, the ending retried until the database takes it. What the
message says and its buttons are the cogs' (`JobLook`, bot/cogs/ui/job_look.py).

Every state change goes to the jobs table, and the end of the job is delivered through `Reply`;
an end that could not be delivered stays in the table (with its picture) for the retrier in
bot/cogs/recovery.py. No image work happens here: the worker already fitted the picture to the
upload limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import discord

from bot.guild_policy import Summary
from bot.jobs.cooldown import Claim
from bot.jobs.refusals import Refusal, cannot_use
from bot.jobs.replies import Reply
from bot.protocol.messages import (
    Event,
    FailureKind,
    Job,
    JobDone,
    JobFailed,
    JobStarted,
    JobStatus,
    Terminal,
)
from bot.storage import result_key

if TYPE_CHECKING:
    from bot.executor.base import JobHandle
    from bot.metrics import BotMetrics
    from bot.storage import Storage

log = logging.getLogger(__name__)

# the end of a job is written to the jobs table until it is taken: first again after this
# long, then twice as long each time, at most ENDING_RETRY_MAX apart
ENDING_RETRY_FIRST, ENDING_RETRY_MAX = 0.5, 30.0
RESULT_KEEP_SECONDS = 24 * 3600  # an undelivered picture waits this long for a delivery


class JobLook(Protocol):
    """What a job's message says and which buttons it has (bot/cogs/ui/job_look.py): the follower
    decides when to edit and what to record, the look what the member reads."""

    def live(self, job: Job, event: Event, summary: Summary, pending: dict | None) -> dict | None:
        """The edit for a live event (queued, started, progress), or None to show nothing;
        `pending`: the edit not yet sent (a preview it carries stays)."""
        ...

    def ending(self, event: Terminal, summary: Summary, waited: float) -> tuple[str, JobStatus]:
        """The final text and the state the job's row ends in."""
        ...

    def result_buttons(self, job_id: str) -> Any:
        """The buttons under a result."""
        ...


def unreadable(event: Terminal) -> TypeGuard[JobFailed]:
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
        look: JobLook,
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
        self.look = look
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
        if isinstance(event, JobStarted):
            self.started_at = time.monotonic()
        edit = self.look.live(self.handle.job, event, self.summary, self._pending)
        if edit is None:
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
            except Exception as exc:  # noqa: BLE001 (a refusal or the network: the next edit)
                log.warning("could not update the message of job %s: %s", self.handle.id, exc)

    # --- the end ------------------------------------------------------------------------------

    async def _finish(self, event: Terminal) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if unreadable(event) and await self._refuse(event):
            return
        waited = (self.started_at - self.created) if self.started_at else 0.0
        text, state = self.look.ending(event, self.summary, waited)
        picture = event.image if isinstance(event, JobDone) else None
        async with self._edit_lock:
            view = self.look.result_buttons(self.handle.id) if isinstance(event, JobDone) else None
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
        done (the token expired, or neither way reached Discord): the ending is delivered as a
        failure instead. The refusal is recorded first: the row never stays `running`."""
        if not self.reply.token_alive:
            return False
        reason = cannot_use(event.message)
        await self._record_ending(lambda: self.storage.jobs.refused(self.handle.id, reason))
        async with self._edit_lock:
            if not await self.reply.refuse(self.client, reason):
                return False
        if self.claim is not None:
            self.claim.refund()
        if self.metrics is not None:
            self.metrics.refused(Refusal.BAD_INPUT)
        await self.handle.forget()
        return True
