"""The servers the bot has left: marked in `meta` (left:<guild id> = when), unmarked when the
bot is back; after a grace period their settings, presets with their images, and jobs go."""

from __future__ import annotations

import time

import sqlalchemy as sa

from bot.storage.blobs import drop_unused_images
from bot.storage.db import Database, blobs, guild_settings, job_inputs, jobs, meta, style_presets
from bot.storage.settings import SettingsStore

LEFT = "left:"  # meta key prefix: left:<guild id> = when the bot left that server


class GuildStore:
    def __init__(self, db: Database, settings: SettingsStore):
        self.db, self.settings = db, settings

    async def left(self, guild_id: int) -> None:
        """The bot left (or was removed from) this server: its data goes after the grace period,
        counted from the first time this is seen."""
        key = f"{LEFT}{guild_id}"
        async with self.db.engine.begin() as conn:
            await conn.execute(
                self.db.upsert(meta, {"key": key, "value": str(time.time())}, "key", {})
            )

    async def joined(self, guild_id: int) -> None:
        """The bot is (again) in this server: nothing of it is to be removed."""
        async with self.db.engine.begin() as conn:
            await conn.execute(meta.delete().where(meta.c.key == f"{LEFT}{guild_id}"))

    async def with_data(self) -> set[int]:
        """Every server that has settings, presets or jobs here."""
        async with self.db.engine.connect() as conn:
            found: set[int] = set()
            for column in (guild_settings.c.guild_id, style_presets.c.guild_id, jobs.c.guild_id):
                found |= set((await conn.execute(sa.select(column).distinct())).scalars())
        found.discard(None)  # type: ignore[arg-type]  # jobs in direct messages
        return found

    async def purge_left(self, grace: float) -> list[int]:
        """Remove the settings, presets (with their images) and jobs of every server the bot
        left more than `grace` seconds ago; return their ids."""
        async with self.db.engine.begin() as conn:
            marks = (await conn.execute(sa.select(meta).where(meta.c.key.startswith(LEFT)))).all()
            gone = [int(m.key[len(LEFT) :]) for m in marks if float(m.value) <= time.time() - grace]
            for guild_id in gone:
                job_ids = (
                    await conn.execute(sa.select(jobs.c.id).where(jobs.c.guild_id == guild_id))
                ).scalars()
                for job_id in job_ids:
                    await conn.execute(
                        blobs.delete().where(blobs.c.key.startswith(f"job:{job_id}:"))
                    )
                    await conn.execute(job_inputs.delete().where(job_inputs.c.job_id == job_id))
                await conn.execute(jobs.delete().where(jobs.c.guild_id == guild_id))
                await conn.execute(
                    blobs.delete().where(blobs.c.key.startswith(f"preset:{guild_id}:"))
                )
                await conn.execute(
                    style_presets.delete().where(style_presets.c.guild_id == guild_id)
                )
                await conn.execute(
                    guild_settings.delete().where(guild_settings.c.guild_id == guild_id)
                )
                await conn.execute(meta.delete().where(meta.c.key == f"{LEFT}{guild_id}"))
            await drop_unused_images(conn)
        for guild_id in gone:
            self.settings.forget(guild_id)
        return gone
