"""Each server's settings: written with an atomic upsert, read through a cache whose entries live
`ttl` seconds, so that every bot process sees another's change within that time."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from bot.guild_policy import GuildSettings
from bot.storage.db import Database, guild_settings


class SettingsStore:
    def __init__(
        self, db: Database, *, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ):
        self.db = db
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[int, tuple[float, GuildSettings]] = {}  # guild -> (read at, settings)

    async def read(self, guild_id: int) -> GuildSettings:
        """The server's settings (the defaults where it has set none)."""
        cached = self._cache.get(guild_id)
        if cached is not None and self._clock() - cached[0] < self.ttl:
            return cached[1]
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(guild_settings.c.settings).where(
                        guild_settings.c.guild_id == guild_id
                    )
                )
            ).first()
        settings = GuildSettings.from_json(row[0]) if row else GuildSettings()
        self._cache[guild_id] = (self._clock(), settings)
        return settings

    async def write(self, guild_id: int, settings: GuildSettings, *, by: int | None = None) -> None:
        settings.validate()
        text = settings.to_json()
        statement = self.db.upsert(
            guild_settings,
            {"guild_id": guild_id, "settings": text, "updated_by": by},
            "guild_id",
            {"settings": text, "updated_by": by, "updated_at": sa.func.now()},
        )
        async with self.db.engine.begin() as conn:
            await conn.execute(statement)
        self.forget(guild_id)

    async def reset(self, guild_id: int) -> None:
        """Back to the defaults."""
        async with self.db.engine.begin() as conn:
            await conn.execute(guild_settings.delete().where(guild_settings.c.guild_id == guild_id))
        self.forget(guild_id)

    def forget(self, guild_id: int) -> None:
        """Drop this process's cached copy (the next read goes to the database)."""
        self._cache.pop(guild_id, None)
