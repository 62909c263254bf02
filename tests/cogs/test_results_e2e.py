"""Buttons on every result, and /stylize-help."""

import asyncio

from tests.cogs.fake_discord import GUILD_ID, MANAGE_GUILD, MANAGE_MESSAGES
from tests.cogs.harness import (
    ALICE,
    BOB,
    BotHarness,
    ephemeral,
    picture_attachments,
    stylize_options,
    stylize_pictures,
    text_of,
)
from tests.cogs.harness import (
    run_with_fake as run,
)

GUILD = 710000000000000001


async def no_cooldown(harness, **changes):
    """This server lets a member start jobs back to back (the default cooldown is 30 s)."""
    settings = await harness.storage.settings.read(GUILD)
    await harness.storage.settings.write(GUILD, settings.replace(cooldown_seconds=0, **changes))


def done_edits(fake, token):
    return [e for e in fake.edits(token) if "Done in" in text_of(e)]


async def a_result(fake, **options):
    """Alice's finished job: (its token, the result message, its buttons by action)."""
    token = await stylize_pictures(fake, steps=2, size=64, seed=3, **options)
    await fake.wait_for(lambda f: done_edits(f, token))
    buttons = {
        c["custom_id"].split(":")[2]: c["custom_id"]
        for row in done_edits(fake, token)[-1].json["components"]
        for c in row["components"]
    }
    return token, fake.originals[token], buttons


def test_a_button_runs_a_new_job_as_the_member_who_pressed_it(database_url):
    """Also issue 48's seed: the seed is settled in the bot and kept in the row; ➕ and 🎨 keep
    the seed of the picture they start from, 🎲 alone draws a new one, and it paints another
    picture (the start's noise), which the caption's seed names."""

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await no_cooldown(harness)
            token, message, buttons = await a_result(fake)
            first = done_edits(fake, token)[-1]
            pressed = await fake.press(buttons["more"], message, member_user=BOB)
            more = await fake.wait_for(lambda f: done_edits(f, pressed))
            again = await fake.press(buttons["seed"], message, member_user=ALICE)
            seeded = await fake.wait_for(lambda f: done_edits(f, again))
            colours = await fake.press(buttons["colours"], message, member_user=ALICE)
            kept = await fake.wait_for(lambda f: done_edits(f, colours))
            records = [await job_of(harness, t) for t in (pressed, again, colours)]
            return first, more[-1], seeded[-1], kept[-1], records

    first, more, seeded, kept, (record, seeded_record, kept_record) = run(scenario)
    assert "strength 2" in text_of(more) and more.files  # twice the default strength of 1
    assert "seed 3\n" in text_of(more) + "\n" and "seed 3\n" in text_of(kept) + "\n"
    assert record is not None and record.style_params().seed == 3  # kept in the row
    assert kept_record is not None and kept_record.style_params().seed == 3
    new_seed = seeded_record.style_params().seed if seeded_record else None
    assert new_seed is not None and new_seed != 3  # drawn by the bot, before the row was written
    assert f"seed {new_seed}\n" in text_of(seeded) + "\n" and "strength 1 " in text_of(seeded)
    assert seeded.files[0].data != first.files[0].data  # another seed, another picture
    assert "colours: luminance" in text_of(kept)
    assert record.user_id == int(BOB["id"])  # Bob's job, under Bob's limits


async def job_of(harness, token):
    """The job a press started, from the jobs table (by its interaction token)."""
    import sqlalchemy as sa

    from bot.storage.db import jobs

    async with harness.storage.engine.connect() as conn:
        job_id = (await conn.execute(sa.select(jobs.c.id).where(jobs.c.token == token))).scalar()
    return await harness.storage.jobs.get(job_id)


def test_larger_is_clamped_by_the_servers_cap_and_says_so(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await no_cooldown(harness, max_size=96, size=64)
            _, message, buttons = await a_result(fake)
            larger = await fake.press(buttons["larger"], message, member_user=ALICE)
            result = await fake.wait_for(lambda f: done_edits(f, larger))
            again = await fake.press(
                larger_buttons(result[-1])["larger"], fake.originals[larger], member_user=ALICE
            )
            return result[-1], await fake.wait_for(lambda f: f.callbacks(again))

    result, refused = run(scenario)
    assert "96 px" in text_of(result)
    assert ephemeral(refused[0]) and "already at this server's largest size (96 px)" in text_of(
        refused[0]
    )


def larger_buttons(message):
    return {
        c["custom_id"].split(":")[2]: c["custom_id"]
        for row in message.json["components"]
        for c in row["components"]
    }


def test_delete_only_for_the_owner_or_a_moderator(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url):
            _, message, buttons = await a_result(fake)
            refused = await fake.press(buttons["delete"], message, member_user=BOB)
            await fake.wait_for(lambda f: f.callbacks(refused))
            deleted = await fake.press(
                buttons["delete"], message, member_user=BOB, permissions=MANAGE_MESSAGES
            )
            await fake.wait_for(
                lambda f: [
                    r
                    for r in f.requests
                    if r.method == "DELETE" and r.path.startswith("/channels/")
                ]
            )
            await fake.wait_for(lambda f: f.followups(deleted))
            return (
                fake.callbacks(refused),
                [
                    r
                    for r in fake.requests
                    if r.method == "DELETE" and r.path.startswith("/channels/")
                ],
                message,
            )

    refused, deletes, message = run(scenario)
    assert ephemeral(refused[0]) and "Only the member who asked" in text_of(refused[0])
    assert deletes[0].path == f"/channels/{message['channel_id']}/messages/{message['id']}"


def test_after_the_retention_time_a_press_says_the_images_expired(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url, input_ttl=0) as harness:
            await no_cooldown(harness)
            _, message, buttons = await a_result(fake)
            pressed = await fake.press(buttons["seed"], message, member_user=ALICE)
            return await fake.wait_for(lambda f: f.callbacks(pressed))

    callbacks = run(scenario)
    assert ephemeral(callbacks[0]) and "no longer kept" in text_of(callbacks[0])


def test_stylize_help(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url):
            token = await fake.slash("stylize-help", [], member_user=ALICE)
            return await fake.wait_for(lambda f: f.callbacks(token))

    (reply,) = run(scenario)
    text = text_of(reply)
    assert ephemeral(reply) and "/stylize" in text and "Example" in text
    assert (
        "**Steps:** the size’s schedule" in text
        and "0 of 3 jobs" in text
        and "you can start one now" in text
    )


def test_stylize_history_links_the_members_own_results(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await no_cooldown(harness)
            token, message, _ = await a_result(fake)
            # The result reaches Discord just before the jobs table records its message id.
            while not await harness.storage.jobs.history(int(ALICE["id"]), GUILD_ID):
                await asyncio.sleep(0.02)
            mine = await fake.slash("stylize-history", [], member_user=ALICE)
            theirs = await fake.slash("stylize-history", [], member_user=BOB)
            await fake.wait_for(lambda f: f.callbacks(mine) and f.callbacks(theirs))
            return message, fake.callbacks(mine)[0], fake.callbacks(theirs)[0]

    message, mine, theirs = run(scenario)
    assert ephemeral(mine) and f"/{message['channel_id']}/{message['id']})" in text_of(mine)
    assert "strength 1" in text_of(mine)
    assert "no pictures here yet" in text_of(theirs)


def test_images_already_in_the_chat_through_the_context_menus(database_url):
    from tests.conftest import gradient_image, noise_image, png_bytes

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await no_cooldown(harness, size=64, steps=3)  # picks use the server's defaults
            content = fake.add_attachment(
                "photo.png", png_bytes(gradient_image(96, 64)), "image/png", 96, 64
            )
            style = fake.add_attachment(
                "paint.png", png_bytes(noise_image(32, 32)), "image/png", 32, 32
            )
            text_only = fake.member_message(BOB, [])
            with_content = fake.member_message(BOB, [content])
            with_style = fake.member_message(BOB, [style])
            nothing = await fake.context_menu("Stylize: use as style", text_only, member_user=ALICE)
            first = await fake.context_menu(
                "Stylize: use as content", with_content, member_user=ALICE
            )
            await fake.wait_for(lambda f: f.callbacks(nothing) and f.callbacks(first))
            second = await fake.context_menu("Stylize: use as style", with_style, member_user=ALICE)
            done = await fake.wait_for(lambda f: done_edits(f, second), timeout=120)
            return fake.callbacks(nothing)[0], fake.callbacks(first)[0], done[-1]

    nothing, first, done = run(scenario)
    assert ephemeral(nothing) and "no image I can use" in text_of(nothing)
    assert (
        ephemeral(first)
        and "Content picked: `photo.png`" in text_of(first)
        and "use as style" in text_of(first)
    )
    assert "64 px · 3 steps" in text_of(done) and done.files  # the server's defaults


def test_other_members_cannot_press_a_picture_back_towards_the_upload(database_url):
    """Less style, the content's colours and a larger size show more of the uploaded photo: only
    its uploader may press them, also on a result another member made from it with 🎲."""

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await no_cooldown(harness, max_size=128, size=64)
            _, message, buttons = await a_result(fake)
            refused = [
                (await fake.wait_for(lambda f, t=t: f.callbacks(t)))[0]
                for t in [
                    await fake.press(buttons[a], message, member_user=BOB)
                    for a in ("less", "colours", "larger")
                ]
            ]
            seeded = await fake.press(buttons["seed"], message, member_user=BOB)
            bobs = await fake.wait_for(lambda f: done_edits(f, seeded))
            bobs_buttons = {
                c["custom_id"].split(":")[2]: c["custom_id"]
                for row in bobs[-1].json["components"]
                for c in row["components"]
            }
            bobs_message = fake.originals[seeded]
            still = await fake.press(bobs_buttons["less"], bobs_message, member_user=BOB)
            (still_refused,) = await fake.wait_for(lambda f: f.callbacks(still))
            alices = await fake.press(bobs_buttons["less"], bobs_message, member_user=ALICE)
            less = await fake.wait_for(lambda f: done_edits(f, alices))
            return refused, still_refused, less[-1], await job_of(harness, seeded)

    refused, still_refused, less, bobs_job = run(scenario)
    for answer in [*refused, still_refused]:
        assert ephemeral(answer) and "who uploaded this picture" in text_of(answer)
    assert bobs_job.user_id == int(BOB["id"]) and bobs_job.content_owner == int(ALICE["id"])
    assert "strength 0.5" in text_of(less)


def test_refused_commands_and_presses_store_no_new_images(database_url):
    """Images are kept once per picture, and only for jobs that were accepted."""
    import sqlalchemy as sa

    from bot.storage.db import blobs, jobs

    async def stored(harness):
        async with harness.storage.engine.connect() as conn:
            keys = (await conn.execute(sa.select(blobs.c.key))).scalars().all()
        return sorted(k for k in keys if k.startswith("img:"))

    async def scenario(fake):
        async with BotHarness(fake, database_url, per_user_jobs=1) as harness:
            await no_cooldown(harness)
            _, message, buttons = await a_result(fake)
            after_one = await stored(harness)
            long = await stylize_pictures(fake, steps=500, size=64)  # the cap
            # it runs: from now on Alice is at her limit of one job
            await fake.wait_for(lambda f: any("ETA" in text_of(e) for e in f.edits(long)))
            refused = []
            for _ in range(3):  # over Alice's limit of one job at a time
                more = picture_attachments(fake, content_size=(40, 30))
                token = await fake.slash(
                    "stylize", stylize_options(more, size=64), member_user=ALICE,
                    attachments=more,
                )  # fmt: skip
                refused.append(await fake.wait_for(lambda f, t=token: f.followups(t)))
            await harness.executor.cancel((await job_of(harness, long)).id)  # the worker is free
            pressed = await fake.press(buttons["seed"], message, member_user=BOB)
            await fake.wait_for(lambda f: done_edits(f, pressed))
            async with harness.storage.engine.connect() as conn:
                refused_rows = (
                    await conn.execute(sa.select(jobs.c.token).where(jobs.c.state == "refused"))
                ).all()
            return after_one, refused, await stored(harness), refused_rows

    after_one, refused, after, refused_rows = run(scenario)
    assert len(after_one) == 2 and all("Not now" in text_of(r[-1]) for r in refused)
    # their rows are kept for the audit window only (jobs.purge), and keep no token even then
    assert len(refused_rows) == 3 and all(r.token == "" for r in refused_rows)
    # the long job sent the same two pictures again (stored once), the refused ones (another
    # content) left nothing, and Bob's press reused Alice's
    assert after == after_one


def test_every_settings_text_fits_a_message_at_the_largest_values(database_url):
    """25 presets of the longest name, 80 allowed channels, the longest numbers each setting
    takes: /stylize-help, /stylize-settings show and set still fit Discord's 2,000 characters."""
    from bot.guild_policy import MAX_COOLDOWN, GuildSettings
    from bot.presets import MAX_PRESETS, NAME_MAX, Preset
    from tests.conftest import noise_image, png_bytes

    channels = tuple(990000000000000000 + i for i in range(80))
    largest = GuildSettings(
        strength=12.3456,
        style_layer_weights=(0.123456, 0.234567, 0.345678, 0.456789, 0.567891),
        cooldown_seconds=MAX_COOLDOWN,
        allowed_channels=channels,
    )

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await harness.storage.settings.write(GUILD_ID, largest)
            style = png_bytes(noise_image(16, 16))
            for i in range(MAX_PRESETS):
                name = f"{i:02d}" + "x" * (NAME_MAX - 2)
                await harness.storage.presets.add(
                    GUILD_ID, Preset(name=name, strength=-0.0), style, limit=MAX_PRESETS
                )
            helped = await fake.slash("stylize-help", [], member_user=ALICE, channel_id=channels[0])
            shown = await fake.slash(
                "stylize-settings",
                [],
                subcommand="show",
                member_user=ALICE,
                permissions=MANAGE_GUILD,
                channel_id=channels[0],
            )
            await fake.wait_for(lambda f: f.callbacks(helped) and f.callbacks(shown))
            return fake.callbacks(helped)[0], fake.callbacks(shown)[0]

    helped, shown = run(scenario)
    for reply in (helped, shown):
        assert len(text_of(reply)) <= 2000, len(text_of(reply))
        assert "and 70 more" in text_of(reply) or "more" in text_of(reply)
    assert "00xx" in text_of(helped) and "strength -0" not in text_of(helped)


def test_a_result_discord_refuses_as_too_large_arrives_smaller(database_url):
    """Discord answers 413 below the limit it advertises at times: the result is made smaller
    and sent again, never the same bytes into the same refusal."""

    async def scenario(fake):
        async with BotHarness(fake, database_url):
            fake.upload_limit = 2500  # bytes: below the 96 px PNG the worker makes
            token = await stylize_pictures(fake, steps=2, size=96, seed=3)
            await fake.wait_for(  # an edit Discord takes: its picture within the limit
                lambda f: [
                    e for e in done_edits(f, token) if e.files and len(e.files[0].data) <= 2500
                ]
            )
            return fake.edits(token), fake.channel_messages()

    edits, posts = run(scenario)
    delivered = [e for e in edits if "Done in" in text_of(e) and e.files]
    assert len(delivered[0].files[0].data) > 2500  # the worker's picture, refused
    assert not posts  # into the job's own message: no channel post with the same bytes
    picture = delivered[-1].files[0]
    assert len(picture.data) <= 2500 and picture.filename in ("stylized.jpg", "stylized.webp")
    assert "made smaller" in text_of(delivered[-1])
