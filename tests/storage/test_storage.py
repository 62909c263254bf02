import asyncio
import hashlib
import time
import uuid

import pytest
import sqlalchemy as sa

from bot.guild_policy import GuildSettings, SettingsError
from bot.protocol.messages import JobStatus
from bot.storage import JobRecord, Storage
from bot.storage.db import MIGRATIONS, Database, blobs, job_inputs, schema_version
from tests.asyncrun import run

# the PostgreSQL database is one for all tests: its tests run one at a time, on one xdist worker
pytestmark = pytest.mark.xdist_group("postgresql")


def test_settings_survive_a_reopen(database_url):
    async def scenario():
        storage = await Storage.open(database_url)
        try:
            await storage.settings.reset(42)
            assert await storage.settings.read(42) == GuildSettings()
            changed = GuildSettings().replace(strength=2.5, steps=120, allowed_channels=(7, 8))
            await storage.settings.write(42, changed, by=1)
            assert await storage.settings.read(42) == changed
            await storage.settings.write(42, changed.replace(steps=99), by=1)
        finally:
            await storage.close()
        reopened = await Storage.open(database_url)
        try:
            assert (await reopened.settings.read(42)).steps == 99
            assert (await reopened.settings.read(42)).allowed_channels == (7, 8)
            assert await reopened.migrate() == len(MIGRATIONS)  # migrating twice is harmless
            async with (
                reopened.engine.connect() as conn
            ):  # one row per migration, applied once each
                versions = (await conn.execute(sa.select(schema_version.c.version))).scalars().all()
            assert sorted(versions) == list(range(1, len(MIGRATIONS) + 1))
            await reopened.settings.reset(42)
            assert await reopened.settings.read(42) == GuildSettings()
        finally:
            await reopened.close()

    run(scenario())


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(strength=-1), "strength"),
        (dict(content_weight=1.0), "both"),
        (dict(size=4000), "size cap"),
        (dict(steps=900), "steps cap"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(style_layer_weights=(1.0,)), "5 layer weights"),
        (dict(style_layer_weights=(float("inf"), 1.0, 1.0, 1.0, 1.0)), "finite"),
        (dict(strength=float("nan")), "finite"),
        (dict(content_weight=float("inf"), style_weight=1.0), "finite"),
    ],
)
def test_invalid_settings_are_refused(change, message):
    with pytest.raises(SettingsError, match=message):
        GuildSettings().replace(**change)


def test_two_processes_see_each_others_changes_and_first_saves_do_not_collide(database_url):
    """Two bot processes share one database: simultaneous first saves must not raise a
    duplicate-key error, and a change made by one is seen by the other within the cache's TTL."""

    async def scenario():
        one = await Storage.open(database_url, settings_ttl=0.3)
        two = await Storage.open(database_url, settings_ttl=0.3)
        try:
            await one.settings.reset(77)
            assert (await two.settings.read(77)).steps == GuildSettings().steps  # now cached by two
            await asyncio.gather(
                *(
                    s.settings.write(77, GuildSettings().replace(steps=n), by=n)
                    for s, n in ((one, 11), (two, 22))
                )
            )
            assert (await one.settings.read(77)).steps in (11, 22)
            await one.settings.write(77, GuildSettings().replace(steps=33), by=1)
            await asyncio.sleep(0.35)
            assert (await two.settings.read(77)).steps == 33
            await one.settings.reset(77)
        finally:
            await one.close()
            await two.close()

    run(scenario())


def test_jobs_and_their_inputs(database_url):
    async def scenario():
        storage = await Storage.open(database_url)
        try:
            record = JobRecord(
                id="a" * 32,
                user_id=5,
                guild_id=6,
                channel_id=7,
                application_id=8,
                token="tok",
                token_expires_at=0.0,
                state=JobStatus.QUEUED,
                params={"size": 64},
                summary="s",
                styles=1,
            )
            async with storage.engine.begin() as conn:  # a clean slate on a shared PostgreSQL
                await conn.execute(sa.text("DELETE FROM jobs WHERE id = :id"), {"id": record.id})
                await conn.execute(
                    sa.text("DELETE FROM blobs WHERE key LIKE :k"), {"k": f"job:{record.id}:%"}
                )
            await storage.jobs.add(record, [b"content", b"style"], keep_inputs=60)
            await storage.jobs.heartbeat()
            assert record.id not in [
                j.id for j in await storage.jobs.orphaned(silent_for=60)
            ]  # its own
            successor = Storage(Database(storage.engine))  # a new bot process on the same database
            assert record.id in [
                j.id for j in await successor.jobs.orphaned(silent_for=-1)
            ]  # the first fell silent
            assert record.id not in [
                j.id for j in await successor.jobs.orphaned(silent_for=60)
            ]  # still alive
            assert await storage.jobs.images(record.id) == [b"content", b"style"]
            await storage.jobs.set_state(record.id, JobStatus.RUNNING)
            await storage.jobs.set_state(
                record.id, JobStatus.DONE, outcome="done!", delivered=False
            )
            assert record.id not in [j.id for j in await successor.jobs.orphaned(silent_for=-1)]
            assert record.id in [j.id for j in await storage.jobs.undelivered()]
            found = next(j for j in await storage.jobs.undelivered() if j.id == record.id)
            assert await storage.jobs.claim_delivery(
                found, lease=60
            )  # one try is counted per claim
            assert not await storage.jobs.claim_delivery(
                found, lease=60
            )  # another process: too late
            stored = await storage.jobs.get(record.id)
            assert (
                stored.state is JobStatus.DONE
                and stored.outcome == "done!"
                and stored.attempts == 1
            )
            assert not stored.token_alive and stored.params == {"size": 64}
            await storage.jobs.set_state(record.id, JobStatus.DONE, delivered=True)
            assert record.id not in [j.id for j in await storage.jobs.undelivered()]
            async with storage.engine.begin() as conn:  # its images' time is over
                await conn.execute(
                    job_inputs.update()
                    .where(job_inputs.c.job_id == record.id)
                    .values(expires_at=time.time() - 1)
                )
            assert await storage.jobs.images(record.id) is None
            assert await storage.blobs.purge_expired() >= 1
        finally:
            await storage.close()

    run(scenario())


def test_presets_with_their_images_a_limit_and_names_without_case(database_url):
    import random

    from bot.presets import Preset, PresetError, checked, image_key

    guild = random.randrange(10**17, 10**18)  # PostgreSQL's test database is shared

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            await storage.presets.add(
                guild, checked(Preset(name=" Starry   Night ", strength=2.0)), b"img1", limit=2
            )
            with pytest.raises(PresetError, match="already has a preset called Starry Night"):
                await storage.presets.add(guild, Preset(name="starry night"), b"x", limit=2)
            await storage.presets.add(guild, Preset(name="Waves"), b"img2", limit=2)
            with pytest.raises(PresetError, match="2 presets, the most"):
                await storage.presets.add(guild, Preset(name="Third"), b"x", limit=2)
            listed = [p.name for p in await storage.presets.list(guild)]
            found = await storage.presets.get(guild, "STARRY NIGHT")
            removed = await storage.presets.remove(guild, "waves")
            again = await storage.presets.remove(guild, "waves")
            image_gone = await storage.blobs.get([image_key(guild, "Waves")])
            other_guild = await storage.presets.list(guild + 1)
            await storage.presets.remove(guild, "Starry Night")
            return listed, found, removed, again, image_gone, other_guild
        finally:
            await storage.close()

    listed, found, removed, again, image_gone, other_guild = run(scenario())
    assert listed == ["Starry Night", "Waves"]
    assert found is not None and found[0].strength == 2.0 and found[1] == b"img1"
    assert removed is not None and removed.name == "Waves" and again is None
    assert image_gone is None and other_guild == []


@pytest.mark.parametrize(
    ("name", "strength", "colours", "message"),
    [
        ("", None, None, "1 to 32"),
        ("x" * 33, None, None, "1 to 32"),
        ("<@everyone>", None, None, "letters, digits"),
        ("ok", float("inf"), None, "between 0 and 100"),
        ("ok", None, "sepia", "one of none"),
    ],
)
def test_preset_rules(name, strength, colours, message):
    from bot.presets import Preset, PresetError, checked

    with pytest.raises(PresetError, match=message):
        checked(Preset(name=name, strength=strength, preserve_colors=colours))


def test_the_preset_limit_holds_when_admins_add_at_once(database_url):
    from bot.presets import Preset, PresetError, checked

    guild = 4242

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            for preset in await storage.presets.list(guild):
                await storage.presets.remove(guild, preset.name)

            async def add(name):
                try:
                    await storage.presets.add(guild, checked(Preset(name=name)), b"img", limit=5)
                    return "saved"
                except PresetError as exc:
                    return str(exc)

            many = await asyncio.gather(*(add(f"Style {i}") for i in range(12)))
            for preset in await storage.presets.list(guild):
                await storage.presets.remove(guild, preset.name)
            same = await asyncio.gather(*(add("Starry Night") for _ in range(4)))
            kept = len(await storage.presets.list(guild))
            for preset in await storage.presets.list(guild):
                await storage.presets.remove(guild, preset.name)
            return many, same, kept
        finally:
            await storage.close()

    many, same, kept = run(scenario())
    assert many.count("saved") == 5 and all(
        "the most it may keep" in m for m in many if m != "saved"
    )
    assert same.count("saved") == 1 and kept == 1
    assert all("already has a preset called Starry Night" in m for m in same if m != "saved")


def test_a_name_too_long_once_folded_is_refused_in_words():
    from bot.presets import Preset, PresetError, checked

    with pytest.raises(PresetError, match="too long once its letters are compared"):
        checked(Preset(name="ﬃ" * 32))


def test_two_bot_processes_adopt_an_orphan_and_deliver_an_ending_once(database_url):
    """Two processes (each with its own connections) whose recovery rounds meet: one wins."""

    async def scenario():
        first = await Storage.open(database_url)
        record = JobRecord(
            id=uuid.uuid4().hex, user_id=1, guild_id=2, channel_id=3, application_id=4,
            token="t", token_expires_at=time.time() + 60, state=JobStatus.QUEUED,
            params={}, summary="s", styles=1,
        )  # fmt: skip
        await first.jobs.add(record, [b"c", b"s"], keep_inputs=60)
        await first.jobs.heartbeat()
        await first.close()  # its process died
        a, b = await Storage.open(database_url), await Storage.open(database_url)
        try:
            orphans = [
                next(j for j in await s.jobs.orphaned(silent_for=-1) if j.id == record.id)
                for s in (a, b)
            ]
            adopted = await asyncio.gather(a.jobs.adopt(orphans[0]), b.jobs.adopt(orphans[1]))
            await a.jobs.set_state(record.id, JobStatus.DONE, outcome="done", delivered=False)
            found = [
                next(j for j in await s.jobs.undelivered() if j.id == record.id) for s in (a, b)
            ]
            claimed = await asyncio.gather(
                a.jobs.claim_delivery(found[0], lease=60), b.jobs.claim_delivery(found[1], lease=60)
            )
            return adopted, claimed
        finally:
            await a.close()
            await b.close()

    adopted, claimed = run(scenario())
    assert sorted(adopted) == [False, True] and sorted(claimed) == [False, True]


def test_a_server_the_bot_left_is_forgotten_after_the_grace_unless_it_rejoins(database_url):
    from bot.presets import Preset, image_key

    left, rejoined = 5151, 5252

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            for guild in (left, rejoined):
                await storage.settings.write(guild, GuildSettings().replace(steps=77), by=1)
                await storage.presets.add(guild, Preset(name="Waves"), b"img", limit=25)
            await storage.guilds.left(left)
            await storage.guilds.left(rejoined)
            await storage.guilds.joined(rejoined)
            kept = await storage.guilds.purge_left(grace=3600)  # not yet
            gone = await storage.guilds.purge_left(grace=0)
            images = await storage.blobs.get([image_key(left, "Waves")])
            state = (
                (await storage.settings.read(left)).steps,
                len(await storage.presets.list(left)),
                (await storage.settings.read(rejoined)).steps,
                len(await storage.presets.list(rejoined)),
            )
            await storage.settings.reset(rejoined)
            await storage.presets.remove(rejoined, "Waves")
            return kept, gone, images, state
        finally:
            await storage.close()

    kept, gone, images, state = run(scenario())
    assert kept == [] and gone == [left] and images is None
    assert state == (GuildSettings().steps, 0, 77, 1)


def test_an_image_is_stored_once_and_only_while_a_job_uses_it(database_url):
    """Content-addressed images: two jobs of the same pictures share them; a refused job's
    images go at once, unless another job uses them; expired uses free them."""

    def record(styles=1):
        return JobRecord(
            id=uuid.uuid4().hex, user_id=1, guild_id=6161, channel_id=3, application_id=4,
            token="t", token_expires_at=time.time() + 60, state=JobStatus.QUEUED,
            params={}, summary="s", styles=styles,
        )  # fmt: skip

    async def images(storage):
        async with storage.engine.connect() as conn:
            keys = (await conn.execute(sa.select(blobs.c.key))).scalars().all()
        return {k for k in keys if k.startswith("img:")}

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            first, again, refused = record(), record(), record()
            content, style, other = (f"{j.id}".encode() for j in (first, again, refused))
            before = await images(storage)
            await storage.jobs.add(first, [content, style], keep_inputs=60)
            await storage.jobs.add(again, [content, style], keep_inputs=60)  # a button press
            shared = await images(storage)
            await storage.jobs.add(refused, [content, other], keep_inputs=60)
            await storage.jobs.drop_images(refused.id)
            after_refusal = await images(storage)
            async with storage.engine.begin() as conn:
                await conn.execute(
                    job_inputs.update()
                    .where(job_inputs.c.job_id.in_([first.id, again.id]))
                    .values(expires_at=time.time() - 1)
                )
            await storage.blobs.purge_expired()
            ours = {f"img:{hashlib.sha256(d).hexdigest()}" for d in (content, style, other)}
            after_expiry = await images(storage)
            return (
                before,
                shared,
                after_refusal,
                after_expiry,
                ours,
                await storage.jobs.images(again.id),
            )
        finally:
            await storage.close()

    before, shared, after_refusal, after_expiry, ours, gone = run(scenario())
    assert len(shared - before) == 2  # two jobs of the same two pictures: two images stored
    assert after_refusal == shared  # the refused job's own image went; the shared ones stay
    assert not ours & after_expiry and gone is None


def test_a_server_that_saved_300_steps_gets_the_fast_default_after_the_migration(database_url):
    """Every save wrote the old default of 300 steps with it: the migration of issue 29 makes
    it 0 (the size's schedule); other values stay."""
    import json

    from bot.storage.db import guild_settings

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            await storage.settings.write(4301, GuildSettings().replace(steps=300, size=256), by=1)
            await storage.settings.write(4302, GuildSettings().replace(steps=120), by=1)
            async with storage.engine.begin() as conn:  # as if the last migration had not run
                await conn.execute(
                    schema_version.delete().where(schema_version.c.version == len(MIGRATIONS))
                )
            await storage.migrate()
            async with storage.engine.connect() as conn:
                rows = dict(
                    (await conn.execute(
                        sa.select(guild_settings.c.guild_id, guild_settings.c.settings)
                    )).all()
                )  # fmt: skip
            return (
                json.loads(rows[4301]),
                (await storage.settings.read(4302)).steps,
            )
        finally:
            await storage.settings.reset(4301)
            await storage.settings.reset(4302)
            await storage.close()

    migrated, kept = run(scenario())
    assert migrated["steps"] == 0 and migrated["size"] == 256 and kept == 120
