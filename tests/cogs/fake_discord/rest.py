"""The REST routes the bot calls, as an aiohttp route table under /api/v10. Every request goes
through `recorded`, which reads its body (JSON or multipart with files), records it and answers
Discord's content limit; each route then answers as Discord does, including its refusals (Unknown
Message after a deleted original, the first follow-up of a public deferred reply completing it)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.cogs.fake_discord import payloads
from tests.cogs.fake_discord.payloads import (
    APP_ID,
    APPLICATION,
    BOT_USER,
    CHANNEL_ID,
    Request,
    Upload,
    error,
    json_response,
)

if TYPE_CHECKING:
    from tests.cogs.fake_discord.server import FakeDiscord


@dataclass(frozen=True)
class Call:
    """A request with its body read."""

    request: web.Request
    payload: Any
    files: list[Upload]

    @property
    def method(self) -> str:
        return self.request.method

    def __getitem__(self, name: str) -> str:  # a part of the route's path
        return self.request.match_info[name]


Route = Callable[[Call], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API = "/api/v10"
DEFERRED, MESSAGE = 5, 4  # interaction callback types that make the original message
LOADING, EPHEMERAL = 128, 64  # message flags


async def read_body(request: web.Request) -> tuple[Any, list[Upload]]:
    if request.content_type.startswith("multipart/"):
        payload, files = None, []
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                payload = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                files.append(Upload(part.filename or "", bytes(await part.read())))  # type: ignore[union-attr]
        return payload, files
    text = await request.text()
    return (json.loads(text) if text else None), []


class Rest:
    def __init__(self, fake: FakeDiscord):
        self.fake = fake

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = self.recorded
        app.add_routes(
            [
                web.get("/users/@me", r(self.me)),
                web.get("/oauth2/applications/@me", r(self.application)),
                web.get("/gateway/bot", r(self.gateway)),
                web.get("/gateway", r(self.gateway)),
                web.put("/applications/{app}/commands", r(self.sync)),
                web.put("/applications/{app}/guilds/{guild}/commands", r(self.sync)),
                web.post("/interactions/{id}/{token}/callback", r(self.callback)),
                web.post("/webhooks/{app}/{token}", r(self.followup)),
                web.route(
                    "*", "/webhooks/{app}/{token}/messages/{message}", r(self.webhook_message)
                ),
                web.post("/channels/{channel}/messages", r(self.channel_post)),
                web.delete("/channels/{channel}/messages/{message}", r(self.channel_delete)),
                web.route("*", "/{tail:.*}", r(self.no_route)),
            ]
        )
        return app

    def recorded(self, route: Route) -> Handler:
        """The route behind what every request goes through: its body read (JSON or multipart)
        and recorded, and Discord's content limit."""

        async def handle(request: web.Request) -> web.StreamResponse:
            payload, files = await read_body(request)
            # the path as sent: a client that percent-quotes "@original" asks for a message of
            # that id, as Discord would see it, and gets Unknown Message
            path = request.raw_path.split("?")[0].removeprefix(API)
            await self.fake.record(Request(request.method, path, payload, files))
            if (refusal := payloads.over_limits(payload)) is not None:
                return refusal
            return await route(Call(request, payload, files))

        return handle

    # --- the session ------------------------------------------------------------------------

    async def me(self, call: Call) -> web.Response:
        return json_response(BOT_USER)

    async def application(self, call: Call) -> web.Response:
        return json_response(APPLICATION)

    async def gateway(self, call: Call) -> web.Response:
        return json_response(
            {
                "url": self.fake.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def sync(self, call: Call) -> web.Response:
        # as Discord does, every command comes back with a description ("" for menus)
        return json_response(
            [
                {
                    "description": "",
                    **command,
                    "id": str(next(self.fake.ids)),
                    "application_id": str(APP_ID),
                    "version": "1",
                }
                for command in call.payload or []
            ]
        )

    # --- interactions -----------------------------------------------------------------------

    async def callback(self, call: Call) -> web.Response:
        token = call["token"]
        body = call.payload or {}
        kind = body.get("type")
        data = body.get("data") or {}
        flags = data.get("flags", 0) or 0
        if kind == DEFERRED:  # a "thinking" message stands until it is edited
            flags |= LOADING
        message = self.fake.message(CHANNEL_ID, data, call.files, flags=flags)
        if kind in (MESSAGE, DEFERRED):
            self.fake.originals[token] = message
        return json_response(
            {
                "interaction": {
                    "id": call["id"],
                    "type": 2,
                    "response_message_id": message["id"],
                    "response_message_loading": kind == DEFERRED,
                    "response_message_ephemeral": bool(flags & EPHEMERAL),
                },
                "resource": {"type": kind, "message": message},
            }
        )

    async def followup(self, call: Call) -> web.Response:
        """Discord's rules (discord-api-docs #2739, #3087, #2866): a follow-up after the
        original was deleted is refused; the first follow-up while a public deferred original
        still "thinks" completes that original, publicly, whatever its flags."""
        token, payload, files = call["token"], call.payload, call.files
        if self.fake.resetting_webhooks:
            return reset(call)
        if token in self.fake.deleted_originals:
            return error(404, "Unknown Message", 10008)
        original = self.fake.originals.get(token)
        if (
            original is not None
            and original["flags"] & LOADING
            and not original["flags"] & EPHEMERAL
        ):
            data = {**(payload or {}), "flags": 0}
            completed = self.fake.message(CHANNEL_ID, data, files, message_id=int(original["id"]))
            self.fake.originals[token] = completed
            return json_response(completed)
        return json_response(self.fake.message(CHANNEL_ID, payload, files))

    async def webhook_message(self, call: Call) -> web.Response:
        """The original message (`@original`, as sent: not percent-quoted) read, edited or
        deleted; any other id that is not a number is Unknown Message."""
        if self.fake.refusing and call.method == "PATCH":
            return error(404, "Unknown Channel", 10003)
        if self.fake.resetting_webhooks:
            return reset(call)
        raw = call.request.raw_path.split("?")[0].rsplit("/", 1)[-1]
        if raw != "@original":
            if not raw.isdigit():
                return error(404, "Unknown Message", 10008)
            return error(404, "no such webhook route", 0)
        token = call["token"]
        current = self.fake.originals.get(token)
        if current is None:
            return error(404, "Unknown Message", 10008)
        if call.method == "DELETE":
            del self.fake.originals[token]
            self.fake.deleted_originals.add(token)
            return web.Response(status=204)
        if call.method == "PATCH":
            if too_large := self._too_large(call):
                return too_large
            payload, files = call.payload, call.files
            updated = self.fake.message(
                CHANNEL_ID, {**current, **(payload or {})}, files, message_id=int(current["id"])
            )
            if not files and "attachments" not in (payload or {}):
                updated["attachments"] = current["attachments"]
            updated["flags"] &= ~LOADING  # an edit ends the "thinking" state
            self.fake.originals[token] = updated
            return json_response(updated)
        return json_response(current)

    # --- channels ---------------------------------------------------------------------------

    def _too_large(self, call: Call) -> web.Response | None:
        limit = self.fake.upload_limit
        if limit is not None and sum(len(f.data) for f in call.files) > limit:
            return error(413, "Request entity too large", 40005)
        return None

    async def channel_post(self, call: Call) -> web.Response:
        if self.fake.refusing:
            return error(404, "Unknown Channel", 10003)
        if too_large := self._too_large(call):
            return too_large
        channel = int(call["channel"])
        return json_response(self.fake.message(channel, call.payload, call.files))

    async def channel_delete(self, call: Call) -> web.Response:
        if self.fake.refusing:
            return error(404, "Unknown Channel", 10003)
        return web.Response(status=204)

    async def no_route(self, call: Call) -> web.Response:
        path = call.request.path.removeprefix(API)
        return error(404, f"fake Discord has no route {call.method} {path}", 0)


def reset(call: Call) -> web.Response:
    """The connection dropped before an answer: the client sees a network error."""
    transport = call.request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)  # never reaches the client
