"""Buttons on job messages, DynamicItems that work by job id, also after a restart of the bot."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord

from bot.cogs.ui import presses
from bot.guild_policy import ResultAction
from bot.protocol.messages import JOB_ID

if TYPE_CHECKING:
    from bot.app import StyleBot


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"stylebot:cancel:(?P<job_id>{JOB_ID}):(?P<owner>[0-9]+)",
):
    """Only the member who asked, or one with Manage Messages in the channel, may press it."""

    def __init__(self, job_id: str, owner_id: int):
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.danger,
                custom_id=f"stylebot:cancel:{job_id}:{owner_id}",
            )
        )
        self.job_id, self.owner_id = job_id, owner_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ):
        return cls(match["job_id"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:
        allowed = interaction.user.id == self.owner_id or interaction.permissions.manage_messages
        if not allowed:
            await interaction.response.send_message(
                "Only the member who started this job, or someone with Manage Messages, can cancel it.",
                ephemeral=True,
            )
            return
        known = await interaction.client.executor.cancel(self.job_id)
        await interaction.response.send_message(
            "Cancelling…" if known else "This job has already ended.", ephemeral=True
        )


class RetryButton(
    discord.ui.DynamicItem[discord.ui.Button], template=rf"stylebot:retry:(?P<job_id>{JOB_ID})"
):
    """Runs a job the bot lost again, with the images kept for it (the member who started it only)."""

    def __init__(self, job_id: str):
        super().__init__(
            discord.ui.Button(
                label="Retry",
                style=discord.ButtonStyle.primary,
                custom_id=f"stylebot:retry:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ):
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:
        await presses.retry(interaction, self.job_id)


def retry_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(job_id))
    return view


BUTTON_FACES = {  # emoji and label of each ResultAction, in the order they are shown
    ResultAction.seed: ("🎲", "New seed"),
    ResultAction.more: ("➕", "More style"),
    ResultAction.less: ("➖", "Less style"),
    ResultAction.colours: ("🎨", "Keep colours"),
    ResultAction.larger: ("🔍", "Larger"),
    ResultAction.delete: ("🗑", "Delete"),
}


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"stylebot:again:(?P<action>{'|'.join(ResultAction)}):(?P<job_id>{JOB_ID})",
):
    """On every result: a new job from the same images, as the member who pressed it (their limits,
    their cooldown, this server's caps), or Delete (the member who asked, or Manage Messages)."""

    def __init__(self, action: ResultAction, job_id: str):
        emoji, label = BUTTON_FACES[action]
        style = (
            discord.ButtonStyle.danger
            if action is ResultAction.delete
            else discord.ButtonStyle.secondary
        )
        super().__init__(
            discord.ui.Button(
                emoji=emoji, label=label, style=style, custom_id=f"stylebot:again:{action}:{job_id}"
            )
        )
        self.action, self.job_id = action, job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ):
        return cls(ResultAction(match["action"]), match["job_id"])

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:
        await presses.again(interaction, self.job_id, self.action)


def result_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in BUTTON_FACES:
        view.add_item(ResultButton(action, job_id))
    return view


def cancel_view(job_id: str, owner_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id, owner_id))
    return view
