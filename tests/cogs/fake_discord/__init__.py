"""A small fake Discord on 127.0.0.1: the gateway, the REST routes the bot calls, and a CDN.

It speaks just enough of the wire protocol for the real discord.py client: HELLO, IDENTIFY,
READY, GUILD_CREATE, heartbeats, INTERACTION_CREATE; login, application info, command sync,
interaction callbacks (answering JSON), webhook message edits (JSON or multipart with files),
follow-ups, channel messages, and attachments served from /cdn/.

- server.py: FakeDiscord, its state, what members do and what the bot did;
- gateway.py: the websocket;  rest.py: the REST routes;  payloads.py: what it sends.
"""

from tests.cogs.fake_discord.payloads import (
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MEMBER_PERMISSIONS,
    OTHER_CHANNEL_ID,
    Request,
    Upload,
    user,
)
from tests.cogs.fake_discord.server import FakeDiscord

__all__ = [
    "APP_ID",
    "BOT_ID",
    "CHANNEL_ID",
    "GUILD_ID",
    "MANAGE_GUILD",
    "MANAGE_MESSAGES",
    "MEMBER_PERMISSIONS",
    "OTHER_CHANNEL_ID",
    "FakeDiscord",
    "Request",
    "Upload",
    "user",
]
