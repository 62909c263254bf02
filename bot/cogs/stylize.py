"""`/stylize`: check the attachments, acknowledge at once, queue the job, follow it to the end."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.job_message import JobMessage, JobSummary, upload_limit
from bot.engine import imaging
from bot.engine.params import MAX_SIZE, MAX_STEPS, ImageLimits, InvalidParams, StyleParams
from bot.executor.protocol import Job, SubmitError
from bot.storage import GuildSettings

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger(__name__)

IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"}


def effective_params(settings: GuildSettings, *, strength: float | None, size: int | None, steps: int | None,
                     preserve_colors: str | None, seed: int | None, optimizer: str | None,
                     style_scale: float | None, n_styles: int) -> tuple[StyleParams, JobSummary]:
    """The server's defaults, overridden by what the member asked for, clamped by the server's caps."""
    notes = []
    wanted_size = size if size is not None else settings.size
    wanted_steps = steps if steps is not None else settings.steps
    if wanted_size > settings.max_size:
        notes.append(f"size capped at {settings.max_size} px by this server")
    if wanted_steps > settings.max_steps:
        notes.append(f"steps capped at {settings.max_steps} by this server")
    raw = strength is None and settings.content_weight is not None
    params = StyleParams(
        size=min(wanted_size, settings.max_size),
        steps=min(wanted_steps, settings.max_steps),
        strength=strength if strength is not None else settings.strength,
        content_weight=settings.content_weight if raw else None,
        style_weight=settings.style_weight if raw else None,
        style_layer_weights=settings.style_layer_weights,
        optimizer=optimizer or settings.optimizer,
        preserve_colors=preserve_colors or settings.preserve_colors,
        seed=seed,
        style_scale=style_scale if style_scale is not None else 1.0,
        preview_every=max(1, min(wanted_steps, settings.max_steps) // 10),
    )
    weights = f"α {params.content_weight:g} β {params.style_weight:g}" if raw else f"strength {params.strength:g}"
    text = f"{weights} · {params.size} px · {params.steps} steps"
    if params.preserve_colors != "none":
        text += f" · colours: {params.preserve_colors}"
    if n_styles > 1:
        text += f" · {n_styles} styles"
    return params, JobSummary(text, tuple(notes))


class StylizeCog(commands.Cog):
    def __init__(self, bot: StyleBot):
        self.bot = bot
        self.last_use: dict[tuple[int | None, int], float] = {}  # (guild, member) -> monotonic time
        self.followers: set[asyncio.Task] = set()

    def _limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.bot.settings.max_attachment_bytes, max_pixels=self.bot.settings.max_attachment_pixels)

    def _check_attachment(self, attachment: discord.Attachment, what: str) -> str | None:
        limits = self._limits()
        kind = (attachment.content_type or "").split(";")[0].strip().lower()
        if kind not in IMAGE_TYPES:
            return (f"The {what} (`{attachment.filename}`) is not an image I can use ({kind or 'unknown type'}). "
                    "Send PNG, JPEG, WebP, GIF or BMP.")
        if attachment.size > limits.max_bytes:
            return f"The {what} is {attachment.size / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB."
        if attachment.width and attachment.height and attachment.width * attachment.height > limits.max_pixels:
            return (f"The {what} is {attachment.width}×{attachment.height} pixels; "
                    f"at most {limits.max_pixels / 1e6:.0f} megapixels are allowed.")
        return None

    def _cooldown_left(self, interaction: discord.Interaction, settings: GuildSettings) -> float:
        last = self.last_use.get((interaction.guild_id, interaction.user.id))
        return 0.0 if last is None else settings.cooldown_seconds - (time.monotonic() - last)

    @app_commands.command(name="stylize", description="Paint your content image in the style of another image")
    @app_commands.describe(
        content="the picture to repaint",
        style="the picture whose style to use",
        style2="a second style image, blended with the first",
        strength="style strength: 0 keeps the picture, 1 is balanced, higher is more style",
        size="longest side of the result in pixels",
        steps="optimisation steps: more is slower and more converged",
        preserve_colors="keep the content's colours",
        seed="a number that makes the result repeatable",
        optimizer="L-BFGS converges in fewer steps; Adam is gentler",
        style_scale="size of the style's brush strokes relative to the result (0.25-2)",
    )
    async def stylize(
        self,
        interaction: discord.Interaction,
        content: discord.Attachment,
        style: discord.Attachment,
        style2: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.0, 100.0] | None = None,
        size: app_commands.Range[int, 64, MAX_SIZE] | None = None,
        steps: app_commands.Range[int, 1, MAX_STEPS] | None = None,
        preserve_colors: Literal["none", "luminance", "match"] | None = None,
        seed: app_commands.Range[int, 0, 2**31 - 1] | None = None,
        optimizer: Literal["lbfgs", "adam"] | None = None,
        style_scale: app_commands.Range[float, 0.25, 2.0] | None = None,
    ) -> None:
        settings = await self.bot.storage.get(interaction.guild_id) if interaction.guild_id else GuildSettings()
        if settings.allowed_channels and interaction.channel_id not in settings.allowed_channels:
            where = ", ".join(f"<#{c}>" for c in settings.allowed_channels)
            await interaction.response.send_message(f"/stylize can be used here: {where}.", ephemeral=True)
            return
        wait = self._cooldown_left(interaction, settings)
        if wait > 0:
            await interaction.response.send_message(f"Slow down: you can use /stylize again in {wait:.0f} s.", ephemeral=True)
            return
        attachments = [(content, "content image"), (style, "style image")] + ([(style2, "second style image")] if style2 else [])
        for attachment, what in attachments:
            problem = self._check_attachment(attachment, what)
            if problem:
                await interaction.response.send_message(problem, ephemeral=True)
                return
        try:
            params, summary = effective_params(settings, strength=strength, size=size, steps=steps,
                                               preserve_colors=preserve_colors, seed=seed, optimizer=optimizer,
                                               style_scale=style_scale, n_styles=len(attachments) - 1)
            params.validate()
        except InvalidParams as exc:
            await interaction.response.send_message(f"Those options do not work together: {exc}.", ephemeral=True)
            return

        await interaction.response.defer(thinking=True)
        try:
            data = [await a.read() for a, _ in attachments]
            for blob, (_, what) in zip(data, attachments, strict=True):
                imaging.probe(blob, self._limits(), name=what)
        except discord.HTTPException:
            await self._refuse_after_defer(interaction, "I could not download your attachments from Discord; please try again.")
            return
        except imaging.ImageError as exc:
            await self._refuse_after_defer(interaction, f"I cannot use that: {str(exc)[0].upper()}{str(exc)[1:]}.")
            return
        job = Job(user_id=interaction.user.id, guild_id=interaction.guild_id, content=data[0], styles=tuple(data[1:]),
                  params=params.to_dict(), result_limit=upload_limit(interaction))
        try:
            handle = await self.bot.executor.submit(job)
        except SubmitError as exc:
            await self._refuse_after_defer(interaction, f"Not now: {exc}.")
            return
        self.last_use[(interaction.guild_id, interaction.user.id)] = time.monotonic()
        follower = JobMessage(interaction, handle, summary, edit_interval=self.bot.settings.progress_edit_interval,
                              token_ttl=self.bot.settings.interaction_ttl)
        task = asyncio.create_task(follower.follow(), name=f"follow-{job.id}")
        self.followers.add(task)
        task.add_done_callback(self.followers.discard)

    async def _refuse_after_defer(self, interaction: discord.Interaction, message: str) -> None:
        """The public 'thinking' message goes away; the member alone sees why."""
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            pass
        await interaction.followup.send(message, ephemeral=True)

    async def wait_for_followers(self, timeout: float) -> None:
        if self.followers:
            await asyncio.wait(list(self.followers), timeout=timeout)


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(StylizeCog(bot))
