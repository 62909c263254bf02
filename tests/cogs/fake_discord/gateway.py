"""The gateway: HELLO, heartbeats, IDENTIFY answered with READY and GUILD_CREATE, and the events
a test sends (INTERACTION_CREATE, GUILD_DELETE, ...). Text frames, no compression."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from tests.cogs.fake_discord.payloads import guild, ready

HELLO, HEARTBEAT, HEARTBEAT_ACK, IDENTIFY, DISPATCH = 10, 1, 11, 2, 0


class Gateway:
    def __init__(self, gateway_url: Callable[[], str]):
        self.gateway_url = gateway_url
        self.sockets: list[web.WebSocketResponse] = []
        self.sequence = 0
        self.identified = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await self._send(ws, HELLO, {"heartbeat_interval": 41250})
        async for frame in ws:
            data = json.loads(frame.data)
            if data["op"] == HEARTBEAT:
                await self._send(ws, HEARTBEAT_ACK, None)
            elif data["op"] == IDENTIFY:
                await self._dispatch(ws, "READY", ready(self.gateway_url()))
                await self._dispatch(ws, "GUILD_CREATE", guild())
                self.identified.set()
        return ws

    async def send_event(self, event: str, data: dict) -> None:
        """Dispatch an event to the bot (once it has identified)."""
        await self.identified.wait()
        await self._dispatch(self.sockets[-1], event, data)

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()

    async def _dispatch(self, ws: web.WebSocketResponse, event: str, data: dict) -> None:
        self.sequence += 1
        await ws.send_str(json.dumps({"op": DISPATCH, "t": event, "s": self.sequence, "d": data}))

    @staticmethod
    async def _send(ws: web.WebSocketResponse, op: int, data: object) -> None:
        await ws.send_str(json.dumps({"op": op, "d": data, "s": None, "t": None}))
