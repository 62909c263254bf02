"""Logging: one format, colour only on a terminal, JSON on request, workers like the bot, no tokens."""

import io
import json
import logging

import pytest

from bot.logs import LogConfig, configure_logging, redact
from tests.asyncrun import run


@pytest.fixture(autouse=True)
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_one_plain_line_a_record_in_a_file():
    stream = io.StringIO()
    configure_logging(LogConfig(level=logging.INFO), stream)
    logging.getLogger("bot.test").info("hello %s", "there")
    logging.getLogger("bot.test").debug("not shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("stylebot INFO bot.test: hello there")
    assert "\x1b[" not in stream.getvalue()  # no colour where there is no terminal


def test_json_lines():
    stream = io.StringIO()
    configure_logging(LogConfig(level=logging.WARNING, json=True, who="worker cpu#0"), stream)
    logging.getLogger("bot.test").warning("careful")
    entry = json.loads(stream.getvalue())
    assert (
        entry["level"] == "WARNING"
        and entry["message"] == "careful"
        and entry["process"] == "worker cpu#0"
    )


def test_tokens_are_redacted_from_any_logger():
    stream = io.StringIO()
    configure_logging(LogConfig(level=logging.DEBUG), stream)
    logging.getLogger("anything").debug(
        "POST /api/v10/interactions/123/aW50ZXJhY3Rpb24.token/callback"
    )
    logging.getLogger("anything").debug(
        "event %s", {"t": "INTERACTION_CREATE", "d": {"token": "secret-token"}}
    )
    text = stream.getvalue()
    assert "aW50ZXJhY3Rpb24.token" not in text and "secret-token" not in text
    assert "/interactions/123/<token>/callback" in text
    assert redact("/webhooks/7/abc/messages/@original") == "/webhooks/7/<token>/messages/@original"


def test_workers_log_at_the_bots_level_and_format(capfd):
    from tests.executor.helpers import run, started_executor

    async def scenario():
        executor = await started_executor(log=LogConfig(level=logging.WARNING, json=True))
        await executor.shutdown()

    run(scenario())
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    worker = [json.loads(line) for line in lines if '"worker cpu#0"' in line]
    assert worker and all(
        e["level"] in ("WARNING", "ERROR") for e in worker
    )  # no INFO: the level came along
    assert any("RANDOM" in e["message"] for e in worker)


INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpTRUNSRVRTRUNSRVQ"


def test_no_token_in_a_failed_statements_traceback(tmp_path):
    """A failed insert of a jobs row (the interaction token among its values), logged with its
    traceback as the tree's error handler logs it: neither the message nor the traceback lists
    the token."""

    import sqlalchemy as sa

    from bot.storage import Storage

    stream = io.StringIO()
    configure_logging(LogConfig(level=logging.DEBUG), stream)

    async def scenario():
        storage = await Storage.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
        try:
            async with storage.engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, token TEXT)"))
                await conn.execute(sa.text("INSERT INTO t VALUES (1, 'x')"))
            async with storage.engine.begin() as conn:  # the same id again: IntegrityError
                await conn.execute(
                    sa.text("INSERT INTO t VALUES (1, :t)"), {"t": INTERACTION_TOKEN}
                )
        except Exception:
            logging.getLogger("bot.test").exception("could not record the job")
        finally:
            await storage.close()

    run(scenario())
    text = stream.getvalue()
    assert "IntegrityError" in text and "Traceback" in text
    assert INTERACTION_TOKEN not in text


def test_tokens_are_redacted_in_tracebacks_too():
    stream = io.StringIO()
    configure_logging(LogConfig(level=logging.INFO), stream)
    try:
        raise RuntimeError(f"POST /interactions/1/{INTERACTION_TOKEN}/callback failed")
    except RuntimeError:
        logging.getLogger("bot.test").exception("failed: %s", ("x", INTERACTION_TOKEN))
    assert INTERACTION_TOKEN not in stream.getvalue() and "<token>" in stream.getvalue()
