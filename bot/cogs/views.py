"""The Cancel button: works on any job message, also after a restart of the bot's views."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from bot.app import StyleBot


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=r"stylebot:cancel:(?P<job_id>[0-9a-f]{32}):(?P<owner>[0-9]+)"):
    """Only the member who asked, or one with Manage Messages in the channel, may press it."""

    def __init__(self, job_id: str, owner_id: int):
        super().__init__(discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger,
                                           custom_id=f"stylebot:cancel:{job_id}:{owner_id}"))
        self.job_id, self.owner_id = job_id, owner_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["job_id"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:
        allowed = interaction.user.id == self.owner_id or interaction.permissions.manage_messages
        if not allowed:
            await interaction.response.send_message(
                "Only the member who started this job, or someone with Manage Messages, can cancel it.", ephemeral=True)
            return
        known = await interaction.client.executor.cancel(self.job_id)
        await interaction.response.send_message("Cancelling…" if known else "This job has already ended.", ephemeral=True)


def cancel_view(job_id: str, owner_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id, owner_id))
    return view
