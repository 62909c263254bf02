"""`/stylize-settings panel`: the server's settings as select menus and a modal, over the same
policy as `/stylize-settings set` (GuildSettings.replace validates; the storage keeps it).
Every press checks Manage Server on the server side, whoever can see the message."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

import discord

from bot.engine.params import ColorMode, Optimizer
from bot.guild_policy import GuildSettings, SettingsError, describe

if TYPE_CHECKING:
    from bot.app import StyleBot

PANEL_SECONDS = 600  # then the panel stops answering: open it again
STEP_CHOICES = (50, 100, 200, 300, 500, 1000, 2000)
SIZE_CHOICES = (256, 384, 512, 768, 1024, 1536, 2048)
# how the choices of bot/engine/params.py read in the menus (a choice without a label reads as
# its name)
OPTIMIZER_LABELS = {Optimizer.lbfgs: "L-BFGS (fewer steps)", Optimizer.adam: "Adam (gentler)"}
COLOUR_MODE_LABELS = {
    ColorMode.none: "Colours from the style",
    ColorMode.luminance: "Keep the content's colours (luminance)",
    ColorMode.match: "Keep the content's colours (match)",
}


def panel_text(settings: GuildSettings, note: str | None = None) -> str:
    head = note or "Choose new defaults below: each change is saved at once."
    return f"{head}\n\n{describe(settings)}"


def _labelled(choices: type[StrEnum], labels: dict[Any, str]) -> dict[str, str]:
    return {str(c): labels.get(c, str(c)) for c in choices}


def _options(values: dict[str, str], current: str) -> list[discord.SelectOption]:
    if current not in values:
        values = {current: current, **values}
    return [
        discord.SelectOption(label=label, value=value, default=value == current)
        for value, label in values.items()
    ]


class SettingsPanel(discord.ui.View):
    def __init__(self, bot: StyleBot, settings: GuildSettings):
        super().__init__(timeout=PANEL_SECONDS)
        self.bot = bot
        self._show(settings)

    def _show(self, settings: GuildSettings) -> None:
        # only what the caps allow (the modal changes the caps)
        self.steps.options = _options(
            {
                "0": "The size's schedule (fastest)",
                **{
                    str(v): f"{v} steps by default" for v in STEP_CHOICES if v <= settings.max_steps
                },
            },
            str(settings.steps),
        )
        self.size.options = _options(
            {str(v): f"{v} px by default" for v in SIZE_CHOICES if v <= settings.max_size},
            str(settings.size),
        )
        self.optimizer.options = _options(
            _labelled(Optimizer, OPTIMIZER_LABELS), settings.optimizer
        )
        self.colours.options = _options(
            _labelled(ColorMode, COLOUR_MODE_LABELS), settings.preserve_colors
        )

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            await interaction.response.send_message(
                "You need the Manage Server permission to do this.", ephemeral=True
            )
            return False
        return True

    async def save(self, interaction: discord.Interaction, **changes: Any) -> None:
        assert interaction.guild_id is not None  # interaction_check
        current = await self.bot.storage.settings.read(interaction.guild_id)
        try:
            updated = current.replace(**changes)
        except SettingsError as exc:
            await interaction.response.send_message(f"Not saved: {exc}.", ephemeral=True)
            return
        await self.bot.storage.settings.write(interaction.guild_id, updated, by=interaction.user.id)
        self._show(updated)
        await interaction.response.edit_message(content=panel_text(updated, "Saved."), view=self)

    @discord.ui.select(placeholder="Default steps", row=0)
    async def steps(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await self.save(interaction, steps=int(select.values[0]))

    @discord.ui.select(placeholder="Default size", row=1)
    async def size(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await self.save(interaction, size=int(select.values[0]))

    @discord.ui.select(placeholder="Optimizer", row=2)
    async def optimizer(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await self.save(interaction, optimizer=select.values[0])

    @discord.ui.select(placeholder="Colours", row=3)
    async def colours(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await self.save(interaction, preserve_colors=select.values[0])

    @discord.ui.button(label="Strength, caps, cooldown…", style=discord.ButtonStyle.primary, row=4)
    async def numbers(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        assert interaction.guild_id is not None
        current = await self.bot.storage.settings.read(interaction.guild_id)
        await interaction.response.send_modal(NumbersModal(self, current))


class NumbersModal(discord.ui.Modal, title="Strength, caps and cooldown"):
    def __init__(self, panel: SettingsPanel, settings: GuildSettings):
        super().__init__(timeout=PANEL_SECONDS)
        self.panel = panel
        raw = settings.content_weight is not None
        # with raw alpha and beta set, the field starts empty: left empty, they are kept
        self.shown_strength = "" if raw else f"{settings.strength:g}"
        self.strength = discord.ui.TextInput(
            label="Strength (0-100)" + (": empty keeps alpha/beta" if raw else "; 1 is balanced"),
            default=self.shown_strength,
            required=not raw,
        )
        self.max_size = discord.ui.TextInput(
            label="Largest size members may ask for (px)", default=str(settings.max_size)
        )
        self.max_steps = discord.ui.TextInput(
            label="Most steps members may ask for", default=str(settings.max_steps)
        )
        self.cooldown = discord.ui.TextInput(
            label="Seconds between two jobs of a member", default=str(settings.cooldown_seconds)
        )
        for field in (self.strength, self.max_size, self.max_steps, self.cooldown):
            self.add_item(field)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await self.panel.interaction_check(interaction)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        try:
            changes: dict[str, Any] = {
                "max_size": int(self.max_size.value),
                "max_steps": int(self.max_steps.value),
                "cooldown_seconds": int(self.cooldown.value),
            }
            if self.strength.value.strip() != self.shown_strength:  # a new strength replaces α/β
                changes.update(
                    strength=float(self.strength.value), content_weight=None, style_weight=None
                )
        except ValueError:
            await interaction.response.send_message(
                "Not saved: give plain numbers (strength may have a decimal point).",
                ephemeral=True,
            )
            return
        await self.panel.save(interaction, **changes)
