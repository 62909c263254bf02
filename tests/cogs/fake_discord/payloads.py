"""What the fake Discord sends: ids, users, members, the guild, interactions and messages, in
the shapes discord.py parses; and what it records of the bot's requests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

APP_ID = 700000000000000001
BOT_ID = APP_ID
GUILD_ID = 710000000000000001
CHANNEL_ID = 720000000000000001
OTHER_CHANNEL_ID = 720000000000000002
TIMESTAMP = "2026-11-28T12:00:00.000000+00:00"
MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 15)  # view channel, send messages, attach files
CONTENT_LIMIT = 2000  # Discord's limit on a message's content, in characters


@dataclass
class Upload:
    filename: str
    data: bytes


@dataclass
class Request:
    """A REST request of the bot, as the fake received it."""

    method: str
    path: str
    json: Any
    files: list[Upload] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only if Content-Type is exactly application/json
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def error(status: int, message: str, code: int) -> web.Response:
    return json_response({"message": message, "code": code}, status=status)


def user(user_id: int, name: str, *, bot: bool = False) -> dict:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


BOT_USER = user(BOT_ID, "stylebot", bot=True)

APPLICATION = {
    "id": str(APP_ID),
    "name": "stylebot",
    "description": "",
    "icon": None,
    "bot_public": True,
    "bot_require_code_grant": False,
    "owner": user(1, "owner"),
    "verify_key": "0" * 64,
    "flags": 0,
    "team": None,
    "summary": "",
}


def member(user_data: dict, permissions: int) -> dict:
    return {
        "user": user_data,
        "roles": [],
        "joined_at": TIMESTAMP,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "permissions": str(permissions),
        "nick": None,
        "avatar": None,
        "pending": False,
        "premium_since": None,
        "communication_disabled_until": None,
    }


def ready(gateway_url: str) -> dict:
    return {
        "v": 10,
        "user": BOT_USER,
        "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
        "session_id": "fake-session",
        "resume_gateway_url": gateway_url,
        "shard": [0, 1],
        "application": {"id": str(APP_ID), "flags": 0},
        "private_channels": [],
        "relationships": [],
    }


def guild() -> dict:
    """The one server, with two text channels; @everyone has MEMBER_PERMISSIONS."""
    channel = {
        "type": 0,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "guild_id": str(GUILD_ID),
    }
    return {
        "id": str(GUILD_ID),
        "name": "Test server",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": "1",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "features": [],
        "emojis": [],
        "stickers": [],
        "roles": [
            {
                "id": str(GUILD_ID),
                "name": "@everyone",
                "permissions": str(MEMBER_PERMISSIONS),
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
        ],
        "channels": [
            {**channel, "id": str(CHANNEL_ID), "name": "general"},
            {**channel, "id": str(OTHER_CHANNEL_ID), "name": "other", "position": 1},
        ],
        "threads": [],
        "members": [member(BOT_USER, MEMBER_PERMISSIONS)],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "member_count": 3,
        "large": False,
        "unavailable": False,
        "joined_at": TIMESTAMP,
    }


def interaction(
    interaction_id: str,
    token: str,
    kind: int,
    member_user: dict,
    permissions: int,
    data: dict,
    channel_id: int = CHANNEL_ID,
    message: dict | None = None,
) -> dict:
    """An INTERACTION_CREATE of a member of the server, in `channel_id`."""
    payload = {
        "id": interaction_id,
        "application_id": str(APP_ID),
        "type": kind,
        "token": token,
        "version": 1,
        "guild_id": str(GUILD_ID),
        "channel_id": str(channel_id),
        "channel": {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(GUILD_ID),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        },
        "member": member(member_user, permissions),
        "app_permissions": str(MEMBER_PERMISSIONS),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(GUILD_ID)},
        "context": 0,
        "attachment_size_limit": 10 * 1024 * 1024,
        "data": data,
    }
    if message is not None:
        payload["message"] = message
    return payload


def message(
    message_id: str,
    channel_id: int,
    data: dict | None,
    attachments: list[dict],
    *,
    flags: int = 0,
) -> dict:
    """A message of the bot (sent through its application's webhook)."""
    data = data or {}
    return {
        "id": message_id,
        "channel_id": str(channel_id),
        "guild_id": str(GUILD_ID),
        "author": BOT_USER,
        "content": data.get("content") or "",
        "timestamp": TIMESTAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments,
        "embeds": data.get("embeds") or [],
        "pinned": False,
        "type": 0,
        "flags": data.get("flags", flags) or 0,
        "components": data.get("components") or [],
        "webhook_id": str(APP_ID),
        "application_id": str(APP_ID),
    }


def nested(options: list[dict], subcommand: str | None) -> list[dict]:
    """A command's options, inside its subcommand: "show", or "preset add" (a subcommand in a
    group)."""
    if subcommand is None:
        return options
    *group, leaf = subcommand.split()
    options = [{"name": leaf, "type": 1, "options": options}]
    if group:
        options = [{"name": group[0], "type": 2, "options": options}]
    return options


def over_limits(payload: Any) -> web.Response | None:
    """Discord's answer to a message whose content is too long (an interaction callback carries
    its message under "data"): 400 Invalid Form Body, code 50035."""
    if not isinstance(payload, dict):
        return None
    body = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    content = body.get("content") if isinstance(body, dict) else None
    if isinstance(content, str) and len(content) > CONTENT_LIMIT:
        problem = {
            "code": "BASE_TYPE_MAX_LENGTH",
            "message": f"Must be {CONTENT_LIMIT} or fewer in length.",
        }
        return json_response(
            {
                "message": "Invalid Form Body",
                "code": 50035,
                "errors": {"content": {"_errors": [problem]}},
            },
            status=400,
        )
    return None
