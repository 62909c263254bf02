"""Tables, migrations and the settings cache, over SQLAlchemy async (SQLite by default, PostgreSQL
for a bot that runs as several processes).

- `guild_settings`: each server's GuildSettings as JSON, written with an atomic upsert, read through
  a cache whose entries live `settings_ttl` seconds, so that every bot process sees another's
  change within that time.
- `jobs`: every job a member started, from submit to the message that ends it, so that a bot that
  died mid-job can tell its members at the next start (see bot/cogs/recovery.py).
- `blobs`: bytes with an expiry (a job's input images, kept for Retry; results not yet delivered;
  preset images, kept until removed).
- `style_presets`: each server's named style presets (bot/presets.py).

The schema is versioned: `schema_version` holds the number of migrations applied, and
`Storage.open()` applies the missing ones in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.executor.protocol import JobStatus
from bot.guild_policy import GuildSettings
from bot.presets import Preset, PresetError, image_key, preset_key

metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)
guild_settings = sa.Table(
    "guild_settings",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("settings", sa.Text, nullable=False),  # GuildSettings as JSON
    sa.Column("updated_by", sa.BigInteger, nullable=True),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    ),
)
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("instance", sa.String(32), nullable=False),  # the bot process that follows it
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("guild_id", sa.BigInteger, nullable=True),
    sa.Column("channel_id", sa.BigInteger, nullable=True),
    sa.Column("application_id", sa.BigInteger, nullable=False),
    sa.Column("token", sa.Text, nullable=False),  # the interaction token: edits the job's message
    sa.Column("token_expires_at", sa.Float, nullable=False),  # epoch seconds
    sa.Column("state", sa.String(16), nullable=False),  # JobStatus
    sa.Column("params", sa.Text, nullable=False),  # StyleParams as JSON
    sa.Column("summary", sa.Text, nullable=False),  # the caption's description of the parameters
    sa.Column(
        "styles", sa.Integer, nullable=False
    ),  # how many style images (blobs job:<id>:style:<n>)
    sa.Column("outcome", sa.Text, nullable=True),  # the final message, kept until it is delivered
    sa.Column("delivered", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),  # failed deliveries so far
    sa.Column("message_id", sa.BigInteger, nullable=True),  # the message that ended the job
    # the member who uploaded the content (a button press's job keeps it): guild_policy.may_reveal
    sa.Column("content_owner", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
instances = sa.Table(  # bot processes, each alive while it keeps writing seen_at
    "instances",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),  # epoch seconds
    # where it runs: a process on the same host can tell at once that it is gone
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
)
meta = sa.Table(  # small facts about the deployment, e.g. the hash of the synced command tree
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds
)

job_inputs = sa.Table(  # which images a job uses: content-addressed blobs, shared between jobs
    "job_inputs",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),  # 0: the content, then the styles
    sa.Column("blob", sa.String(128), nullable=False),  # blobs.key: img:<sha-256 of the bytes>
    sa.Column("expires_at", sa.Float, nullable=False),  # this job's use of it ends (Retry, buttons)
)
IMAGE = "img:"  # blob key prefix of job images; such a blob lives while a job_inputs row uses it

style_presets = sa.Table(  # named style images of a server (bot/presets.py); images in blobs
    "style_presets",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(64), primary_key=True),  # the name, compared without case
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("strength", sa.Float, nullable=True),
    sa.Column("preserve_colors", sa.String(16), nullable=True),
    sa.Column("created_by", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)
KEEP_FOREVER = 100 * 365 * 24 * 3600.0  # blobs that stay until removed (preset images)
FOREVER = 2.0**62  # the expiry of a job image (epoch seconds): it goes when no job uses it
LEFT = "left:"  # meta key prefix: left:<guild id> = when the bot left that server


def _add_columns(table: str, *columns: tuple[str, str]):
    """A migration step that adds (name, SQL type) columns to `table`, each unless it is there
    (a database made since has them: migration 2 makes the tables as they are now)."""

    def step(conn: sa.Connection) -> None:
        existing = {column["name"] for column in sa.inspect(conn).get_columns(table)}
        for name, kind in columns:
            if name not in existing:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))

    return step


# Each migration brings the schema from version i to i + 1. Never edit one that has shipped.
# A step is a DDL statement, or a function run with a connection.
MIGRATIONS: list[list[Any]] = [
    [sa.schema.CreateTable(guild_settings, if_not_exists=True)],
    [
        sa.schema.CreateTable(jobs, if_not_exists=True),
        sa.schema.CreateTable(blobs, if_not_exists=True),
        sa.schema.CreateTable(instances, if_not_exists=True),
        sa.schema.CreateIndex(
            sa.Index("jobs_open", jobs.c.delivered, jobs.c.state), if_not_exists=True
        ),
    ],
    [sa.schema.CreateTable(meta, if_not_exists=True)],
    [sa.schema.CreateTable(style_presets, if_not_exists=True)],
    [_add_columns("instances", ("host", "VARCHAR(255)"), ("pid", "INTEGER"))],  # where it runs
    [_add_columns("jobs", ("content_owner", "BIGINT"))],  # who uploaded the content
    [sa.schema.CreateTable(job_inputs, if_not_exists=True)],  # images stored once, shared
]


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    id: str
    user_id: int
    guild_id: int | None
    channel_id: int | None
    application_id: int
    token: str
    token_expires_at: float
    state: JobStatus
    params: dict[str, Any]
    summary: str
    styles: int
    outcome: str | None = None
    delivered: bool = False
    attempts: int = 0
    message_id: int | None = None
    created_at: float = 0.0
    instance: str = ""  # the bot process that follows it
    content_owner: int | None = None  # who uploaded the content; None: user_id

    @property
    def token_alive(self) -> bool:
        return time.time() < self.token_expires_at

    @property
    def uploader(self) -> int:
        """The member whose upload the job paints (guild_policy.may_reveal)."""
        return self.content_owner or self.user_id


class Storage:
    def __init__(self, engine: AsyncEngine, *, settings_ttl: float = 5.0):
        self.engine = engine
        self.instance = uuid.uuid4().hex  # this process, in the jobs it records
        self.settings_ttl = settings_ttl
        self._cache: dict[int, tuple[float, GuildSettings]] = {}  # guild -> (read at, settings)

    @classmethod
    async def open(cls, url: str, *, settings_ttl: float = 5.0) -> Storage:
        """Connect and migrate; StorageError with one line that says what is wrong."""
        try:
            # hide_parameters: a failed statement's error text never lists its values (the
            # jobs table holds interaction tokens), so no log line or traceback can carry them
            engine = create_async_engine(url, hide_parameters=True)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise StorageError(
                f"STYLEBOT_DATABASE_URL is not a usable database URL ({_reason(exc)}); "
                "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
            ) from None
        storage = cls(engine, settings_ttl=settings_ttl)
        try:
            await storage.migrate()
        except (OSError, sa_exc.SQLAlchemyError, ConnectionError) as exc:
            await storage.close()
            raise StorageError(
                f"the database at STYLEBOT_DATABASE_URL cannot be used: {_reason(exc)}"
            ) from None
        except BaseException:
            await storage.close()
            raise
        return storage

    async def migrate(self) -> int:
        """Apply the missing migrations; return the schema version now."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
            version = (
                await conn.execute(sa.select(sa.func.max(schema_version.c.version)))
            ).scalar() or 0
            for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
                for step in steps:
                    if isinstance(step, sa.schema.ExecutableDDLElement):
                        await conn.execute(step)
                    else:
                        await conn.run_sync(step)
                await conn.execute(schema_version.insert().values(version=number))
            return (
                await conn.execute(sa.select(sa.func.max(schema_version.c.version)))
            ).scalar() or 0

    async def close(self) -> None:
        await self.engine.dispose()

    def _upsert(self, table: sa.Table, values: dict[str, Any], key: str, update: dict[str, Any]):
        """INSERT ... ON CONFLICT (key) DO UPDATE (with nothing to update: DO NOTHING): one
        atomic statement on SQLite and PostgreSQL."""
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(table).values(**values)
        if not update:
            return statement.on_conflict_do_nothing(index_elements=[key])
        return statement.on_conflict_do_update(index_elements=[key], set_=update)

    # --- server settings ----------------------------------------------------------------------

    async def get(self, guild_id: int) -> GuildSettings:
        cached = self._cache.get(guild_id)
        if cached is not None and time.monotonic() - cached[0] < self.settings_ttl:
            return cached[1]
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(guild_settings.c.settings).where(
                        guild_settings.c.guild_id == guild_id
                    )
                )
            ).first()
        settings = GuildSettings.from_json(row[0]) if row else GuildSettings()
        self._cache[guild_id] = (time.monotonic(), settings)
        return settings

    async def put(self, guild_id: int, settings: GuildSettings, *, by: int | None = None) -> None:
        settings.validate()
        text = settings.to_json()
        statement = self._upsert(
            guild_settings,
            {"guild_id": guild_id, "settings": text, "updated_by": by},
            "guild_id",
            {"settings": text, "updated_by": by, "updated_at": sa.func.now()},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)
        self._cache.pop(guild_id, None)

    async def reset(self, guild_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(guild_settings.delete().where(guild_settings.c.guild_id == guild_id))
        self._cache.pop(guild_id, None)

    # --- jobs -----------------------------------------------------------------------------------

    async def add_job(self, record: JobRecord, inputs: list[bytes], *, keep_inputs: float) -> None:
        """Record a job and keep its input images for `keep_inputs` seconds (for Retry)."""
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                jobs.insert().values(
                    id=record.id,
                    instance=self.instance,
                    user_id=record.user_id,
                    guild_id=record.guild_id,
                    channel_id=record.channel_id,
                    application_id=record.application_id,
                    token=record.token,
                    token_expires_at=record.token_expires_at,
                    state=record.state.value,
                    params=json.dumps(record.params),
                    summary=record.summary,
                    styles=record.styles,
                    content_owner=record.content_owner,
                    outcome=None,
                    delivered=False,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            for position, data in enumerate(inputs):
                key = IMAGE + hashlib.sha256(data).hexdigest()
                # stored once, whoever sends the same picture again (a button press does)
                await conn.execute(
                    self._upsert(
                        blobs, {"key": key, "data": data, "expires_at": FOREVER}, "key", {}
                    )
                )
                await conn.execute(
                    job_inputs.insert().values(
                        job_id=record.id, position=position, blob=key, expires_at=now + keep_inputs
                    )
                )

    async def job_images(self, job_id: str) -> list[bytes] | None:
        """The job's content and style images, in order; None once they are no longer kept."""
        async with self.engine.connect() as conn:
            uses = (
                await conn.execute(
                    sa.select(job_inputs.c.expires_at, blobs.c.data)
                    .join(blobs, blobs.c.key == job_inputs.c.blob)
                    .where(job_inputs.c.job_id == job_id)
                    .order_by(job_inputs.c.position)
                )
            ).all()
        if not uses or any(use.expires_at <= time.time() for use in uses):
            return None
        return [bytes(use.data) for use in uses]

    async def drop_images(self, job_id: str) -> None:
        """A job that was refused keeps no images: its uses go, and every image no job uses."""
        async with self.engine.begin() as conn:
            await conn.execute(job_inputs.delete().where(job_inputs.c.job_id == job_id))
            await _drop_unused_images(conn)

    async def set_job_state(
        self,
        job_id: str,
        state: JobStatus,
        *,
        outcome: str | None = None,
        delivered: bool | None = None,
        message_id: int | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state.value, "updated_at": time.time()}
        if outcome is not None:
            values["outcome"] = outcome
        if delivered is not None:
            values["delivered"] = delivered
        if message_id is not None:
            values["message_id"] = message_id
        async with self.engine.begin() as conn:
            await conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    async def job(self, job_id: str) -> JobRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        return _record(row) if row else None

    async def heartbeat(self) -> None:
        """This process is alive (the jobs it follows are not orphans)."""
        here = {"host": HOST, "pid": os.getpid()}
        statement = self._upsert(
            instances,
            {"id": self.instance, "seen_at": time.time(), **here},
            "id",
            {"seen_at": time.time(), **here},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def orphaned_jobs(self, *, silent_for: float) -> list[JobRecord]:
        """Jobs still queued or running whose bot process is gone: on this host, a process
        whose pid no longer runs (known at once); elsewhere, one not seen for `silent_for`
        seconds. Nobody follows them any more."""
        alive = sa.select(instances.c.id).where(instances.c.seen_at > time.time() - silent_for)
        async with self.engine.connect() as conn:
            neighbours = (
                await conn.execute(
                    sa.select(instances.c.id, instances.c.pid, instances.c.seen_at).where(
                        instances.c.host == HOST, instances.c.id != self.instance
                    )
                )
            ).all()
            dead = [n.id for n in neighbours if n.pid is not None and _gone(n.pid, n.seen_at)]
            rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        jobs.c.state.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                        jobs.c.instance != self.instance,
                        sa.or_(jobs.c.instance.not_in(alive), jobs.c.instance.in_(dead)),
                    )
                    .order_by(jobs.c.created_at)
                )
            ).all()
        return [_record(r) for r in rows]

    async def adopt(self, record: JobRecord) -> bool:
        """This process follows the orphaned job from now on, if no other process took it first:
        a conditional update on the instance it was found with, so one process wins."""
        async with self.engine.begin() as conn:
            taken = await conn.execute(
                jobs.update()
                .where(jobs.c.id == record.id, jobs.c.instance == record.instance)
                .values(instance=self.instance, updated_at=time.time())
            )
        return taken.rowcount == 1

    async def claim_delivery(self, record: JobRecord) -> bool:
        """This process tries the undelivered ending now, if no other process does: one try is
        counted per claim, conditional on the count it was found with."""
        async with self.engine.begin() as conn:
            taken = await conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == record.id,
                    jobs.c.delivered.is_(False),
                    jobs.c.attempts == record.attempts,
                )
                .values(attempts=jobs.c.attempts + 1, updated_at=time.time())
            )
        return taken.rowcount == 1

    async def history(
        self, user_id: int, guild_id: int | None, *, limit: int = 10
    ) -> list[JobRecord]:
        """The member's last finished pictures in this server, newest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        jobs.c.user_id == user_id,
                        jobs.c.guild_id == guild_id,
                        jobs.c.state == JobStatus.DONE.value,
                        jobs.c.message_id.is_not(None),
                    )
                    .order_by(jobs.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [_record(r) for r in rows]

    async def undelivered_jobs(self) -> list[JobRecord]:
        """Jobs that ended but whose final message has not reached the member yet."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(jobs.c.delivered.is_(False), jobs.c.outcome.is_not(None))
                    .order_by(jobs.c.updated_at)
                )
            ).all()
        return [_record(r) for r in rows]

    # --- meta -----------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(meta.c.value).where(meta.c.key == key))).scalar()

    async def put_meta(self, key: str, value: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                self._upsert(meta, {"key": key, "value": value}, "key", {"value": value})
            )

    # --- style presets --------------------------------------------------------------------------

    async def presets(self, guild_id: int) -> list[Preset]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(style_presets)
                    .where(style_presets.c.guild_id == guild_id)
                    .order_by(style_presets.c.key)
                )
            ).all()
        return [_preset(r) for r in rows]

    async def add_preset(self, guild_id: int, preset: Preset, image: bytes, *, limit: int) -> None:
        """Save a new preset with its image, in one transaction; PresetError if the name is
        taken or the server has `limit` presets already. The limit holds under concurrent adds:
        on PostgreSQL a lock per server orders them; on SQLite the insert is one statement that
        counts under the write lock."""
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:g)"), {"g": guild_id})
            count = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(style_presets)
                    .where(style_presets.c.guild_id == guild_id)
                )
            ).scalar_one()
            taken = (
                await conn.execute(
                    sa.select(style_presets.c.name).where(
                        style_presets.c.guild_id == guild_id, style_presets.c.key == preset.key
                    )
                )
            ).scalar()
            if taken is not None:
                raise PresetError(
                    f"this server already has a preset called {taken}; remove it first"
                )
            if count >= limit:
                raise PresetError(
                    f"this server has {count} presets, the most it may keep; remove one first"
                )
            values = {
                "guild_id": guild_id,
                "key": preset.key,
                "name": preset.name,
                "strength": preset.strength,
                "preserve_colors": preset.preserve_colors,
                "created_by": preset.created_by,
                "created_at": time.time(),
            }
            under_limit = (
                sa.select(sa.func.count())
                .select_from(style_presets)
                .where(style_presets.c.guild_id == guild_id)
                .scalar_subquery()
                < limit
            )
            row = sa.select(*(sa.literal(v, style_presets.c[k].type) for k, v in values.items()))
            try:
                inserted = await conn.execute(
                    style_presets.insert().from_select(list(values), row.where(under_limit))
                )
            except sa_exc.IntegrityError:  # the same name, added at the same moment
                raise PresetError(
                    f"this server already has a preset called {preset.name}; remove it first"
                ) from None
            if inserted.rowcount == 0:  # another add took the last place meanwhile
                raise PresetError(
                    f"this server has {limit} presets, the most it may keep; remove one first"
                )
            key = image_key(guild_id, preset.name)
            expires = time.time() + KEEP_FOREVER
            await conn.execute(
                self._upsert(
                    blobs,
                    {"key": key, "data": image, "expires_at": expires},
                    "key",
                    {"data": image, "expires_at": expires},
                )
            )

    async def remove_preset(self, guild_id: int, name: str) -> Preset | None:
        """Remove a preset and its image; the removed preset, or None if there was none."""
        async with self.engine.begin() as conn:
            row = await _preset_row(conn, guild_id, name)
            if row is None:
                return None
            await conn.execute(
                style_presets.delete().where(
                    style_presets.c.guild_id == guild_id, style_presets.c.key == row.key
                )
            )
            await conn.execute(blobs.delete().where(blobs.c.key == image_key(guild_id, row.name)))
        return _preset(row)

    async def preset(self, guild_id: int, name: str) -> tuple[Preset, bytes] | None:
        """A preset and its image, by name (any case)."""
        async with self.engine.connect() as conn:
            row = await _preset_row(conn, guild_id, name)
        if row is None:
            return None
        images = await self.get_blobs([image_key(guild_id, row.name)])
        return (_preset(row), images[0]) if images else None

    # --- blobs ----------------------------------------------------------------------------------

    async def put_blob(self, key: str, data: bytes, *, keep: float) -> None:
        statement = self._upsert(
            blobs,
            {"key": key, "data": data, "expires_at": time.time() + keep},
            "key",
            {"data": data, "expires_at": time.time() + keep},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def get_blobs(self, keys: list[str]) -> list[bytes] | None:
        """The bytes under every key, in order; None if any is missing or expired."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(blobs.c.key, blobs.c.data).where(
                        blobs.c.key.in_(keys), blobs.c.expires_at > time.time()
                    )
                )
            ).all()
        found = {key: bytes(data) for key, data in rows}
        return [found[k] for k in keys] if all(k in found for k in keys) else None

    # --- servers the bot has left -----------------------------------------------------------------

    async def guild_left(self, guild_id: int) -> None:
        """The bot left (or was removed from) this server: its data goes after the grace period,
        counted from the first time this is seen."""
        key = f"{LEFT}{guild_id}"
        async with self.engine.begin() as conn:
            await conn.execute(
                self._upsert(meta, {"key": key, "value": str(time.time())}, "key", {})
            )

    async def guild_joined(self, guild_id: int) -> None:
        """The bot is (again) in this server: nothing of it is to be removed."""
        async with self.engine.begin() as conn:
            await conn.execute(meta.delete().where(meta.c.key == f"{LEFT}{guild_id}"))

    async def guilds_with_data(self) -> set[int]:
        """Every server that has settings, presets or jobs here."""
        async with self.engine.connect() as conn:
            found: set[int] = set()
            for column in (guild_settings.c.guild_id, style_presets.c.guild_id, jobs.c.guild_id):
                found |= set((await conn.execute(sa.select(column).distinct())).scalars())
        found.discard(None)  # type: ignore[arg-type]  # jobs in direct messages
        return found

    async def purge_left_guilds(self, grace: float) -> list[int]:
        """Remove the settings, presets (with their images) and jobs of every server the bot
        left more than `grace` seconds ago; return their ids."""
        async with self.engine.begin() as conn:
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
            await _drop_unused_images(conn)
        for guild_id in gone:
            self._cache.pop(guild_id, None)
        return gone

    async def purge_expired(self) -> int:
        """Remove what is kept past its time: blobs, jobs' uses of images, and images no job
        uses any more; the number of blobs removed."""
        async with self.engine.begin() as conn:
            await conn.execute(job_inputs.delete().where(job_inputs.c.expires_at <= time.time()))
            removed = await _drop_unused_images(conn)
            result = await conn.execute(blobs.delete().where(blobs.c.expires_at <= time.time()))
        return removed + (result.rowcount or 0)


class StorageError(Exception):
    """The database cannot be reached or used; the message says why in one line."""


def _reason(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{original.__class__.__name__}: {text}" if text else original.__class__.__name__


HOST = socket.gethostname()
STARTED = time.time()  # about when this process started


def _gone(pid: int, seen_at: float) -> bool:
    """Whether the process of this host that wrote `seen_at` with that pid has ended: no process
    has the pid, or this one has it and started after that write (a restarted container's bot
    often gets its predecessor's pid)."""
    if pid == os.getpid():
        return seen_at < STARTED
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False


def check_database_url(url: str) -> None:
    """Refuse a wrong URL, or an SQLite file in a folder that does not exist, without creating anything."""
    try:
        parsed = sa.engine.make_url(url)
        parsed.port  # noqa: B018  (the port is parsed only when read: "abc" raises ValueError)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise StorageError(f"STYLEBOT_DATABASE_URL is not a database URL ({exc})") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(parsed.database))
        if not os.path.isdir(folder):
            raise StorageError(f"the folder of the SQLite database does not exist: {folder}")


async def _drop_unused_images(conn: Any) -> int:
    """Delete every job image that no job uses; how many."""
    used = sa.select(job_inputs.c.blob)
    result = await conn.execute(
        blobs.delete().where(blobs.c.key.startswith(IMAGE), blobs.c.key.not_in(used))
    )
    return result.rowcount or 0


def result_key(job_id: str) -> str:
    return f"job:{job_id}:result"


def _record(row: Any) -> JobRecord:
    return JobRecord(
        id=row.id,
        user_id=row.user_id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        application_id=row.application_id,
        token=row.token,
        token_expires_at=row.token_expires_at,
        state=JobStatus(row.state),
        params=json.loads(row.params),
        summary=row.summary,
        styles=row.styles,
        outcome=row.outcome,
        delivered=bool(row.delivered),
        attempts=row.attempts,
        message_id=row.message_id,
        created_at=row.created_at,
        instance=row.instance,
        content_owner=row.content_owner,
    )


async def _preset_row(conn: Any, guild_id: int, name: str) -> Any:
    """A server's preset by name (compared without case), or None."""
    query = sa.select(style_presets).where(
        style_presets.c.guild_id == guild_id, style_presets.c.key == preset_key(name)
    )
    return (await conn.execute(query)).first()


def _preset(row: Any) -> Preset:
    return Preset(
        name=row.name,
        strength=row.strength,
        preserve_colors=row.preserve_colors,
        created_by=row.created_by,
        created_at=row.created_at,
    )
