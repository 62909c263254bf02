"""Images already in the chat: the message context menus "Stylize: use as content" and
"Stylize: use as style". Once a member has picked both, the job starts with the server's defaults,
through the same checks as uploads."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.errors import message_for
from bot.cogs.utils.checks import check_may_start_job, give_back_cooldown, guild_settings
from bot.engine.params import IMAGE_TYPES
from bot.guild_policy import Request, params_for

if TYPE_CHECKING:
    from bot.app import StyleBot

PICK_SECONDS = 15 * 60  # a pick waits this long for its other half


@dataclass(frozen=True)
class Pick:
    url: str
    name: str  # for messages: the file name, or "an embedded image"
    at: float


def image_in(message: discord.Message) -> Pick | None:
    """The message's first image: an attachment of a type we take, else an embed's image."""
    for attachment in message.attachments:
        kind = (attachment.content_type or "").split(";")[0].strip().lower()
        if kind in IMAGE_TYPES:
            return Pick(attachment.url, f"`{attachment.filename}`", time.monotonic())
    for embed in message.embeds:
        for image in (embed.image, embed.thumbnail):
            url = image.proxy_url or image.url
            if url:
                return Pick(url, "an embedded image", time.monotonic())
    return None


class Picks:
    """Each member's picks per server, kept PICK_SECONDS (in memory: a restart forgets them)."""

    def __init__(self) -> None:
        self._picks: dict[tuple[int | None, int], dict[str, Pick]] = {}

    def add(self, guild_id: int | None, user_id: int, role: str, pick: Pick) -> dict[str, Pick]:
        mine = self.pending(guild_id, user_id)
        mine[role] = pick
        self._picks[(guild_id, user_id)] = mine
        return mine

    def pending(self, guild_id: int | None, user_id: int) -> dict[str, Pick]:
        """The member's picks that are still fresh, by role ("content", "style")."""
        now = time.monotonic()
        return {
            r: p
            for r, p in self._picks.get((guild_id, user_id), {}).items()
            if now - p.at < PICK_SECONDS
        }

    def clear(self, guild_id: int | None, user_id: int) -> None:
        self._picks.pop((guild_id, user_id), None)


class PicksCog(commands.Cog):
    def __init__(self, bot: StyleBot):
        self.bot = bot
        self.picks = Picks()
        self.menus = [
            app_commands.ContextMenu(name="Stylize: use as content", callback=self.use_as_content),
            app_commands.ContextMenu(name="Stylize: use as style", callback=self.use_as_style),
        ]
        for menu in self.menus:
            menu.guild_only = True

    async def cog_load(self) -> None:
        for menu in self.menus:
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    async def use_as_content(
        self, interaction: discord.Interaction[StyleBot], message: discord.Message
    ) -> None:
        await self._pick(interaction, message, "content")

    async def use_as_style(
        self, interaction: discord.Interaction[StyleBot], message: discord.Message
    ) -> None:
        await self._pick(interaction, message, "style")

    async def _pick(
        self, interaction: discord.Interaction[StyleBot], message: discord.Message, role: str
    ) -> None:
        pick = image_in(message)
        if pick is None:
            await interaction.response.send_message(
                "That message has no image I can use (an attachment or an embedded image).",
                ephemeral=True,
            )
            return
        mine = self.picks.add(interaction.guild_id, interaction.user.id, role, pick)
        other = "style" if role == "content" else "content"
        if other not in mine:
            await interaction.response.send_message(
                f"{role.title()} picked: {pick.name}. Now choose the {other}: on a message with that picture, "
                f"open **Apps → Stylize: use as {other}**; or run `/stylize` with the {other} "
                + (
                    "attached (and any options)."
                    if other == "content"
                    else "attached or a `preset:` (and any options)."
                ),
                ephemeral=True,
            )
            return
        try:
            await check_may_start_job(interaction)
        except app_commands.CheckFailure as exc:
            await interaction.response.send_message(message_for(exc) or "Not now.", ephemeral=True)
            return
        self.picks.clear(interaction.guild_id, interaction.user.id)
        params, summary = params_for(Request(), await guild_settings(interaction))
        stylize = self.bot.get_cog("StylizeCog")
        if stylize is None:
            give_back_cooldown(interaction)
            await interaction.response.send_message(
                "/stylize is not available right now.", ephemeral=True
            )
            return
        await interaction.response.defer(thinking=True)
        sources = [(mine["content"].url, "content image"), (mine["style"].url, "style image")]
        await stylize.fetch_and_start(interaction, sources, params, summary)  # type: ignore[attr-defined]


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(PicksCog(bot))
