"""Checks on the pictures a member gives, shared by /stylize, the context menus and presets:
Discord's metadata first (nothing downloaded), then the download, then a full decode off the loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import aiohttp

from bot.engine.params import (
    IMAGE_TYPES,
    ImageLimits,
    InvalidParams,
    StyleParams,
    check_thick_enough,
)
from bot.jobs.downloads import download
from bot.media import clips, imaging
from bot.media.clips import VIDEO_TYPES

if TYPE_CHECKING:
    from bot.config import Settings

Source = tuple[str | bytes, str]  # (a URL to download, or bytes already here; what it is)


class Attachment(Protocol):
    """What Discord says of an attached file before it is downloaded (discord.Attachment)."""

    @property
    def content_type(self) -> str | None: ...
    @property
    def filename(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...


def check_attachment(
    attachment: Attachment, what: str, limits: ImageLimits, *, moving: bool = False
) -> str | None:
    """What is wrong with an attachment, from Discord's metadata only; None if nothing is.
    `moving`: a video clip is taken too (the content; a GIF is an image either way)."""
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES and not (moving and kind in VIDEO_TYPES):
        videos = " or a short MP4, WebM or MOV clip" if moving else ""
        return (
            f"The {what} (`{attachment.filename}`) is not an image I can use ({kind or 'unknown type'}). "
            f"Send {limits.formats_text()}{videos}."
        )
    if attachment.size > limits.max_bytes:
        return f"The {what} is {attachment.size / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB."
    if (
        attachment.width
        and attachment.height
        and attachment.width * attachment.height > limits.max_pixels
    ):
        return (
            f"The {what} is {attachment.width}×{attachment.height} pixels; "
            f"at most {limits.max_pixels / 1e6:.0f} megapixels are allowed."
        )
    return None


@dataclass(frozen=True)
class ContentMeasure:
    """What the dispatcher weighs a job's content by: found by the bot's check of a new job, or
    read from the header of one checked before."""

    cost: int = 1  # the frames it is painted as: its weight in the fair queue
    shape: tuple[int, int] | None = None  # a still's upright size: its shape bucket


def check_inputs(
    data: list[bytes], names: list[str], limits: ImageLimits, params: StyleParams | None
) -> ContentMeasure:
    """Decode every image completely (as the worker will: the content once) and check the
    content fits the layers at the job's size. Returns what the content weighs: the frames it
    will be painted as (the job's cost) and a still's size. Raises imaging.ImageError or
    InvalidParams with a reason for the member: any decoder error is one. CPU work: run it in a
    thread."""
    measure = ContentMeasure()
    for blob, name in zip(data, names, strict=True):
        try:
            if params and name == names[0]:
                measure = check_content(blob, name, limits, params)
            else:
                imaging.decode(blob, limits, name=name)
        except (imaging.ImageError, InvalidParams):
            raise
        except Exception as exc:  # a decoder's own error (Pillow, PyAV): the member's bad input
            raise imaging.CorruptImage(
                f"the {name} is damaged and cannot be decoded ({exc.__class__.__name__})"
            ) from None
    return measure


def check_content(
    blob: bytes, name: str, limits: ImageLimits, params: StyleParams
) -> ContentMeasure:
    """Decode the content as the worker will and check it fits the layers at the job's size (a
    moving picture within the server's clip limits: fitted, not refused, for its length).
    Returns the frames it will be painted as, and a still's size as decoded."""
    if clips.is_video(blob) and not clips.can_read_video():  # no PyAV here: the worker decodes it
        return ContentMeasure(clips.frames_to_paint(blob, params, limits))
    params, content, _ = clips.read_content(blob, params, limits)  # as the worker reads it
    width, height, frames = *content.frames[0].size, len(content.frames)
    check_thick_enough(params, width, height, name)
    return ContentMeasure(frames, (width, height) if frames == 1 else None)


def measure_content(content: bytes, params: StyleParams, limits: ImageLimits) -> ContentMeasure:
    """The content's cost and, for a still, its size (headers only; CPU work for a thread). What
    cannot be read counts as a still of unknown size: the decoder says what is wrong, later."""
    cost = clips.frames_to_paint(content, params, limits)
    if cost > 1 or clips.is_moving(content):
        return ContentMeasure(cost)
    try:
        return ContentMeasure(cost, imaging.upright_size(content, limits))
    except imaging.ImageError:
        return ContentMeasure(cost)


async def fetch(
    session: aiohttp.ClientSession,
    config: Settings,
    sources: list[Source],
    params: StyleParams | None,
) -> tuple[list[bytes], ContentMeasure]:
    """The bytes of every source, downloaded from Discord's CDN where needed, then decoded off
    the loop, and what the content weighs (`check_inputs`: its frames, a still's size). Raises
    DownloadError, imaging.ImageError or InvalidParams, each for the member."""
    data = [
        source
        if isinstance(source, bytes)
        else await download(
            session,
            source,
            limit=config.max_attachment_bytes,
            hosts=config.attachment_host_set,
            timeout=config.download_timeout,
            name=what,
        )
        for source, what in sources
    ]
    measure = await asyncio.to_thread(
        check_inputs, data, [what for _, what in sources], config.image_limits, params
    )
    return data, measure
