"""Images already in the chat: the message context menus "Stylize: use as content" and
"Stylize: use as style". Once a member has picked both, the job starts with the server's defaults,
through the same checks as uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.ui.checks import job_request
from bot.cogs.ui.failures import message_for
from bot.guild_policy import Request, params_for
from bot.jobs.intake import Source
from bot.jobs.picks import image_in

if TYPE_CHECKING:
    from bot.app import StyleBot


class PicksCog(commands.Cog):
    def __init__(self, bot: StyleBot):
        self.bot = bot
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
        mine = self.bot.picks.add(interaction.guild_id, interaction.user.id, role, pick)
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
            async with job_request(interaction) as (settings, claim):
                self.bot.picks.clear(interaction.guild_id, interaction.user.id)
                params, summary = params_for(Request(), settings)
                await interaction.response.defer(thinking=True)
                sources: list[Source] = [
                    (mine["content"].url, "content image"),
                    (mine["style"].url, "style image"),
                ]
                await self.bot.launcher.fetch_and_start(
                    interaction, sources, params, summary, claim
                )
        except app_commands.CheckFailure as exc:
            await interaction.response.send_message(message_for(exc) or "Not now.", ephemeral=True)


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(PicksCog(bot))
