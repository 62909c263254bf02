"""`/stylize`: check, acknowledge at once, fetch and decode the images off the loop, queue the job,
and follow it to the end. Also the Retry of a job the bot lost."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.errors import UserFacingError, message_for
from bot.cogs.picks import Picks
from bot.cogs.utils.checks import (
    check_may_start_job,
    give_back_cooldown,
    guild_settings,
    keep_cooldown,
    may_start_job,
)
from bot.cogs.utils.downloads import DownloadError
from bot.cogs.utils.inputs import Source, check_attachment, fetch, preset_choices
from bot.cogs.utils.job_message import JobMessage, upload_limit
from bot.cogs.utils.reply import Reply
from bot.cogs.utils.views import CancelButton, ResultButton, RetryButton
from bot.engine import imaging
from bot.engine.params import (
    MAX_SIZE,
    MAX_STEPS,
    ColorMode,
    InvalidParams,
    Optimizer,
    StyleParams,
)
from bot.executor.protocol import Job, JobStatus, SubmitError
from bot.guild_policy import (
    MAX_SEED,
    MAX_STRENGTH,
    MAX_STYLE_SCALE,
    MIN_SIZE,
    MIN_STYLE_SCALE,
    NothingToChange,
    Request,
    Summary,
    describe,
    may_reveal,
    params_again,
    params_for,
)
from bot.presets import Preset
from bot.storage import JobRecord
from bot.text import clip, fit_lines

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger(__name__)


class StylizeCog(commands.Cog):
    def __init__(self, bot: StyleBot):
        self.bot = bot

    @app_commands.command(
        name="stylize", description="Paint your content image in the style of another image"
    )
    @app_commands.describe(
        content="the picture to repaint (or one you picked with Apps → Stylize: use as content)",
        style="the picture whose style to use (or a preset, or one you picked in the chat)",
        preset="one of this server's saved styles, instead of a style image",
        style2="a second style image, blended with the first",
        strength="style strength: 0 keeps the picture, 1 is balanced, higher is more style",
        size="longest side of the result in pixels",
        steps="optimisation steps: more is slower and more converged",
        preserve_colors="keep the content's colours",
        seed="a number that makes the result repeatable",
        optimizer="L-BFGS converges in fewer steps; Adam is gentler",
        style_scale="size of the style's brush strokes relative to the result (0.25-2)",
    )
    @may_start_job
    async def stylize(
        self,
        interaction: discord.Interaction[StyleBot],
        content: discord.Attachment | None = None,
        style: discord.Attachment | None = None,
        preset: str | None = None,
        style2: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.0, MAX_STRENGTH] | None = None,
        size: app_commands.Range[int, MIN_SIZE, MAX_SIZE] | None = None,
        steps: app_commands.Range[int, 1, MAX_STEPS] | None = None,
        preserve_colors: ColorMode | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        optimizer: Optimizer | None = None,
        style_scale: app_commands.Range[float, MIN_STYLE_SCALE, MAX_STYLE_SCALE] | None = None,
    ) -> None:
        settings = await guild_settings(interaction)
        limits = self.bot.settings.image_limits
        for attachment, what in (
            (content, "content image"),
            (style, "style image"),
            (style2, "second style image"),
        ):
            problem = attachment and check_attachment(attachment, what, limits)
            if problem:
                raise UserFacingError(problem)
        request = Request(
            strength=strength,
            size=size,
            steps=steps,
            preserve_colors=preserve_colors,
            seed=seed,
            optimizer=optimizer,
            style_scale=style_scale,
            n_styles=2 if style2 else 1,
        )
        picked = self._picks().pending(interaction.guild_id, interaction.user.id)
        sources: list[Source] = []
        if content is not None:
            sources.append((content.url, "content image"))
        elif "content" in picked:
            sources.append((picked["content"].url, "content image"))
        else:
            raise UserFacingError(
                "Give a content image: attach one, or pick a picture in the chat with "
                "**Apps → Stylize: use as content**."
            )
        chosen: Preset | None = None
        if style is not None and preset:
            raise UserFacingError("Give a style image or a preset, not both.")
        if style is not None:
            sources.append((style.url, "style image"))
        elif preset:
            found = interaction.guild_id and await self.bot.storage.presets.get(
                interaction.guild_id, preset
            )
            if not found:
                raise UserFacingError(
                    f"This server has no preset called `{preset}`: choose one from the list "
                    "that `preset:` offers."
                )
            chosen, image = found
            sources.append((image, "style image"))
            request = chosen.fill(request)
        elif "style" in picked:
            sources.append((picked["style"].url, "style image"))
        else:
            raise UserFacingError(
                "Give a style image, a `preset:`, or pick a picture in the chat with "
                "**Apps → Stylize: use as style**."
            )
        if style2 is not None:
            sources.append((style2.url, "second style image"))
        try:
            params, summary = params_for(request, settings)
        except InvalidParams as exc:
            raise UserFacingError(f"Those options do not work: {exc}.") from None
        if chosen is not None:
            summary = replace(summary, text=f"preset {chosen.name} · {summary.text}")
        self._picks().clear(interaction.guild_id, interaction.user.id)
        await interaction.response.defer(thinking=True)
        await self.fetch_and_start(interaction, sources, params, summary)

    @stylize.autocomplete("preset")
    async def preset_choices(
        self, interaction: discord.Interaction[StyleBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return await preset_choices(self.bot, interaction.guild_id, current)

    def _picks(self) -> Picks:
        cog = self.bot.get_cog("PicksCog")
        return cog.picks if cog is not None else Picks()  # type: ignore[attr-defined]

    async def fetch_and_start(
        self,
        interaction: discord.Interaction[StyleBot],
        sources: list[Source],
        params: StyleParams,
        summary: Summary,
    ) -> None:
        """Fetch (source, what) pairs, the content first, decode them off the loop, and start the
        job; or refuse privately, having taken no slot. The interaction is deferred."""
        try:
            data = await fetch(self.bot, sources, params)
        except DownloadError as exc:
            await self._refuse_after_defer(
                interaction, f"I could not use your images: {exc}. Please try again."
            )
            return
        except (imaging.ImageError, InvalidParams) as exc:
            await self._refuse_after_defer(
                interaction, f"I cannot use that: {str(exc)[0].upper()}{str(exc)[1:]}."
            )
            return
        await self.start_job(interaction, data, params, summary)

    async def start_job(
        self,
        interaction: discord.Interaction[StyleBot],
        data: list[bytes],
        params: StyleParams,
        summary: Summary,
        *,
        content_owner: int | None = None,
    ) -> None:
        """Record, queue and follow a job whose images are checked; the interaction is deferred.
        `content_owner`: who uploaded the content, when it is not the member who asked (a
        button press on someone else's result)."""
        config = self.bot.settings
        job = Job(
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            content=data[0],
            styles=tuple(data[1:]),
            params=params.to_dict(),
            result_limit=upload_limit(interaction),
        )
        reply = Reply.of(interaction, config.interaction_ttl)
        record = JobRecord(
            id=job.id,
            user_id=job.user_id,
            guild_id=job.guild_id,
            channel_id=interaction.channel_id,
            application_id=interaction.application_id,
            token=interaction.token,
            token_expires_at=reply.token_expires_at,
            state=JobStatus.QUEUED,
            params=job.params,
            summary=summary.text,
            styles=len(job.styles),
            content_owner=content_owner or job.user_id,
        )
        # recorded before it is queued: if the bot dies from here on, the next start tells the member
        await self.bot.storage.jobs.add(record, data, keep_inputs=config.input_ttl)
        try:
            handle = await self.bot.executor.submit(job)
        except SubmitError as exc:
            await self.bot.storage.jobs.set_state(
                job.id, JobStatus.FAILED, outcome=f"Not now: {exc}.", delivered=True
            )
            await self.bot.storage.jobs.drop_images(job.id)  # a refused job keeps no images
            await self._refuse_after_defer(interaction, f"Not now: {exc}.")
            return
        keep_cooldown(interaction)
        self.bot.follow(
            JobMessage(
                self.bot,
                reply,
                handle,
                summary,
                self.bot.storage,
                edit_interval=config.progress_edit_interval,
            )
        )

    async def retry(self, interaction: discord.Interaction[StyleBot], job_id: str) -> None:
        """Run a lost job again, for the member who started it, with the images kept for it."""
        record = await self.bot.storage.jobs.get(job_id)
        if record is None or interaction.user.id != record.user_id:
            await interaction.response.send_message(
                "Only the member who started this job can retry it.", ephemeral=True
            )
            return
        await self._rerun(
            interaction, record, StyleParams.from_dict(record.params), Summary(record.summary)
        )

    async def again(
        self, interaction: discord.Interaction[StyleBot], job_id: str, action: str
    ) -> None:
        """A result button: a new job from the same images, as the member who pressed it; or
        Delete, for the member who asked or one with Manage Messages."""
        record = await self.bot.storage.jobs.get(job_id)
        if record is None:
            await interaction.response.send_message(
                "I no longer know this picture.", ephemeral=True
            )
            return
        if action == "delete":
            await self._delete(interaction, record)
            return
        owner = record.uploader
        if not may_reveal(action, interaction.user.id, owner):
            await interaction.response.send_message(
                f"Only <@{owner}>, who uploaded this picture, can ask for less style, its own "
                "colours or a larger size: those would show more of it. 🎲 and ➕ work for "
                "everyone.",
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        settings = await guild_settings(interaction)
        try:
            params, summary = params_again(
                StyleParams.from_dict(record.params), action, settings, record.styles
            )
        except NothingToChange as exc:
            await interaction.response.send_message(f"Nothing to change: {exc}.", ephemeral=True)
            return
        except InvalidParams as exc:
            await interaction.response.send_message(
                f"That does not work here: {exc}.", ephemeral=True
            )
            return
        await self._rerun(interaction, record, params, summary)

    async def _rerun(
        self,
        interaction: discord.Interaction[StyleBot],
        record: JobRecord,
        params: StyleParams,
        summary: Summary,
    ) -> None:
        """A new job of the pressing member from a recorded job's kept images."""
        try:
            await check_may_start_job(interaction)
        except app_commands.CheckFailure as exc:
            await interaction.response.send_message(message_for(exc) or "Not now.", ephemeral=True)
            return
        data = await self.bot.storage.jobs.images(record.id)
        if data is None:
            give_back_cooldown(interaction)
            hours = self.bot.settings.input_ttl / 3600
            await interaction.response.send_message(
                f"Sorry, the images of that picture are no longer kept (they are kept for {hours:g} h). "
                "Please send them again with /stylize.",
                ephemeral=True,
            )
            return
        await interaction.response.defer(thinking=True)
        await self.start_job(interaction, data, params, summary, content_owner=record.uploader)

    async def _delete(self, interaction: discord.Interaction[StyleBot], record: JobRecord) -> None:
        if interaction.user.id != record.user_id and not interaction.permissions.manage_messages:
            await interaction.response.send_message(
                "Only the member who asked for this picture, or someone with Manage Messages, can delete it.",
                ephemeral=True,
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            if interaction.message is not None:
                await interaction.message.delete()
            await interaction.followup.send("Deleted.", ephemeral=True)
        except discord.HTTPException as exc:
            await interaction.followup.send(
                f"I could not delete it ({exc.text or exc.status}).", ephemeral=True
            )

    @app_commands.command(name="stylize-history", description="Your last pictures in this server")
    async def stylize_history(self, interaction: discord.Interaction[StyleBot]) -> None:
        records = await self.bot.storage.jobs.history(interaction.user.id, interaction.guild_id)
        if not records:
            await interaction.response.send_message(
                "You have no pictures here yet: try /stylize.", ephemeral=True
            )
            return
        where = interaction.guild_id or "@me"
        lines = [
            f"<t:{int(r.created_at)}:R> · [{r.summary}]"
            f"(https://discord.com/channels/{where}/{r.channel_id}/{r.message_id})"
            for r in records
        ]
        hours = self.bot.settings.input_ttl / 3600
        await interaction.response.send_message(
            fit_lines(
                f"**Your last pictures here** (their buttons work for {hours:g} h after each was made):",
                lines,
            ),
            ephemeral=True,
        )

    @app_commands.command(
        name="stylize-help", description="What /stylize does, this server's settings, your jobs"
    )
    async def stylize_help(self, interaction: discord.Interaction[StyleBot]) -> None:
        settings = await guild_settings(interaction)
        config = self.bot.settings
        running = self.bot.executor.jobs_of(interaction.user.id)
        left = self.bot.cooldowns.left(
            interaction.guild_id, interaction.user.id, settings.cooldown_seconds
        )
        cooldown = (
            "you can start one now" if left <= 0 else f"you can start the next in {left:.0f} s"
        )
        presets = (
            await self.bot.storage.presets.list(interaction.guild_id)
            if interaction.guild_id
            else []
        )
        styles = (
            "**Presets** (`/stylize content:… preset:…`): " + ", ".join(p.name for p in presets)
            if presets
            else "This server has no style presets yet."
        )
        text = "\n".join(
            [
                "**/stylize** repaints your *content* picture in the style of a *style* picture (neural style "
                "transfer, Gatys et al., on VGG-19). Attach both, or give a `preset:` for the style; "
                "everything else is optional. You can also pick pictures already in the chat: "
                "**Apps → Stylize: use as content / use as style**.",
                "**Example:** `/stylize content:photo.jpg style:starry-night.jpg strength:2 preserve_colors:luminance` "
                "paints your photo with twice the default style, keeping its own colours.",
                "Every result has buttons: 🎲 new seed · ➕ more style · ➖ less style · 🎨 keep colours · "
                f"🔍 larger · 🗑 delete. They reuse the pictures for {config.input_ttl / 3600:g} h.",
                "",
                "**This server:**",
                describe(settings),
                styles,
                "",
                f"**You:** {running} of {config.per_user_jobs} jobs queued or running; {cooldown}.",
            ]
        )
        await interaction.response.send_message(text, ephemeral=True)

    async def _refuse_after_defer(self, interaction: discord.Interaction, message: str) -> None:
        """No job starts: the public "thinking" message becomes a short public note, and the
        reason goes to the member alone. (After a public defer Discord shows the first follow-up
        publicly and refuses one after the original is deleted: the original is edited first.)
        Should the private follow-up fail, the note itself carries the reason. The member's
        cooldown is given back."""
        give_back_cooldown(interaction)
        note = f"❌ <@{interaction.user.id}>, your job did not start"
        try:
            await interaction.edit_original_response(content=f"{note}: see why just below.")
        except discord.HTTPException as exc:
            log.warning("could not end the deferred message of a refused job: %s", exc)
        try:
            await interaction.followup.send(clip(message), ephemeral=True)
            return
        except discord.HTTPException as exc:
            log.warning("could not tell a member privately why their job was refused: %s", exc)
        try:
            await interaction.edit_original_response(content=clip(f"{note}. {message}"))
        except discord.HTTPException as exc:
            log.warning("could not tell a member why their job was refused: %s", exc)


async def setup(bot: StyleBot) -> None:
    bot.add_dynamic_items(CancelButton, RetryButton, ResultButton)
    await bot.add_cog(StylizeCog(bot))
