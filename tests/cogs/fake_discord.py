"""A small fake Discord on 127.0.0.1: the gateway, the REST routes the bot calls, and a CDN.

It speaks just enough of the wire protocol for the real discord.py client: HELLO, IDENTIFY,
READY, GUILD_CREATE, heartbeats, INTERACTION_CREATE; login, application info, command sync,
interaction callbacks (answering JSON), webhook message edits (JSON or multipart with files),
follow-ups, channel messages, and attachments served from /cdn/.
"""

from __future__ import annotations

import asyncio
import itertools
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


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only if Content-Type is exactly application/json
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


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


@dataclass
class Upload:
    filename: str
    data: bytes


@dataclass
class Request:
    method: str
    path: str
    json: Any
    files: list[Upload] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


class FakeDiscord:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.originals: dict[str, dict] = {}  # interaction token -> the current original message
        self.deleted_originals: set[str] = set()  # tokens whose original message was deleted
        self.ids = itertools.count(800000000000000001)
        self.sockets: list[web.WebSocketResponse] = []
        self.sequence = 0
        self.changed = asyncio.Condition()
        self.base = ""
        self._runner: web.AppRunner | None = None
        self.identified = asyncio.Event()
        self.refusing = (
            False  # when True, message edits and channel posts fail with 404 (Discord trouble)
        )

    # --- running ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/gateway", self.gateway)
        app.router.add_get("/cdn/{name}", self.serve_cdn)
        app.router.add_route("*", "/api/v10/{tail:.*}", self.rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return self.base + "/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.base.replace("http", "ws") + "/gateway"

    async def _record(self, request: Request) -> None:
        async with self.changed:
            self.requests.append(request)
            self.changed.notify_all()

    async def wait_for(self, predicate, timeout: float = 60.0):
        """Wait until predicate(self) is truthy; return its value."""

        async def check():
            async with self.changed:
                while not (value := predicate(self)):
                    await self.changed.wait()
                return value

        return await asyncio.wait_for(check(), timeout)

    # --- gateway ------------------------------------------------------------------------------

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_str(
            json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        )
        async for message in ws:
            data = json.loads(message.data)
            if data["op"] == 1:
                await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
            elif data["op"] == 2:
                await self._dispatch(
                    ws,
                    "READY",
                    {
                        "v": 10,
                        "user": BOT_USER,
                        "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                        "session_id": "fake-session",
                        "resume_gateway_url": self.gateway_url,
                        "shard": [0, 1],
                        "application": {"id": str(APP_ID), "flags": 0},
                        "private_channels": [],
                        "relationships": [],
                    },
                )
                await self._dispatch(ws, "GUILD_CREATE", self.guild())
                self.identified.set()
        return ws

    async def _dispatch(self, ws, event: str, data: dict) -> None:
        self.sequence += 1
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": self.sequence, "d": data}))

    async def send_event(self, event: str, data: dict) -> None:
        await self.identified.wait()
        await self._dispatch(self.sockets[-1], event, data)

    def guild(self) -> dict:
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
            "members": [self.member(BOT_USER, MEMBER_PERMISSIONS)],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "member_count": 3,
            "large": False,
            "unavailable": False,
            "joined_at": TIMESTAMP,
        }

    @staticmethod
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

    # --- what a member does -------------------------------------------------------------------

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str,
        width: int | None = None,
        height: int | None = None,
    ) -> dict:
        name = f"{next(self.ids)}-{filename}"
        self.cdn[name] = (data, content_type)
        attachment_id = str(next(self.ids))
        info = {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": f"{self.base}/cdn/{name}",
            "proxy_url": f"{self.base}/cdn/{name}",
            "content_type": content_type,
        }
        if width is not None:
            info.update(width=width, height=height)
        return info

    def _interaction(
        self,
        kind: int,
        member_user: dict,
        permissions: int,
        data: dict,
        channel_id: int = CHANNEL_ID,
        message: dict | None = None,
    ) -> tuple[dict, str]:
        token = f"token-{next(self.ids)}"
        payload = {
            "id": str(next(self.ids)),
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
            "member": self.member(member_user, permissions),
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
        return payload, token

    async def slash(
        self,
        name: str,
        options: list[dict],
        *,
        member_user: dict,
        permissions: int = MEMBER_PERMISSIONS,
        attachments: list[dict] = (),
        channel_id: int = CHANNEL_ID,
        subcommand: str | None = None,
    ) -> str:
        """Send an application command; returns its interaction token."""
        data = {
            "id": str(next(self.ids)),
            "name": name,
            "type": 1,
            "options": _nested(options, subcommand),
            "resolved": {"attachments": {a["id"]: a for a in attachments}},
        }
        payload, token = self._interaction(2, member_user, permissions, data, channel_id)
        await self.send_event("INTERACTION_CREATE", payload)
        return token

    def member_message(
        self, author: dict, attachments: list[dict], embeds: list[dict] = ()
    ) -> dict:
        """A message a member posted in the channel, with these attachments (see add_attachment)."""
        message = self.message(CHANNEL_ID, {"content": "look at this"}, [])
        message.update(
            author=author,
            attachments=list(attachments),
            embeds=list(embeds),
            webhook_id=None,
            application_id=None,
        )
        return message

    async def context_menu(
        self, name: str, message: dict, *, member_user: dict, permissions: int = MEMBER_PERMISSIONS
    ) -> str:
        """Use a message context-menu command on `message`; returns the interaction token."""
        data = {
            "id": str(next(self.ids)),
            "name": name,
            "type": 3,
            "target_id": message["id"],
            "resolved": {"messages": {message["id"]: message}},
        }
        payload, token = self._interaction(2, member_user, permissions, data)
        await self.send_event("INTERACTION_CREATE", payload)
        return token

    async def autocomplete(
        self,
        name: str,
        options: list[dict],
        *,
        member_user: dict,
        permissions: int = MEMBER_PERMISSIONS,
        subcommand: str | None = None,
    ) -> list[dict]:
        """Ask for the choices of the option marked "focused"; returns them."""
        data = {
            "id": str(next(self.ids)),
            "name": name,
            "type": 1,
            "options": _nested(options, subcommand),
        }
        payload, token = self._interaction(4, member_user, permissions, data)
        await self.send_event("INTERACTION_CREATE", payload)
        (answer,) = await self.wait_for(lambda f: f.callbacks(token))
        return answer.json["data"]["choices"]

    async def select(
        self,
        custom_id: str,
        values: list[str],
        message: dict,
        *,
        member_user: dict,
        permissions: int = MEMBER_PERMISSIONS,
    ) -> str:
        payload, token = self._interaction(
            3,
            member_user,
            permissions,
            {"custom_id": custom_id, "component_type": 3, "values": values},
            message=message,
        )
        await self.send_event("INTERACTION_CREATE", payload)
        return token

    async def submit_modal(
        self,
        custom_id: str,
        fields: dict[str, str],
        *,
        member_user: dict,
        permissions: int = MEMBER_PERMISSIONS,
        message: dict | None = None,
    ) -> str:
        """Submit a modal: `fields` maps each text input's custom_id to its value."""
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
            for k, v in fields.items()
        ]
        payload, token = self._interaction(
            5,
            member_user,
            permissions,
            {"custom_id": custom_id, "components": rows},
            message=message,
        )
        await self.send_event("INTERACTION_CREATE", payload)
        return token

    async def press(
        self,
        custom_id: str,
        message: dict,
        *,
        member_user: dict,
        permissions: int = MEMBER_PERMISSIONS,
    ) -> str:
        payload, token = self._interaction(
            3,
            member_user,
            permissions,
            {"custom_id": custom_id, "component_type": 2},
            message=message,
        )
        await self.send_event("INTERACTION_CREATE", payload)
        return token

    # --- what the bot did ---------------------------------------------------------------------

    def callbacks(self, token: str) -> list[Request]:
        return [
            r for r in self.requests if r.method == "POST" and r.path.endswith(f"/{token}/callback")
        ]

    def edits(self, token: str) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.method == "PATCH" and f"/{token}/messages/@original" in r.path
        ]

    def followups(self, token: str) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path.endswith(f"/webhooks/{APP_ID}/{token}")
        ]

    def channel_messages(self, channel_id: int = CHANNEL_ID) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path == f"/channels/{channel_id}/messages"
        ]

    # --- REST ---------------------------------------------------------------------------------

    async def serve_cdn(self, request: web.Request) -> web.Response:
        data, content_type = self.cdn[request.match_info["name"]]
        return web.Response(body=data, content_type=content_type)

    async def _body(self, request: web.Request) -> tuple[Any, list[Upload]]:
        if request.content_type.startswith("multipart/"):
            payload, files = None, []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    files.append(Upload(part.filename or "", bytes(await part.read())))
            return payload, files
        text = await request.text()
        return (json.loads(text) if text else None), []

    def message(
        self,
        channel_id: int,
        data: dict | None,
        files: list[Upload],
        *,
        message_id: int | None = None,
        flags: int = 0,
    ) -> dict:
        data = data or {}
        attachments = [
            {
                "id": str(next(self.ids)),
                "filename": f.filename,
                "size": len(f.data),
                "url": f"{self.base}/cdn/x",
                "proxy_url": f"{self.base}/cdn/x",
            }
            for f in files
        ]
        return {
            "id": str(message_id or next(self.ids)),
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

    async def rest(self, request: web.Request) -> web.StreamResponse:
        # the path as sent: a client that percent-quotes "@original" asks for a message of that
        # id, as Discord would see it, and gets Unknown Message
        path = request.raw_path.split("?")[0].removeprefix("/api/v10")
        payload, files = await self._body(request)
        await self._record(Request(request.method, path, payload, files))
        if (refusal := _over_limits(payload)) is not None:
            return refusal
        parts = path.strip("/").split("/")
        method = request.method
        if (method, path) == ("GET", "/users/@me"):
            return _json(BOT_USER)
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return _json(
                {
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
            )
        if method == "GET" and path in ("/gateway/bot", "/gateway"):
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if method == "PUT" and parts[0] == "applications" and parts[-1] == "commands":
            return _json(
                [
                    # as Discord does, every command comes back with a description ("" for menus)
                    {
                        "description": "",
                        **c,
                        "id": str(next(self.ids)),
                        "application_id": str(APP_ID),
                        "version": "1",
                    }
                    for c in payload or []
                ]
            )
        if method == "POST" and parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(parts[1], parts[2], payload or {}, files)
        if self.refusing and (
            parts[0] == "webhooks" and method == "PATCH" or parts[0] == "channels"
        ):
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        if parts[0] == "webhooks" and len(parts) >= 3:
            return self._webhook(method, parts[2], parts[3:], payload, files)
        if (
            method == "DELETE"
            and parts[0] == "channels"
            and len(parts) == 4
            and parts[2] == "messages"
        ):
            return web.Response(status=204)
        if method == "POST" and parts[0] == "channels" and parts[-1] == "messages":
            return _json(self.message(int(parts[1]), payload, files))
        return _json(
            {"message": f"fake Discord has no route {method} {path}", "code": 0}, status=404
        )

    def _callback(
        self, interaction_id: str, token: str, body: dict, files: list[Upload]
    ) -> web.Response:
        kind = body.get("type")
        data = body.get("data") or {}
        flags = data.get("flags", 0) or 0
        if kind == 5:  # deferred: a "thinking" message stands until it is edited
            flags |= 128
        message = self.message(CHANNEL_ID, data, files, flags=flags)
        if kind in (4, 5):
            self.originals[token] = message
        return _json(
            {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_id": message["id"],
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(flags & 64),
                },
                "resource": {"type": kind, "message": message},
            }
        )

    def _webhook(
        self, method: str, token: str, rest: list[str], payload: Any, files: list[Upload]
    ) -> web.StreamResponse:
        if rest[:2] == ["messages", "@original"]:
            current = self.originals.get(token)
            if current is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            if method == "DELETE":
                del self.originals[token]
                self.deleted_originals.add(token)
                return web.Response(status=204)
            if method == "PATCH":
                updated = self.message(
                    CHANNEL_ID, {**current, **(payload or {})}, files, message_id=int(current["id"])
                )
                if not files and "attachments" not in (payload or {}):
                    updated["attachments"] = current["attachments"]
                updated["flags"] &= ~128  # an edit ends the "thinking" state
                self.originals[token] = updated
                return _json(updated)
            return _json(current)
        if rest[:1] == ["messages"] and len(rest) > 1 and not rest[1].isdigit():
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        if method == "POST" and not rest:
            # Discord's rules (discord-api-docs #2739, #3087, #2866): a follow-up after the
            # original was deleted is refused; the first follow-up while a public deferred
            # original still "thinks" completes that original, publicly, whatever its flags
            if token in self.deleted_originals:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            original = self.originals.get(token)
            if original is not None and original["flags"] & 128 and not original["flags"] & 64:
                data = {**(payload or {}), "flags": 0}
                completed = self.message(CHANNEL_ID, data, files, message_id=int(original["id"]))
                self.originals[token] = completed
                return _json(completed)
            return _json(self.message(CHANNEL_ID, payload, files))
        return _json({"message": "no such webhook route", "code": 0}, status=404)


def _nested(options: list[dict], subcommand: str | None) -> list[dict]:
    """A command's options, inside its subcommand: "show", or "preset add" (a subcommand in a
    group)."""
    if subcommand is None:
        return options
    *group, leaf = subcommand.split()
    options = [{"name": leaf, "type": 1, "options": options}]
    if group:
        options = [{"name": group[0], "type": 2, "options": options}]
    return options


CONTENT_LIMIT = 2000  # Discord's limit on a message's content, in characters


def _over_limits(payload: Any) -> web.Response | None:
    """Discord's answer to a message whose content is too long (an interaction callback carries
    its message under "data"): 400 Invalid Form Body, code 50035."""
    if not isinstance(payload, dict):
        return None
    message = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str) and len(content) > CONTENT_LIMIT:
        error = {
            "code": "BASE_TYPE_MAX_LENGTH",
            "message": f"Must be {CONTENT_LIMIT} or fewer in length.",
        }
        return _json(
            {
                "message": "Invalid Form Body",
                "code": 50035,
                "errors": {"content": {"_errors": [error]}},
            },
            status=400,
        )
    return None
