"""The one path from an accepted request to a followed job, for /stylize, the context menus, the
result buttons, Retry and recovery:

    images fetched and checked -> recorded (row + kept images) -> submitted -> followed

A job is recorded before it is queued, so that a bot that dies from then on tells its member at
the next start; a refused submit leaves no images behind. It is given the services it uses
(`JobServices`), not the bot; each request brings the member's cooldown as a `Claim`, kept when
the job starts and given back when it does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import discord

from bot.config import Settings
from bot.engine.params import ImageLimits, InvalidParams, StyleParams
from bot.executor.base import Executor, JobHandle
from bot.guild_policy import Summary
from bot.jobs.cooldown import Claim
from bot.jobs.downloads import DownloadError
from bot.jobs.follow import JobLook, JobMessage
from bot.jobs.intake import ContentMeasure, Source, fetch, measure_content
from bot.jobs.refusals import Refusal, cannot_use, submit_refusal
from bot.jobs.replies import DEFAULT_UPLOAD_LIMIT, Reply, upload_limit
from bot.media import imaging
from bot.metrics import BotMetrics
from bot.protocol.messages import Job, JobStatus, SubmitError, new_job_id
from bot.storage import JobRecord, Storage

log = logging.getLogger(__name__)


UNMEASURED = ContentMeasure()  # a still of unknown size


def job_of(record: JobRecord, images: list[bytes], measure: ContentMeasure = UNMEASURED) -> Job:
    """The executor's job for a recorded one, with its images (the content first) and what its
    content weighs (`job_measure`)."""
    return Job(
        id=record.id,
        user_id=record.user_id,
        guild_id=record.guild_id,
        content=images[0],
        styles=tuple(images[1:]),
        params=record.style_params(),
        result_limit=record.result_limit or DEFAULT_UPLOAD_LIMIT,
        cost=measure.cost,
        shape=measure.shape,
    )


async def job_measure(record: JobRecord, content: bytes, limits: ImageLimits) -> ContentMeasure:
    """What a recorded job's content weighs (`measure_content`), for images checked before: a
    header read, off the loop."""
    params = record.style_params()
    return await asyncio.to_thread(measure_content, content, params, limits)


@dataclass(frozen=True)
class JobServices:
    """What the launcher works with, built once at startup (bot/app.py)."""

    client: discord.Client  # the Discord side of a job's message: edits and deliveries
    settings: Settings
    storage: Storage
    executor: Executor
    metrics: BotMetrics
    session: aiohttp.ClientSession  # attachment downloads
    follow: Callable[[JobMessage], None]  # runs a job's message until the job ends
    look: JobLook  # what a job's message says, and its buttons


class Launcher:
    def __init__(self, services: JobServices):
        self.services = services

    async def fetch_and_start(
        self,
        interaction: discord.Interaction,
        sources: list[Source],
        params: StyleParams,
        summary: Summary,
        claim: Claim,
    ) -> None:
        """Fetch (source, what) pairs, the content first, check them off the loop, and start the
        job; or refuse privately, having taken no slot. The interaction is deferred. Whatever
        happens, the claim is settled: kept if the job started, else given back."""
        try:
            try:
                data, measure = await fetch(
                    self.services.session, self.services.settings, sources, params
                )
            except DownloadError as exc:
                await self.refuse_after_defer(
                    interaction,
                    f"I could not use your images: {exc}. Please try again.",
                    Refusal.DOWNLOAD,
                    claim,
                )
                return
            except (imaging.ImageError, InvalidParams) as exc:
                await self.refuse_after_defer(
                    interaction,
                    cannot_use(str(exc)),
                    Refusal.BAD_INPUT,
                    claim,
                )
                return
            await self.start(interaction, data, params, summary, claim, measure=measure)
        finally:
            claim.give_back()  # nothing when the job started (kept)

    async def start(
        self,
        interaction: discord.Interaction,
        data: list[bytes],
        params: StyleParams,
        summary: Summary,
        claim: Claim,
        *,
        content_owner: int | None = None,
        measure: ContentMeasure | None = None,
    ) -> None:
        """Record, queue and follow a job whose images are checked; the interaction is deferred.
        `content_owner`: who uploaded the content, when it is not the member who asked (a
        button press on someone else's result); `measure`: what the check found of the
        content (else read from its header)."""
        config = self.services.settings
        reply = Reply.of(interaction, config.interaction_ttl)
        record = JobRecord(
            id=new_job_id(),
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            application_id=interaction.application_id,
            token=interaction.token,
            token_expires_at=reply.token_expires_at,
            state=JobStatus.QUEUED,
            params=params,
            summary=summary.text,
            styles=len(data) - 1,
            content_owner=content_owner or interaction.user.id,
            result_limit=upload_limit(interaction),
        )
        # recorded before it is queued: if the bot dies from here on, the next start tells the member
        await self.services.storage.jobs.add(record, data, keep_inputs=config.input_ttl)
        try:
            measure = measure or await job_measure(record, data[0], config.image_limits)
            handle = await self.services.executor.submit(job_of(record, data, measure))
        except SubmitError as exc:
            # a refused job keeps no images, and its row (and token) only for a short audit
            await self.services.storage.jobs.refused(record.id, f"Not now: {exc}.")
            await self.refuse_after_defer(
                interaction, f"Not now: {exc}.", submit_refusal(exc), claim
            )
            return
        claim.keep()
        self.follow(reply, handle, summary, claim)

    async def start_again(
        self,
        interaction: discord.Interaction,
        record: JobRecord,
        params: StyleParams,
        summary: Summary,
        claim: Claim,
    ) -> None:
        """A new job of the pressing member from a recorded job's kept images (the press passed
        the checks; the interaction is not answered yet). The claim is settled as in
        `fetch_and_start`."""
        try:
            data = await self.services.storage.jobs.images(record.id)
            if data is None:
                hours = self.services.settings.input_ttl / 3600
                await interaction.response.send_message(
                    f"Sorry, the images of that picture are no longer kept (they are kept for {hours:g} h). "
                    "Please send them again with /stylize.",
                    ephemeral=True,
                )
                return
            await interaction.response.defer(thinking=True)
            await self.start(
                interaction, data, params, summary, claim, content_owner=record.uploader
            )
        finally:
            claim.give_back()

    async def requeue(self, record: JobRecord) -> JobHandle | None:
        """A recorded job whose bot died while it waited, queued again under its own id with its
        kept images (None if they are gone or the queue refuses it: the member is told instead)."""
        data = await self.services.storage.jobs.images(record.id)
        if data is None:
            return None
        try:
            handle = await self.services.executor.submit(
                job_of(
                    record,
                    data,
                    await job_measure(record, data[0], self.services.settings.image_limits),
                )
            )
        except SubmitError as exc:
            log.warning("job %s could not be queued again: %s", record.id, exc)
            return None
        log.info("job %s was waiting when its bot died: queued again", record.id)
        return handle

    def follow(
        self, reply: Reply, handle: JobHandle, summary: Summary, claim: Claim | None = None
    ) -> None:
        """Keep the job's message up to date until the job ends (`claim`: the member's
        cooldown, refunded if the worker finds the pictures unreadable)."""
        self.services.follow(
            JobMessage(
                self.services.client,
                reply,
                handle,
                summary,
                self.services.storage,
                self.services.look,
                edit_interval=self.services.settings.progress_edit_interval,
                metrics=self.services.metrics,
                claim=claim,
            )
        )

    async def refuse_after_defer(
        self, interaction: discord.Interaction, message: str, reason: Refusal, claim: Claim
    ) -> None:
        """No job starts: the member is told as `Reply.refuse` tells (a short public note, the
        reason privately), and the cooldown is given back first."""
        claim.give_back()
        self.services.metrics.refused(reason)
        reply = Reply.of(interaction, self.services.settings.interaction_ttl)
        await reply.refuse(self.services.client, message)
