"""HTTP GETs of upstream files: :func:`open_response` asks for a file from a byte offset
(``Range: bytes=N-``) and :func:`stream_body` streams the answer into a sink in chunks of
:data:`CHUNK_BYTES`, skipping the bytes already held when a server ignores the range, and
sorts what goes wrong into :class:`TransientError` (connection errors, timeouts, dropped or
truncated bodies, HTTP 408/425/429/5xx: retry from where the transfer stopped),
:class:`CorruptError` (more bytes than expected, a range answer from the wrong offset: start
the file again) and :class:`WrongContentError` (an HTML page served in place of a file, such
as Google Drive's quota and virus-scan pages, or an HTTP error that retrying will not fix:
try the next mirror); :class:`RetryPolicy` says how often to try and how long to wait
(exponential backoff, capped, with jitter). Nothing here knows about storage or checksums.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Callable

CHUNK_BYTES = 1 << 20
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class TransientError(Exception):
    """A failure worth retrying from where the transfer stopped."""


class CorruptError(Exception):
    """The bytes received are not the published file: start the file again."""


class WrongContentError(Exception):
    """The URL serves something else (an HTML page, a missing file): try the next mirror."""


@dataclass
class RetryPolicy:
    """How hard to try.

    Attributes:
        attempts: transfers per URL before giving up (each resumes the previous one).
        base_delay: seconds before the first retry; doubled each time, with jitter.
        max_delay: cap of one wait.
        connect_timeout: seconds to connect.
        read_timeout: seconds without a byte before the transfer counts as stalled.
    """

    attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    connect_timeout: float = 20.0
    read_timeout: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        wait = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        if retry_after is not None:
            wait = min(self.max_delay, max(wait, retry_after))
        return wait * random.uniform(0.8, 1.0)


def _looks_like_html(head: bytes, content_type: str, dest: str) -> bool:
    """True when a response that should be ``dest`` is an HTML page instead.

    Args:
        head: the first bytes of the body.
        content_type: the response's ``Content-Type`` header ('' when absent).
        dest: the destination name (an ``.html`` file is allowed to be HTML).
    """
    if dest.lower().endswith((".html", ".htm")):
        return False
    if content_type.lower().startswith("text/html"):
        return True
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:64].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<!-- "))


class _Session:
    """One ``requests`` session per worker thread (connections are reused per host)."""

    _local = threading.local()

    @classmethod
    def get(cls):
        if not hasattr(cls._local, "session"):
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = "multiqa-corpus-fetch/1"
            cls._local.session = session
        return cls._local.session


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def open_response(url: str, offset: int, policy: RetryPolicy):
    """GET ``url`` from byte ``offset``; classify HTTP failures."""
    import requests

    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = _Session.get().get(url, headers=headers, stream=True, allow_redirects=True,
                                      timeout=(policy.connect_timeout, policy.read_timeout))
    except requests.RequestException as exc:
        raise TransientError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code in _RETRY_STATUS:
        response.close()
        error = TransientError(f"HTTP {response.status_code}")
        error.retry_after = _retry_after(response)
        raise error
    if response.status_code == 416 and offset:
        return response
    if response.status_code not in (200, 206):
        response.close()
        raise WrongContentError(f"HTTP {response.status_code}")
    return response


def _range_start(response) -> int:
    content_range = response.headers.get("Content-Range", "")
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def stream_body(url: str, dest: str, written: int, sink: Callable[[bytes], None],
                expected_size: int | None, policy: RetryPolicy, on_length: Callable[[int], None]) -> int:
    """Stream ``url`` from byte ``written`` on into ``sink``; return the bytes written in all.

    Raises:
        TransientError: the transfer stopped early (it can be resumed from the return
            value of the failed call, which is carried in the exception's ``written``).
        CorruptError: more bytes than expected, or a range answer from the wrong offset.
        WrongContentError: an HTML page or an HTTP error that retrying will not fix.
    """
    import urllib3

    response = open_response(url, written, policy)
    with response:
        if response.status_code == 416:
            if expected_size is not None and written == expected_size:
                return written
            raise CorruptError(f"range from {written} refused; the file is shorter than before")
        skip = written if response.status_code == 200 else 0
        if response.status_code == 206 and _range_start(response) != written:
            raise CorruptError(f"asked for bytes from {written}, got {response.headers.get('Content-Range')}")
        length = response.headers.get("Content-Length")
        body_length = int(length) if length and length.isdigit() else None
        if body_length is not None and written == 0:
            on_length(body_length)
        received = 0
        try:
            while chunk := response.raw.read(CHUNK_BYTES, decode_content=False):
                if received == 0 and written == 0 and _looks_like_html(
                        chunk[:1024], response.headers.get("Content-Type", ""), dest):
                    raise WrongContentError("the server sent an HTML page instead of the file")
                received += len(chunk)
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                    if not chunk:
                        continue
                sink(chunk)
                written += len(chunk)
                if expected_size is not None and written > expected_size:
                    raise CorruptError(f"more than the expected {expected_size} bytes")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = TransientError(f"transfer broke off after {written} bytes ({type(exc).__name__})")
            error.written = written
            raise error from exc
        if body_length is not None and received < body_length:
            error = TransientError(f"body truncated at {received} of {body_length} bytes")
            error.written = written
            raise error
    return written
