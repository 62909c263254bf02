"""Pictures already in the chat that a member picked (the context menus "Stylize: use as content"
and "Stylize: use as style"), kept in memory until the other half is picked or /stylize uses them;
the bot keeps them as `bot.picks`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import discord

from bot.engine.params import IMAGE_TYPES

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
