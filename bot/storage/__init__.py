"""What the bot keeps, over SQLAlchemy async (SQLite by default, PostgreSQL for a bot that runs as
several processes): one store per group of tables, over one engine (db.py has the tables and the
migrations).

    storage = await Storage.open(url)
    await storage.settings.read(guild_id)
    await storage.jobs.add(record, images, keep_inputs=...)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.blobs import BlobStore, result_key
from bot.storage.db import Database, Meta, StorageError, check_database_url, describe_database
from bot.storage.guilds import GuildStore
from bot.storage.jobs import JobRecord, JobStore
from bot.storage.presets import PresetStore
from bot.storage.settings import SettingsStore

__all__ = [
    "JobRecord",
    "Storage",
    "StorageError",
    "check_database_url",
    "describe_database",
    "result_key",
]


class Storage:
    """The stores, each reached by name: settings, jobs, presets, blobs, guilds, meta."""

    def __init__(
        self,
        database: Database,
        *,
        settings_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.db = database
        self.blobs = BlobStore(database)
        self.settings = SettingsStore(database, ttl=settings_ttl, clock=clock)
        self.jobs = JobStore(database, self.blobs)
        self.presets = PresetStore(database, self.blobs)
        self.guilds = GuildStore(database, self.settings)
        self.meta = Meta(database)

    @classmethod
    async def open(
        cls, url: str, *, settings_ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> Storage:
        """Connect and migrate; StorageError with one line that says what is wrong."""
        return cls(await Database.open(url), settings_ttl=settings_ttl, clock=clock)

    @property
    def engine(self) -> AsyncEngine:
        return self.db.engine

    async def answers(self, timeout: float = 2.0) -> bool:
        """Whether the database answers a trivial query within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:  # noqa: BLE001 (down, refused, locked: it does not answer)
            return False
        return True

    async def migrate(self) -> int:
        return await self.db.migrate()

    async def close(self) -> None:
        await self.db.close()
