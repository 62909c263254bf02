"""The fake Discord's server: its state, the actions of members (slash commands, menus,
buttons, modals), and what the bot did, read back by the tests. The gateway is gateway.py, the
REST routes rest.py, the shapes of what it sends payloads.py."""

from __future__ import annotations

import asyncio
import itertools

from aiohttp import web

from tests.cogs.fake_discord import payloads
from tests.cogs.fake_discord.gateway import Gateway
from tests.cogs.fake_discord.payloads import (
    APP_ID,
    CHANNEL_ID,
    MEMBER_PERMISSIONS,
    Request,
    Upload,
)
from tests.cogs.fake_discord.rest import API, Rest


class FakeDiscord:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.originals: dict[str, dict] = {}  # interaction token -> the current original message
        self.deleted_originals: set[str] = set()  # tokens whose original message was deleted
        self.ids = itertools.count(800000000000000001)
        self.changed = asyncio.Condition()
        self.base = ""
        self.refusing = False  # True: message edits and channel posts fail with 404 (trouble)
        # True: every request on an interaction's webhook (edits, follow-ups) has its connection
        # reset before an answer (a network failure, not a status: no discord.HTTPException)
        self.resetting_webhooks = False
        # a number: edits and posts whose files add up to more bytes are refused with 413, as
        # Discord does below the limit it advertises at times (discord-api-docs issue 8572)
        self.upload_limit: int | None = None
        self.gateway = Gateway(lambda: self.gateway_url)
        self.identified = self.gateway.identified
        self._runner: web.AppRunner | None = None

    # --- running ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/gateway", self.gateway.handle)
        app.router.add_get("/cdn/{name}", self.serve_cdn)
        app.add_subapp(API, Rest(self).app())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return self.base + API

    @property
    def gateway_url(self) -> str:
        return self.base.replace("http", "ws") + "/gateway"

    async def record(self, request: Request) -> None:
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

    async def send_event(self, event: str, data: dict) -> None:
        await self.gateway.send_event(event, data)

    async def serve_cdn(self, request: web.Request) -> web.Response:
        data, content_type = self.cdn[request.match_info["name"]]
        return web.Response(body=data, content_type=content_type)

    def message(
        self,
        channel_id: int,
        data: dict | None,
        files: list[Upload],
        *,
        message_id: int | None = None,
        flags: int = 0,
    ) -> dict:
        """A message of the bot with these uploads as its attachments."""
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
        return payloads.message(
            str(message_id or next(self.ids)), channel_id, data, attachments, flags=flags
        )

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
        payload = payloads.interaction(
            str(next(self.ids)), token, kind, member_user, permissions, data, channel_id, message
        )
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
            "options": payloads.nested(options, subcommand),
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
            "options": payloads.nested(options, subcommand),
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
