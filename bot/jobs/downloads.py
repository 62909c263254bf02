"""Attachments from Discord's CDN: only from its hosts, never more bytes than the limit."""

from __future__ import annotations

import aiohttp
import yarl


class DownloadError(Exception):
    """The attachment could not be fetched; the message is for the member."""


class DownloadTooLarge(DownloadError):
    pass


async def download(
    session: aiohttp.ClientSession,
    url: str,
    *,
    limit: int,
    hosts: frozenset[str],
    timeout: float,
    name: str,
) -> bytes:
    """The attachment's bytes, read in chunks and refused as soon as they pass `limit` (whatever
    its metadata declared)."""
    parsed = yarl.URL(url)
    if parsed.scheme not in ("https", "http") or (parsed.host or "").lower() not in hosts:
        raise DownloadError(f"the {name} does not come from Discord's CDN")
    try:
        async with session.get(
            parsed, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as response:
            if response.status != 200:
                raise DownloadError(f"Discord answered {response.status} for the {name}")
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise DownloadTooLarge(f"the {name} is larger than {limit / 2**20:.0f} MB")
            return bytes(data)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise DownloadError(
            f"the {name} could not be downloaded ({exc.__class__.__name__})"
        ) from None
