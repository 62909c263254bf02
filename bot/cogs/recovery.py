"""Nothing lost: jobs whose bot died, and job endings that could not be delivered.

A heartbeat every third of the instance timeout, in a task of its own that waits on nothing
else (a slow round must never let another bot process take this one's live jobs for orphans);
and every `delivery_retry_interval` seconds (and once at start), a recovery round:
- a job still queued or running whose bot process has gone silent (killed, crashed) is re-attached
  when the executor still runs it (Celery); a job that was still waiting in the dead bot's queue
  is queued again with its kept images; otherwise its member is told, in the job's message or
  (once the token has expired) in the channel, with a Retry button;
- an ending that could not be delivered (Discord down, the channel gone for a while) is tried again,
  with its picture, up to MAX_DELIVERY_ATTEMPTS times.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.cogs.ui.views import result_view, retry_view
from bot.guild_policy import Summary
from bot.jobs.launcher import job_of
from bot.jobs.replies import Reply
from bot.protocol.messages import JobStatus
from bot.storage import JobRecord, result_key

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger(__name__)

INTERRUPTED_TEXT = (
    "⚠️ The bot restarted while this job was {where}, and the job was lost. "
    "Press Retry to run it again with the same pictures."
)
# an orphan whose stored job this version cannot read (another version wrote it): Retry would
# read it the same way, so the member is asked to start again
UNREADABLE_TEXT = (
    "⚠️ The bot restarted while this job was waiting or painting, and this version of the bot "
    "cannot resume it. Please send /stylize again."
)
# an orphan whose resumption failed for a passing reason (Redis or the database away) is tried
# again in the next rounds; after this many tries its member is told it was lost, with Retry
MAX_RESUME_TRIES = 5
MAX_DELIVERY_ATTEMPTS = 50
# a try at a late delivery holds its claim this long at most (it gives up at 80 % of it): no
# other bot process delivers the same ending meanwhile
DELIVERY_LEASE = 60.0
REFUSED_AUDIT_SECONDS = 3600.0  # a refused job's row (no images, no token) is kept this long


class RecoveryCog(commands.Cog):
    def __init__(self, bot: StyleBot):
        self.bot = bot
        self._tasks: list[asyncio.Task] = []
        # orphans this process adopted whose resumption failed for a passing reason: tried again
        # next round (the row is this process's, so no other process would ever take it)
        self._unsettled: dict[str, tuple[JobRecord, int]] = {}

    async def cog_load(self) -> None:
        self._tasks = [
            asyncio.create_task(self._beat(), name="stylebot-heartbeat"),
            asyncio.create_task(self._rounds(), name="stylebot-recovery"),
        ]

    async def cog_unload(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _beat(self) -> None:
        """A heartbeat every third of the instance timeout, so that no other bot process takes
        this one for dead; it waits on nothing but the database."""
        every = self.bot.settings.instance_timeout / 3
        while True:
            try:
                await asyncio.wait_for(self.bot.storage.jobs.heartbeat(), every)
            except Exception:  # the database is down: the next beat tries again
                log.exception("heartbeat failed")
            await asyncio.sleep(every)

    async def _rounds(self) -> None:
        """A recovery round every delivery_retry_interval, however long the last one took."""
        while True:
            try:
                await self.recover_orphans()
                await self.retry_deliveries()
                await self.bot.storage.blobs.purge_expired()  # no longer than promised
                await self.bot.storage.jobs.purge(refused_after=REFUSED_AUDIT_SECONDS)
                await self.forget_left_guilds()
            except Exception:  # the database or Discord is down: the next round tries again
                log.exception("recovery round failed")
            await asyncio.sleep(self.bot.settings.delivery_retry_interval)

    # --- servers the bot left ----------------------------------------------------------------

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.bot.storage.guilds.left(guild.id)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.bot.storage.guilds.joined(guild.id)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Servers left while the bot was not running are noticed here; rejoined ones kept."""
        present = {guild.id for guild in self.bot.guilds}
        for guild_id in await self.bot.storage.guilds.with_data():
            if guild_id in present:
                await self.bot.storage.guilds.joined(guild_id)
            else:
                await self.bot.storage.guilds.left(guild_id)

    async def forget_left_guilds(self) -> None:
        for guild_id in await self.bot.storage.guilds.purge_left(
            self.bot.settings.guild_data_grace
        ):
            log.info("removed the settings, presets and jobs of server %s (left)", guild_id)

    async def recover_orphans(self) -> None:
        """Each orphan on its own, and the round goes on whatever one of them does. One whose
        stored parameters this version cannot read (another version wrote them) is told so; any
        other failure (Redis or the database away for a moment) leaves it to the next round, up
        to MAX_RESUME_TRIES, then its member is told it was lost, with Retry. No orphan is left
        adopted, unended and untried."""
        storage = self.bot.storage
        waiting = list(self._unsettled.values())
        for record in await storage.jobs.orphaned(silent_for=self.bot.settings.instance_timeout):
            if record.id not in self._unsettled and await storage.jobs.adopt(record):
                waiting.append((record, 0))  # else another bot process adopted it just now
        for record, tries in waiting:
            await self._recover(record, tries + 1)

    async def _recover(self, record: JobRecord, tries: int) -> None:
        try:
            if record.params is None:  # Retry would read it the same way
                log.warning("job %s cannot be resumed: %s", record.id, record.unreadable)
                await self._tell_lost(record, UNREADABLE_TEXT, retry=False)
            elif tries > MAX_RESUME_TRIES:
                log.warning("job %s could not be resumed in %d tries", record.id, tries - 1)
                await self._tell_lost(record, self._lost_text(record), retry=True)
            else:
                await self._resume(record)
        except Exception:  # noqa: BLE001 (a passing failure: the next round tries again)
            log.exception("job %s: resuming failed (try %d); trying again", record.id, tries)
            self._unsettled[record.id] = (record, tries)
            return
        self._unsettled.pop(record.id, None)

    async def _resume(self, record: JobRecord) -> None:
        """Re-attach to the job, queue it again, or tell its member it was lost."""
        handle = await self.bot.executor.reattach(
            job_of(record, [b""]),
            submitted_at=record.created_at,
            started=record.state == JobStatus.RUNNING,
        )
        if handle is not None:  # its results can still arrive (a distributed executor)
            log.info("re-attached to job %s", record.id)
        elif record.state == JobStatus.QUEUED:  # it never started: queue it again
            handle = await self.bot.launcher.requeue(record)
        if handle is not None:
            self.bot.launcher.follow(Reply.of_record(record), handle, Summary(record.summary))
            return
        log.warning(
            "job %s was lost with its bot process; telling member %s", record.id, record.user_id
        )
        await self._tell_lost(record, self._lost_text(record), retry=True)

    @staticmethod
    def _lost_text(record: JobRecord) -> str:
        where = "painting" if record.state == JobStatus.RUNNING else "waiting in the queue"
        return INTERRUPTED_TEXT.format(where=where)

    async def _tell_lost(self, record: JobRecord, text: str, *, retry: bool) -> None:
        """The job ends interrupted with `text` to its member (tried again later if Discord
        refuses now: the ending is kept undelivered)."""
        storage = self.bot.storage
        await storage.jobs.set_state(
            record.id, JobStatus.INTERRUPTED, outcome=text, delivered=False
        )
        view = retry_view(record.id) if retry else None
        message_id = await Reply.of_record(record).deliver(self.bot, text, view=view)
        if message_id is not None:
            await storage.jobs.set_state(
                record.id, JobStatus.INTERRUPTED, delivered=True, message_id=message_id
            )

    async def retry_deliveries(self) -> None:
        storage = self.bot.storage
        for record in await storage.jobs.undelivered():
            if record.attempts >= MAX_DELIVERY_ATTEMPTS or record.outcome is None:
                continue
            if not await storage.jobs.claim_delivery(record, lease=DELIVERY_LEASE):
                continue  # another bot process is delivering it
            try:
                message_id = await asyncio.wait_for(self._deliver(record), DELIVERY_LEASE * 0.8)
            except TimeoutError:
                message_id = None
            if message_id is None:
                await storage.jobs.release_delivery(record.id)
                continue
            # delivered: the result leaves both stores (the database's blob, the executor's copy)
            await storage.jobs.late_delivered(record.id, record.state, message_id)
            await self.bot.executor.forget(record.id)
            log.info(
                "delivered the end of job %s after %d failed tries", record.id, record.attempts + 1
            )

    async def _deliver(self, record: JobRecord) -> int | None:
        assert record.outcome is not None
        picture = await self.bot.storage.blobs.get([result_key(record.id)])
        view = (
            retry_view(record.id)
            if record.state == JobStatus.INTERRUPTED
            else result_view(record.id)
            if record.state == JobStatus.DONE
            else None
        )
        return await Reply.of_record(record).deliver(
            self.bot, record.outcome, picture=picture[0] if picture else None, view=view
        )


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(RecoveryCog(bot))
