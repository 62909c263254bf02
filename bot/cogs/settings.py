"""`/stylize-settings show|set|panel|reset` and `/stylize-settings preset add|remove|list`: a
server's defaults, caps and style presets, for members with Manage Server (checked on the server
side too)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.ui.checks import admin_only
from bot.cogs.ui.choices import preset_choices
from bot.cogs.ui.failures import UserFacingError
from bot.cogs.ui.settings_panel import SettingsPanel, panel_text
from bot.engine.params import (
    MAX_CLIP_FRAMES,
    MAX_CLIP_SECONDS,
    MAX_SIZE,
    MAX_STEPS,
    ColorMode,
    InvalidParams,
    Optimizer,
)
from bot.guild_policy import (
    MAX_COOLDOWN,
    MAX_STRENGTH,
    MEMBER_MIN_SIZE,
    GuildSettings,
    SettingsError,
    describe,
)
from bot.jobs.downloads import DownloadError
from bot.jobs.intake import check_attachment, fetch
from bot.media.imaging import ImageError
from bot.presets import NAME_MAX, Preset, PresetError, checked
from bot.text import fit_lines

if TYPE_CHECKING:
    from bot.app import StyleBot


def _guild(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:  # guild_only: Discord does not offer these commands elsewhere
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in re.split(r"[,\s]+", text.strip()) if v)
    except ValueError:
        raise UserFacingError(
            f"`{text}` is not a list of numbers (for example `0.2, 0.2, 0.2, 0.2, 0.2`)."
        ) from None


def _channels(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("all", "any", "every", "*"):
        return ()
    ids = tuple(int(m) for m in re.findall(r"\d{5,}", text))
    if not ids:
        raise UserFacingError("Name channels as #mentions or ids, or `all` for every channel.")
    return ids


@admin_only
@app_commands.guild_only()
class SettingsCog(
    commands.GroupCog,
    group_name="stylize-settings",
    group_description="This server's /stylize defaults (Manage Server)",
):
    def __init__(self, bot: StyleBot):
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show", description="Show this server's /stylize settings")
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self.bot.storage.settings.read(_guild(interaction))
        await interaction.response.send_message(describe(settings), ephemeral=True)

    @app_commands.command(name="set", description="Change this server's /stylize defaults and caps")
    @app_commands.describe(
        strength="default style strength (0-100; 1 is balanced); clears alpha and beta",
        alpha="raw content weight α (with beta; replaces strength)",
        beta="raw style weight β (with alpha)",
        layer_weights="λ for relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, e.g. 0.2,0.2,0.2,0.2,0.2 (or 'equal')",
        steps="default steps at the final size; 0: the size's own schedule (the fastest)",
        size="default longest side in pixels",
        optimizer="default optimizer",
        preserve_colors="default colour preservation",
        max_size="the largest size members may ask for",
        max_steps="the most steps members may ask for",
        cooldown="seconds between two /stylize of one member",
        channels="channels where /stylize works (#mentions), or 'all'",
        clip_frames="moving pictures: the most frames painted (a higher frame rate is lowered)",
        clip_seconds="moving pictures: longer clips are cut to their first this many seconds",
        clip_size="moving pictures: the largest size in pixels (a clip costs its frames)",
    )
    async def set_(
        self,
        interaction: discord.Interaction,
        strength: app_commands.Range[float, 0.0, MAX_STRENGTH] | None = None,
        alpha: app_commands.Range[float, 0.0] | None = None,
        beta: app_commands.Range[float, 0.0] | None = None,
        layer_weights: str | None = None,
        steps: app_commands.Range[int, 0, MAX_STEPS] | None = None,
        size: app_commands.Range[int, MEMBER_MIN_SIZE, MAX_SIZE] | None = None,
        optimizer: Optimizer | None = None,
        preserve_colors: ColorMode | None = None,
        max_size: app_commands.Range[int, MEMBER_MIN_SIZE, MAX_SIZE] | None = None,
        max_steps: app_commands.Range[int, 1, MAX_STEPS] | None = None,
        cooldown: app_commands.Range[int, 0, MAX_COOLDOWN] | None = None,
        channels: str | None = None,
        clip_frames: app_commands.Range[int, 1, MAX_CLIP_FRAMES] | None = None,
        clip_seconds: app_commands.Range[float, 0.5, MAX_CLIP_SECONDS] | None = None,
        clip_size: app_commands.Range[int, MEMBER_MIN_SIZE, MAX_SIZE] | None = None,
    ) -> None:
        changes: dict = {}
        if strength is not None:
            changes.update(strength=strength, content_weight=None, style_weight=None)
        if alpha is not None or beta is not None:
            changes.update(content_weight=alpha, style_weight=beta)
        if layer_weights is not None:
            changes["style_layer_weights"] = (
                None if layer_weights.strip().lower() == "equal" else _floats(layer_weights)
            )
        for name, value in (
            ("steps", steps),
            ("size", size),
            ("optimizer", optimizer),
            ("preserve_colors", preserve_colors),
            ("max_size", max_size),
            ("max_steps", max_steps),
            ("cooldown_seconds", cooldown),
            ("clip_frames", clip_frames),
            ("clip_seconds", clip_seconds),
            ("clip_size", clip_size),
        ):
            if value is not None:
                changes[name] = value
        if channels is not None:
            changes["allowed_channels"] = _channels(channels)
        if not changes:
            raise UserFacingError("Nothing to change: give at least one option.")
        current = await self.bot.storage.settings.read(_guild(interaction))
        try:
            updated = current.replace(**changes)
        except SettingsError as exc:
            raise UserFacingError(f"Not saved: {exc}.") from None
        await self.bot.storage.settings.write(_guild(interaction), updated, by=interaction.user.id)
        await interaction.response.send_message(
            "Saved. The next /stylize uses:\n" + describe(updated), ephemeral=True
        )

    @app_commands.command(
        name="panel", description="Change this server's /stylize settings with menus"
    )
    async def panel(self, interaction: discord.Interaction) -> None:
        current = await self.bot.storage.settings.read(_guild(interaction))
        await interaction.response.send_message(
            panel_text(current), view=SettingsPanel(self.bot, current), ephemeral=True
        )

    # --- presets --------------------------------------------------------------------------------

    preset = app_commands.Group(
        name="preset", description="Named style images that members use with /stylize preset:"
    )

    @preset.command(name="add", description="Save a style image under a name")
    @app_commands.describe(
        name="what members choose in /stylize preset: (letters, digits, spaces)",
        image="the style image",
        strength="the preset's own style strength (0-100), unless the member gives one",
        preserve_colors="the preset's own colour mode, unless the member gives one",
    )
    async def preset_add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, NAME_MAX],
        image: discord.Attachment,
        strength: app_commands.Range[float, 0.0, MAX_STRENGTH] | None = None,
        preserve_colors: ColorMode | None = None,
    ) -> None:
        guild = _guild(interaction)
        try:
            preset = checked(
                Preset(
                    name=name,
                    strength=strength,
                    preserve_colors=preserve_colors,
                    created_by=interaction.user.id,
                )
            )
        except PresetError as exc:
            raise UserFacingError(f"Not saved: {exc}.") from None
        problem = check_attachment(image, "style image", self.bot.settings.image_limits)
        if problem:
            raise UserFacingError(problem)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            (data,), _ = await fetch(
                self.bot.session, self.bot.settings, [(image.url, "style image")], None
            )
            await self.bot.storage.presets.add(
                guild, preset, data, limit=self.bot.settings.max_presets
            )
        except (DownloadError, ImageError, InvalidParams, PresetError) as exc:
            raise UserFacingError(f"Not saved: {exc}.") from None
        await interaction.followup.send(
            f"Saved the preset {preset.describe()}. Members use it with `/stylize preset:{preset.name}`.",
            ephemeral=True,
        )

    @preset.command(name="remove", description="Delete a preset and its image")
    @app_commands.describe(name="the preset to delete")
    async def preset_remove(self, interaction: discord.Interaction, name: str) -> None:
        removed = await self.bot.storage.presets.remove(_guild(interaction), name)
        if removed is None:
            raise UserFacingError(f"This server has no preset called `{name}`.")
        await interaction.response.send_message(
            f"Removed the preset **{removed.name}**.", ephemeral=True
        )

    @preset.command(name="list", description="This server's presets")
    async def preset_list(self, interaction: discord.Interaction) -> None:
        presets = await self.bot.storage.presets.list(_guild(interaction))
        limit = self.bot.settings.max_presets
        if not presets:
            text = f"No presets yet (up to {limit}): add one with `/stylize-settings preset add`."
        else:
            text = fit_lines(
                f"{len(presets)} of {limit} presets:",
                [f"- {p.describe()} (added by <@{p.created_by}>)" for p in presets],
            )
        await interaction.response.send_message(
            text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @preset_remove.autocomplete("name")
    async def preset_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await preset_choices(self.bot, interaction.guild_id, current)

    @app_commands.command(
        name="reset", description="Put this server's /stylize settings back to the defaults"
    )
    async def reset(self, interaction: discord.Interaction) -> None:
        await self.bot.storage.settings.reset(_guild(interaction))
        await interaction.response.send_message(
            "Back to the defaults:\n" + describe(GuildSettings()), ephemeral=True
        )


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(SettingsCog(bot))
