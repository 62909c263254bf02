"""`/stylize`, `/stylize-history` and `/stylize-help`. /stylize checks the member's options,
acknowledges at once, and hands the images' sources to the launcher (bot/jobs/launcher.py),
which fetches them off the loop, queues the job and follows it to the end."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.ui.checks import guild_settings, job_request
from bot.cogs.ui.choices import preset_choices
from bot.cogs.ui.failures import UserFacingError
from bot.cogs.ui.views import CancelButton, ResultButton, RetryButton
from bot.engine.params import (
    MAX_SIZE,
    MAX_STEPS,
    MAX_TYPED_SEED,
    ColorMode,
    InvalidParams,
    Optimizer,
    StyleParams,
)
from bot.guild_policy import (
    MAX_STRENGTH,
    MAX_STYLE_SCALE,
    MEMBER_MIN_SIZE,
    MIN_STYLE_SCALE,
    GuildSettings,
    Request,
    Summary,
    describe,
    params_for,
)
from bot.jobs.cooldown import Claim
from bot.jobs.intake import Source, check_attachment
from bot.jobs.refusals import Refusal
from bot.text import MESSAGE_LIMIT, clip, fit_lines, join_within

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger(__name__)


class StylizeCog(commands.Cog):
    def __init__(self, bot: StyleBot):
        self.bot = bot

    # a long function (over 60 lines): its signature declares each of the command's options
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
    async def stylize(
        self,
        interaction: discord.Interaction[StyleBot],
        content: discord.Attachment | None = None,
        style: discord.Attachment | None = None,
        preset: str | None = None,
        style2: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.0, MAX_STRENGTH] | None = None,
        size: app_commands.Range[int, MEMBER_MIN_SIZE, MAX_SIZE] | None = None,
        steps: app_commands.Range[int, 1, MAX_STEPS] | None = None,
        preserve_colors: ColorMode | None = None,
        seed: app_commands.Range[int, 0, MAX_TYPED_SEED] | None = None,
        optimizer: Optimizer | None = None,
        style_scale: app_commands.Range[float, MIN_STYLE_SCALE, MAX_STYLE_SCALE] | None = None,
    ) -> None:
        async with job_request(interaction) as (settings, claim):
            limits = self.bot.settings.image_limits
            for attachment, what in (
                (content, "content image"),
                (style, "style image"),
                (style2, "second style image"),
            ):
                problem = attachment and check_attachment(
                    attachment, what, limits, moving=what == "content image"
                )
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
            picked = self.bot.picks.pending(interaction.guild_id, interaction.user.id)
            if content is None and "content" not in picked:
                raise UserFacingError(
                    "Give a content image: attach one, or pick a picture in the chat with "
                    "**Apps → Stylize: use as content**."
                )
            if style is not None and preset:
                raise UserFacingError("Give a style image or a preset, not both.")
            if style is None and not preset and "style" not in picked:
                raise UserFacingError(
                    "Give a style image, a `preset:`, or pick a picture in the chat with "
                    "**Apps → Stylize: use as style**."
                )
            if not preset:  # the options are checked before the defer, privately
                params, summary = options_for(request, settings)
            self.bot.picks.clear(interaction.guild_id, interaction.user.id)
            await interaction.response.defer(thinking=True)
            # from here on a refusal goes through the launcher (the interaction is deferred)
            sources: list[Source] = [
                (content.url if content is not None else picked["content"].url, "content image")
            ]
            if preset:  # read after the defer: the database may be slow
                found = await self._preset(interaction, preset, request, settings, claim)
                if found is None:
                    return
                params, summary, image = found
                sources.append((image, "style image"))
            else:
                sources.append(
                    (style.url if style is not None else picked["style"].url, "style image")
                )
            if style2 is not None:
                sources.append((style2.url, "second style image"))
            await self.bot.launcher.fetch_and_start(interaction, sources, params, summary, claim)

    async def _preset(
        self,
        interaction: discord.Interaction[StyleBot],
        name: str,
        request: Request,
        settings: GuildSettings,
        claim: Claim,
    ) -> tuple[StyleParams, Summary, bytes] | None:
        """The job's parameters with a preset's, and its image; None when the member was told
        why not (the interaction is deferred)."""
        found = interaction.guild_id and await self.bot.storage.presets.get(
            interaction.guild_id, name
        )
        if not found:
            await self.bot.launcher.refuse_after_defer(
                interaction,
                f"This server has no preset called `{name}`: choose one from the list "
                "that `preset:` offers.",
                Refusal.NO_PRESET,
                claim,
            )
            return None
        chosen, image = found
        try:
            params, summary = options_for(chosen.fill(request), settings)
        except UserFacingError as exc:
            await self.bot.launcher.refuse_after_defer(
                interaction, str(exc), Refusal.BAD_INPUT, claim
            )
            return None
        return params, replace(summary, text=f"preset {chosen.name} · {summary.text}"), image

    @stylize.autocomplete("preset")
    async def preset_choices(
        self, interaction: discord.Interaction[StyleBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return await preset_choices(self.bot, interaction.guild_id, current)

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
                "{presets}",
                "",
                f"**You:** {running} of {config.per_user_jobs} jobs queued or running; {cooldown}.",
            ]
        )
        head = "**Presets** (`/stylize content:… preset:…`): "
        room = MESSAGE_LIMIT - len(text) + len("{presets}") - len(head)
        styles = (
            head + join_within([p.name for p in presets], room)
            if presets
            else "This server has no style presets yet."
        )
        await interaction.response.send_message(
            clip(text.replace("{presets}", styles)), ephemeral=True
        )


def options_for(request: Request, settings: GuildSettings) -> tuple[StyleParams, Summary]:
    """The job's parameters from the member's options and the server's settings."""
    try:
        return params_for(request, settings)
    except InvalidParams as exc:
        raise UserFacingError(f"Those options do not work: {exc}.") from None


async def setup(bot: StyleBot) -> None:
    bot.add_dynamic_items(CancelButton, RetryButton, ResultButton)
    await bot.add_cog(StylizeCog(bot))
