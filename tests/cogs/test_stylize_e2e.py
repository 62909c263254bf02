"""/stylize as members use it: the real discord.py client against the fake Discord on 127.0.0.1."""

import asyncio

import aiohttp

from bot.guild_policy import GuildSettings
from tests.cogs.fake_discord import MANAGE_MESSAGES
from tests.cogs.harness import (
    ALICE,
    BOB,
    BotHarness,
    ephemeral,
    image_of,
    picture_attachments,
    stylize_options,
    stylize_pictures,
    text_of,
)
from tests.cogs.harness import (
    run_with_fake as run,
)


def final_edit(fake, token):
    """The edit that ended the job: a picture, and no Cancel button any more."""
    edits = fake.edits(token)
    if not edits or not edits[-1].files:
        return None
    buttons = [
        c.get("custom_id", "")
        for row in (edits[-1].json or {}).get("components") or []
        for c in row["components"]
    ]
    return None if any(b.startswith("stylebot:cancel:") for b in buttons) else edits[-1]


def test_happy_path_ends_with_the_image(database_url, caplog):
    caplog.set_level("INFO")

    async def scenario(fake):
        async with BotHarness(fake, database_url):
            attachments = picture_attachments(fake, (96, 64))
            # long enough (about a second) that throttled progress edits land before the result
            token = await fake.slash(
                "stylize",
                stylize_options(attachments, steps=25, size=64, seed=5),
                member_user=ALICE,
                attachments=attachments,
            )
            await fake.wait_for(lambda f: final_edit(f, token))
            return (
                fake.callbacks(token),
                fake.edits(token),
                fake.originals[token],
                len(fake.channel_messages()),
            )

    callbacks, edits, original, posts = run(scenario)
    # the result is in the job's own message (its original response), not posted beside it
    assert "Done in" in original["content"] and original["attachments"] and posts == 0
    assert [c.json["type"] for c in callbacks] == [5]  # deferred, thinking: acknowledged at once
    texts = [text_of(e) for e in edits]
    assert any("Queued: position **1**" in t or "Painting" in t for t in texts)
    assert any("/25" in t and "ETA" in t for t in texts)
    assert any(any(f.filename == "preview.jpg" for f in e.files) for e in edits[:-1])
    assert all(e.json.get("components") for e in edits[:-1])  # the Cancel button while it runs
    result = edits[-1]
    image = image_of(result.files[0])
    assert image.size == (64, 43) and image.format == "PNG"
    assert (
        "Done in" in text_of(result)
        and "25 steps" in text_of(result)
        and "seed 5" in text_of(result)
    )
    buttons = [c["custom_id"] for row in result.json["components"] for c in row["components"]]
    assert [b.split(":")[2] for b in buttons] == [
        "seed",
        "more",
        "less",
        "colours",
        "larger",
        "delete",
    ]
    assert not any("cancel" in b for b in buttons)  # the Cancel button is gone with the job
    assert "fake-token-for-tests" not in caplog.text and caplog.text  # logs, never the token


def test_a_non_image_attachment_is_refused_and_nothing_is_queued(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            text = fake.add_attachment("notes.txt", b"hello", "text/plain")
            style = picture_attachments(fake)[1]
            token = await fake.slash(
                "stylize",
                stylize_options([text, style]),
                member_user=ALICE,
                attachments=[text, style],
            )
            await fake.wait_for(lambda f: f.callbacks(token))
            # claims to be a PNG, but is not: refused after the download, from its header
            fake_png = fake.add_attachment("fake.png", b"not really a png", "image/png", 10, 10)
            token2 = await fake.slash(
                "stylize",
                stylize_options([fake_png, style]),
                member_user=ALICE,
                attachments=[fake_png, style],
            )
            await fake.wait_for(lambda f: f.followups(token2))
            await asyncio.sleep(0.3)
            return (
                fake.callbacks(token),
                fake.edits(token),
                fake.followups(token2),
                harness.executor.job_ids(),
                fake.originals.get(token2),
            )

    callbacks, edits, followups, jobs, original = run(scenario)
    assert len(callbacks) == 1 and callbacks[0].json["type"] == 4 and ephemeral(callbacks[0])
    assert "not an image" in text_of(callbacks[0])
    assert edits == [] and jobs == []
    assert ephemeral(followups[0]) and "not an image we can read" in text_of(followups[0])
    # the public "thinking" message became a short note; the reason went to the member alone
    assert "did not start" in original["content"] and "image" not in original["content"]


def test_cancel_button_stops_the_job_and_only_for_the_right_people(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url):
            token = await stylize_pictures(fake, steps=5000, size=64)
            edit = await fake.wait_for(
                lambda f: next((e for e in f.edits(token) if "ETA" in text_of(e)), None)
            )
            custom_id = edit.json["components"][0]["components"][0]["custom_id"]
            message = fake.originals[token]
            refused = await fake.press(custom_id, message, member_user=BOB)
            await fake.wait_for(lambda f: f.callbacks(refused))
            moderator = await fake.press(
                custom_id, message, member_user=BOB, permissions=MANAGE_MESSAGES
            )
            await fake.wait_for(lambda f: f.callbacks(moderator))
            await fake.wait_for(lambda f: any("Cancelled" in text_of(e) for e in f.edits(token)))
            return custom_id, fake.callbacks(refused), fake.callbacks(moderator)

    custom_id, refused, accepted = run(scenario)
    assert custom_id.startswith("stylebot:cancel:")
    assert ephemeral(refused[0]) and "Only the member" in text_of(refused[0])
    assert "Cancelling" in accepted[0].json["data"]["content"]


def test_settings_need_manage_server_are_used_and_survive_a_restart(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            denied = await fake.slash(
                "stylize-settings",
                [{"name": "steps", "type": 4, "value": 3}],
                subcommand="set",
                member_user=BOB,
            )
            await fake.wait_for(lambda f: f.callbacks(denied))
            unchanged = await harness.storage.settings.read(fake_guild())
            admin = 1 << 5
            saved = await fake.slash(
                "stylize-settings",
                [
                    {"name": "steps", "type": 4, "value": 3},
                    {"name": "strength", "type": 10, "value": 2.5},
                ],
                subcommand="set",
                member_user=ALICE,
                permissions=admin,
            )
            await fake.wait_for(lambda f: f.callbacks(saved))
            job = await stylize_pictures(fake, BOB, size=64)
            await fake.wait_for(lambda f: final_edit(f, job))
        async with BotHarness(fake, database_url):
            shown = await fake.slash(
                "stylize-settings", [], subcommand="show", member_user=ALICE, permissions=admin
            )
            await fake.wait_for(lambda f: f.callbacks(shown))
        return (
            fake.callbacks(denied),
            unchanged,
            fake.callbacks(saved),
            final_edit(fake, job),
            fake.callbacks(shown),
        )

    denied, unchanged, saved, result, shown = run(scenario, timeout=240)
    assert ephemeral(denied[0]) and "Manage Guild" in denied[0].json["data"]["content"]
    assert unchanged == GuildSettings()  # the engine's defaults: one owner for each
    assert "Saved" in saved[0].json["data"]["content"]
    assert "3 steps" in text_of(result) and "strength 2.5" in text_of(result)
    assert "**Steps:** 3" in shown[0].json["data"]["content"]


def test_a_late_result_is_posted_to_the_channel(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url, interaction_ttl=0):
            token = await stylize_pictures(fake, steps=2, size=64)
            posted = await fake.wait_for(lambda f: f.channel_messages())
            return posted, fake.edits(token)

    posted, edits = run(scenario)
    message = posted[0]
    assert f"<@{ALICE['id']}>" in text_of(message) and "Done in" in text_of(message)
    assert image_of(message.files[0]).size == (64, 43)
    assert [str(u) for u in message.json["allowed_mentions"]["users"]] == [ALICE["id"]]


def test_shutdown_tells_queued_members_and_stops_running_jobs(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url, shutdown_grace=0.5) as harness:
            first, second = picture_attachments(fake), picture_attachments(fake)
            running = await fake.slash(
                "stylize",
                stylize_options(first, steps=5000, size=64),
                member_user=ALICE,
                attachments=first,
            )
            await fake.wait_for(lambda f: any("ETA" in text_of(e) for e in f.edits(running)))
            queued = await fake.slash(
                "stylize",
                stylize_options(second, steps=5, size=64),
                member_user=BOB,
                attachments=second,
            )
            await fake.wait_for(lambda f: any("Queued" in text_of(e) for e in f.edits(queued)))
            await harness.bot.close()
            return [text_of(e) for e in fake.edits(running)], [
                text_of(e) for e in fake.edits(queued)
            ]

    running, queued = run(scenario)
    assert "restarting" in queued[-1] and "restarting" in running[-1]


def fake_guild() -> int:
    from tests.cogs.fake_discord import GUILD_ID

    return GUILD_ID


def test_commands_are_synced_only_when_they_changed(database_url):
    async def scenario(fake):
        def puts(f):
            return [r for r in f.requests if r.method == "PUT" and r.path.endswith("/commands")]

        async with BotHarness(fake, database_url):
            first = len(puts(fake))
        async with BotHarness(fake, database_url):
            second = len(puts(fake))
        async with BotHarness(fake, database_url) as harness:
            assert await harness.bot.sync_commands(force=True)  # what `stylebot sync` does
            third = len(puts(fake))
        return first, second, third

    assert run(scenario) == (1, 1, 2)


def metric_samples(text: str) -> dict[tuple, float]:
    """The samples of a /metrics text, parsed by prometheus_client's own parser:
    {(name, (label, value), ...): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_health_and_metrics_for_operators(database_url):
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scrape(session) -> dict[tuple, float]:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            return metric_samples(await response.text())

    def steps(samples) -> float:
        return sum(v for k, v in samples.items() if k[0] == "stylebot_job_steps_total")

    async def scenario(fake):
        async with (
            BotHarness(fake, database_url, health_port=port, delivery_retry_interval=0.5),
            aiohttp.ClientSession() as session,
        ):
            token = await stylize_pictures(fake, steps=40, size=64)
            await fake.wait_for(lambda f: any("/40" in text_of(e) for e in f.edits(token)))
            fake.refusing = True  # the progress edits fail: Discord API errors
            for _ in range(200):
                found = await scrape(session)  # every known label set is there at 0 from the start
                if any(
                    k[0] == "stylebot_discord_api_errors_total" and v > 0 for k, v in found.items()
                ):
                    break
                await asyncio.sleep(0.05)
            fake.refusing = False
            # the result: in the job's message, or (an edit refused) a channel message
            await fake.wait_for(
                lambda f: final_edit(f, token) or [m for m in f.channel_messages() if m.files],
                timeout=60,
            )
            content = picture_attachments(fake)[0]
            unknown = await fake.slash(
                "stylize",
                [
                    {"name": "content", "type": 11, "value": content["id"]},
                    {"name": "preset", "type": 3, "value": "No Such Preset"},
                ],
                member_user=BOB,
                attachments=[content],
            )
            await fake.wait_for(lambda f: f.followups(unknown))
            health = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "bot", "health", "--port", str(port)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            samples = await scrape(session)
            for _ in range(150):  # the worker's stats arrive every STATS_INTERVAL seconds
                if steps(samples) >= 40:
                    break
                await asyncio.sleep(0.1)
                samples = await scrape(session)
        after = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot", "health", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return health, samples, after

    health, samples, after = run(scenario)
    assert health.returncode == 0 and "'ready': True" in health.stdout
    still = (("kind", "still"), ("size", "256"))
    assert (
        samples[("stylebot_jobs_total", ("kind", "still"), ("outcome", "done"), ("reason", ""))]
        == 1
    )
    assert samples[("stylebot_job_wait_seconds_count", *still)] == 1
    assert samples[("stylebot_job_duration_seconds_count", *still)] == 1
    assert samples[("stylebot_optimizer_steps_total", ("kind", "still"))] == 40
    assert samples[("stylebot_refusals_total", ("reason", "no_preset"))] == 1
    assert samples[("stylebot_queue_length",)] == 0 and samples[("stylebot_workers_ready",)] == 1
    assert samples[("stylebot_members_waiting",)] == 0 and samples[("stylebot_jobs_running",)] == 0
    failed = [
        k for k, v in samples.items() if k[0] == "stylebot_discord_api_errors_total" and v > 0
    ]
    assert failed and all(dict(k[1:])["status"] == "404" for k in failed)
    routes = {dict(k[1:])["route"] for k in failed}
    assert routes <= {
        "PATCH /webhooks/{id}/{token}/messages/@original",
        "POST /channels/{id}/messages",
    }
    assert "PATCH /webhooks/{id}/{token}/messages/@original" in routes
    (device,) = [k[1:] for k in samples if k[0] == "stylebot_job_steps_total"]
    assert dict(device)["device"] == "cpu"
    assert samples[("stylebot_job_steps_total", *device)] >= 40
    assert samples[("stylebot_batches_total", *device)] >= 40
    assert samples[("stylebot_batch_size_jobs", *device)] >= 1
    assert samples[("stylebot_device_memory_peak_bytes", *device)] > 0
    assert sum(v for k, v in samples.items() if k[0] == "stylebot_device_busy_seconds_total") > 0
    assert after.returncode == 1 and "no bot answers" in after.stderr  # the bot has stopped
