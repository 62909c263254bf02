"""Each picture of a job is decoded once, by the worker: the bot reads headers only.

A decode is counted where Pillow turns a file's compressed data into pixels
(`ImageFile.load` with tiles still to read); a load of pixels already decoded is not one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from PIL import ImageFile

from bot.worker.runner import JobRunner, RunnerSpec
from tests.cogs.harness import (
    ALICE,
    BotHarness,
    picture_attachments,
    run_with_fake,
    stylize_options,
    text_of,
)
from tests.executor.helpers import make_job


@contextlib.contextmanager
def counted_decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The formats decoded in this process while the block runs."""
    decoded: list[str] = []
    real = ImageFile.ImageFile.load

    def load(self):
        if getattr(self, "tile", None):
            decoded.append(self.format or "?")
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", load)
        yield decoded


def test_the_bot_decodes_no_picture_of_a_job(database_url, monkeypatch):
    """A /stylize from the command to its result: the bot process (this one: the worker runs in
    its own) reads the two pictures' headers and decodes neither."""

    async def scenario(fake):
        async with BotHarness(fake, database_url):
            attachments = picture_attachments(fake, (96, 64))
            with counted_decodes(monkeypatch) as decoded:
                token = await fake.slash(
                    "stylize",
                    stylize_options(attachments, steps=2, size=64),
                    member_user=ALICE,
                    attachments=attachments,
                )
                await fake.wait_for(lambda f: any("Done in" in text_of(e) for e in f.edits(token)))
            return list(decoded)

    assert run_with_fake(scenario) == []


def test_the_worker_decodes_each_picture_once(monkeypatch):
    runner = JobRunner(RunnerSpec(device="cpu", weights="random", threads=1, precision="fp32"))
    job = make_job(steps=2, size=32)
    with counted_decodes(monkeypatch) as decoded:
        runner.read(job)
    assert decoded == ["PNG", "PNG"]  # the content and the style, once each
