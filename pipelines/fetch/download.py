"""``corpus fetch``: mirror the upstream files of the corpus into a folder or bucket.

    corpus fetch --sources squad,quora --to gs://bucket/raw
    corpus build --input-root gs://bucket/raw --output gs://bucket/corpus

The upstream registry is one ``upstream.json`` per source
(``pipelines/sources/<source>/upstream.json``): the published files with their URL, their
destination path below the input root (the layout ``corpus build --input-root`` reads),
size and checksums where published, licence and citation. A source with too many files
to list by hand names a *listing* instead (``archive.org`` item metadata, which also
publishes md5 and sha1 per file, or an ``http-index`` directory page); sources published
as Hugging Face datasets may name ``hub`` entries, read through the ``datasets`` library
with ``--origin hub``.

How a file is fetched (:func:`fetch_one`):

* Streaming: the HTTP body is read in 1 MiB chunks and each chunk is hashed and written
  straight to the destination (a bucket upload of bounded part size, or a local
  ``.<name>.partial`` file): no file is held in memory or staged on local disk.
* Retries with exponential backoff (capped, with jitter) on connection errors, timeouts,
  dropped or truncated bodies and HTTP 408/425/429/5xx. A retry asks for the rest of the
  file (``Range: bytes=N-``) and keeps the same upload and hash going; a server that
  ignores the range is read from the start and the first N bytes are skipped.
* Verification: the size and every published checksum (sha256, md5, sha1) are checked
  before the upload is committed; a mismatch restarts the file, and a file that never
  verifies is aborted, so nothing unverified ever appears under its final name. An HTML
  page served in place of a file (Google Drive's quota and virus-scan pages) is refused
  from its first bytes.
* Checksums not published are registered (as TensorFlow Datasets does): the first fetch
  that verifies (size when published, not an HTML page, complete transfer) records the
  file's size and sha256 in the checksum registry, and every later fetch is held to them.
  The registry is a JSON file, ``DEST/_fetch/checksums.json`` by default or any file
  given with ``--checksums`` (local or bucket), so that several mirrors share it; the
  installed package itself is never written to.
* Resume: a file already at its destination is skipped when the fetch manifest records
  it with the same size and checksum (or, without a record, when it re-hashes to the
  published or registered checksum). A local partial file left by an interrupted run
  is resumed with a range request; an interrupted bucket upload was never committed, so
  that file starts again.
* Parallel across files with a thread pool (``--workers``, default 4). The work is network
  and storage I/O (hashing releases the GIL), one process gives one progress line with
  bytes, rate and ETA, one writer of the manifest and checksum registry, and a fetch that
  a kill stops at any point and a restart completes. A Beam pipeline would add nothing
  here: its workers would need egress to every upstream host, and a bundle retry would
  refetch whole files without resume.

The fetch manifest ``DEST/_fetch/manifest.json`` is rewritten after every file: per file
its URL, destination, size, sha256 (and the published checksums it was checked against),
attempts, status (``fetched``, ``skipped``, ``failed``, ``no-url``) and the error of a
failure. Credentials never appear in it or in any message (:func:`cloud.redact`).
"""
from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import gzip
import hashlib
import html.parser
import json
import random
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from pipelines.fetch import storage as cloud

CHUNK_BYTES = 1 << 20
FETCH_DIR = "_fetch"
MANIFEST_NAME = "manifest.json"
CHECKSUMS_NAME = "checksums.json"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_HASHES = ("sha256", "md5", "sha1")


class FetchError(Exception):
    """A request that cannot be carried out (unknown source, bad registry): one line."""


class TransientError(Exception):
    """A failure worth retrying from where the transfer stopped."""


class CorruptError(Exception):
    """The bytes received are not the published file: start the file again."""


class WrongContentError(Exception):
    """The URL serves something else (an HTML page, a missing file): try the next mirror."""


# -- the upstream registry ----------------------------------------------------------------
@dataclass
class UpstreamFile:
    """One published file.

    Attributes:
        source: the source module name.
        dest: destination below the input root, ``<folder>/<path>``.
        url: where it is published (``None`` when no stable public URL is known).
        mirrors: further URLs tried in order when one does not serve the file.
        bytes: published size, or ``None``.
        sha256, md5, sha1: published checksums (hex), or ``None``.
        optional: fetched only with ``--include-optional`` (not read by default builds).
        note: anything a user should know about this file.
    """

    source: str
    dest: str
    url: str | None
    mirrors: tuple[str, ...] = ()
    bytes: int | None = None
    sha256: str | None = None
    md5: str | None = None
    sha1: str | None = None
    optional: bool = False
    note: str = ""


@dataclass
class HubEntry:
    """A split of a Hugging Face dataset written out as gzip JSON lines.

    Attributes:
        source: the source module name.
        dataset: Hub dataset id (or its folder under ``--hub-mirror``).
        config: the dataset's configuration name, or ``None``.
        split: the split to read.
        dest: destination below the input root.
    """

    source: str
    dataset: str
    config: str | None
    split: str
    dest: str


@dataclass
class UpstreamSource:
    """A source's ``upstream.json``.

    Attributes:
        name: source module name; folder: its folder under the input root.
        licence, citation, homepage: as published.
        files: the files listed by hand.
        listing: how to list the files of a source with many (``kind``, URLs, patterns).
        hub: Hugging Face dataset entries for ``--origin hub``.
    """

    name: str
    folder: str
    licence: str
    citation: str
    homepage: str
    files: list[UpstreamFile] = field(default_factory=list)
    listing: dict | None = None
    hub: list[HubEntry] = field(default_factory=list)


def default_registry_dir() -> Path:
    """The folder holding ``<source>/upstream.json`` of the installed package."""
    return Path(str(resources.files("pipelines.sources")))


def _parse_source(name: str, doc: dict) -> UpstreamSource:
    folder = doc["folder"]
    files = []
    for item in doc.get("files", []):
        dest = item["dest"]
        if not dest.startswith(folder + "/") or ".." in dest.split("/"):
            raise FetchError(f"{name}/upstream.json: dest {dest!r} must lie below {folder}/")
        files.append(UpstreamFile(
            source=name, dest=dest, url=item.get("url"), mirrors=tuple(item.get("mirrors", ())),
            bytes=item.get("bytes"), sha256=item.get("sha256"), md5=item.get("md5"),
            sha1=item.get("sha1"), optional=bool(item.get("optional", False)),
            note=item.get("note", "")))
    hub = [HubEntry(source=name, dataset=h["dataset"], config=h.get("config"), split=h["split"],
                    dest=h["dest"]) for h in doc.get("hub", [])]
    return UpstreamSource(name=name, folder=folder, licence=doc["licence"],
                          citation=doc["citation"], homepage=doc.get("homepage", ""),
                          files=files, listing=doc.get("listing"), hub=hub)


def load_registry(registry_dir: str | Path | None = None) -> dict[str, UpstreamSource]:
    """Every ``<source>/upstream.json`` below ``registry_dir`` (default: the package's).

    Args:
        registry_dir: a folder with one sub-folder per source, e.g. a copy of the package's
            registry with URLs pointing at an internal mirror.
    Raises:
        FetchError: an ``upstream.json`` that is not valid.
    """
    root = Path(registry_dir) if registry_dir else default_registry_dir()
    sources = {}
    for path in sorted(root.glob("*/upstream.json")):
        name = path.parent.name
        try:
            sources[name] = _parse_source(name, json.loads(path.read_text("utf-8")))
        except (KeyError, TypeError, ValueError) as exc:
            raise FetchError(f"{path}: not a valid upstream registry entry ({exc})") from None
    return sources


# -- listings -----------------------------------------------------------------------------
class _Links(html.parser.HTMLParser):
    """Collects the ``href`` of every ``<a>`` of a directory index page."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def _wanted(name: str, listing: dict) -> bool:
    include = listing.get("include", ["*"])
    exclude = listing.get("exclude", [])
    return (any(fnmatch.fnmatch(name, p) for p in include)
            and not any(fnmatch.fnmatch(name, p) for p in exclude))


def _list_archive_org(source: UpstreamSource, listing: dict, get_json) -> list[UpstreamFile]:
    """Files of an archive.org item from its metadata (names, sizes, md5, sha1)."""
    metadata = get_json(listing["metadata_url"])
    files = []
    for item in metadata.get("files", []):
        name = item.get("name", "")
        if "/" in name or not _wanted(name, listing):
            continue
        files.append(UpstreamFile(
            source=source.name, dest=f"{source.folder}/{name}",
            url=listing["download_url"].format(name=urllib.parse.quote(name)),
            bytes=int(item["size"]) if item.get("size") else None,
            md5=item.get("md5"), sha1=item.get("sha1")))
    return files


def _list_http_index(source: UpstreamSource, listing: dict, get_text) -> list[UpstreamFile]:
    """Files linked from a directory index page (Apache/nginx style)."""
    page_url = listing["index_url"]
    links = _Links()
    links.feed(get_text(page_url))
    files, seen = [], set()
    for href in links.hrefs:
        url = urllib.parse.urljoin(page_url, href)
        name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        if not name or name in seen or not url.startswith(page_url) or not _wanted(name, listing):
            continue
        seen.add(name)
        files.append(UpstreamFile(source=source.name, dest=f"{source.folder}/{name}", url=url))
    return files


def expand_listing(source: UpstreamSource, get_json, get_text) -> list[UpstreamFile]:
    """The files a source's ``listing`` names today.

    Args:
        source: the source.
        get_json, get_text: fetch a URL as parsed JSON / as text (with retries).
    """
    listing = source.listing
    if not listing:
        return []
    if listing["kind"] == "archive.org":
        return _list_archive_org(source, listing, get_json)
    if listing["kind"] == "http-index":
        return _list_http_index(source, listing, get_text)
    raise FetchError(f"{source.name}: unknown listing kind {listing['kind']!r}")


# -- small JSON documents kept at the destination ------------------------------------------
class JsonDocument:
    """A JSON object stored at a location, rewritten whole (atomically) on every save.

    Args:
        store: the storage backend.
        location: where it lives (local path or bucket URL).
    """

    def __init__(self, store: cloud.Store, location: str):
        self.store = store
        self.location = location
        raw = store.read_bytes(location)
        self.data: dict = json.loads(raw.decode("utf-8")) if raw else {}
        self._lock = threading.Lock()

    def save(self) -> None:
        with self._lock:
            payload = json.dumps(self.data, indent=1, sort_keys=True).encode("utf-8")
            self.store.write_bytes(self.location, payload)


class ChecksumRegistry(JsonDocument):
    """Sizes and sha256 recorded by the first verified fetch of each unpublished file.

    ``data["files"][dest] = {"bytes", "sha256", "url", "recorded"}``.
    """

    def known(self, dest: str) -> dict:
        return self.data.get("files", {}).get(dest, {})

    def record(self, dest: str, size: int, sha256: str, url: str) -> None:
        self.data.setdefault("format", "multiqa-corpus-checksums/1")
        self.data.setdefault("files", {})[dest] = {
            "bytes": size, "sha256": sha256, "url": cloud.clean_url(url), "recorded": _now()}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -- progress -----------------------------------------------------------------------------
def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _human_seconds(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """Bytes moved, files done, rate and ETA; a background thread prints a line every
    ``interval`` seconds.

    Args:
        files: number of files in the run.
        total_bytes: bytes expected (known sizes only; grows as sizes become known).
        interval: seconds between progress lines (0: no periodic lines).
        out: where lines go (standard error by default).
    """

    def __init__(self, files: int, total_bytes: int, interval: float, out=None):
        self.files, self.total_bytes, self.interval = files, total_bytes, interval
        self.done_files = 0
        self.moved = 0
        self.started = time.monotonic()
        self.out = out or sys.stderr
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fetch-progress", daemon=True)

    def add(self, n: int) -> None:
        with self._lock:
            self.moved += n

    def grow_total(self, n: int) -> None:
        with self._lock:
            self.total_bytes += n

    def file_done(self, skipped_bytes: int = 0) -> None:
        with self._lock:
            self.done_files += 1
            self.total_bytes -= skipped_bytes

    def line(self) -> str:
        with self._lock:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = self.moved / elapsed
            text = (f"fetch: {self.done_files}/{self.files} files, {_human_bytes(self.moved)}"
                    + (f" of {_human_bytes(self.total_bytes)}" if self.total_bytes else "")
                    + f", {_human_bytes(rate)}/s")
            if self.total_bytes and rate > 0 and self.moved < self.total_bytes:
                text += f", ETA {_human_seconds((self.total_bytes - self.moved) / rate)}"
            return text

    def say(self, message: str) -> None:
        print(cloud.redact(message), file=self.out, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.say(self.line())

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


# -- one file -----------------------------------------------------------------------------
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


class Digests:
    """sha256 always, plus every other algorithm a published checksum uses.

    Args:
        extra: names of further ``hashlib`` algorithms to compute (``md5``, ``sha1``).
    """

    def __init__(self, extra=()):
        self._hashes = {"sha256": hashlib.sha256()}
        for name in extra:
            self._hashes[name] = hashlib.new(name)

    def update(self, data: bytes) -> None:
        for digest in self._hashes.values():
            digest.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: digest.hexdigest() for name, digest in self._hashes.items()}


def looks_like_html(head: bytes, content_type: str, dest: str) -> bool:
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


@dataclass
class Expected:
    """What a file must be: size and checksums (published or registered)."""

    bytes: int | None
    hashes: dict[str, str]

    @classmethod
    def of(cls, entry: UpstreamFile, registered: dict) -> "Expected":
        hashes = {name: getattr(entry, name).lower() for name in _HASHES if getattr(entry, name)}
        if "sha256" not in hashes and registered.get("sha256"):
            hashes["sha256"] = registered["sha256"]
        size = entry.bytes if entry.bytes is not None else registered.get("bytes")
        return cls(size, hashes)

    def problem(self, size: int, digests: dict[str, str]) -> str | None:
        """Why ``size``/``digests`` are not this file, or ``None`` when they match."""
        if self.bytes is not None and size != self.bytes:
            return f"size {size} bytes, expected {self.bytes}"
        for name, want in self.hashes.items():
            if digests.get(name) != want:
                return f"{name} {digests.get(name)}, expected {want}"
        return None


@dataclass
class FileOutcome:
    """The result of one file, as recorded in the fetch manifest."""

    source: str
    dest: str
    status: str
    url: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    checked: list[str] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None
    record_checksum: bool = False

    def record(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("record_checksum")
        data["url"] = cloud.clean_url(self.url) if self.url else None
        data["error"] = cloud.redact(self.error) if self.error else None
        data["finished"] = _now()
        return data


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


def _open_response(url: str, offset: int, policy: RetryPolicy):
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


def _transfer(url: str, dest: str, written: int, sink: Callable[[bytes], None],
              expected_size: int | None, policy: RetryPolicy, on_length: Callable[[int], None]) -> int:
    """Stream ``url`` from byte ``written`` on into ``sink``; return the bytes written in all.

    Raises:
        TransientError: the transfer stopped early (it can be resumed from the return
            value of the failed call, which is carried in the exception's ``written``).
        CorruptError: more bytes than expected, or a range answer from the wrong offset.
        WrongContentError: an HTML page or an HTTP error that retrying will not fix.
    """
    import urllib3

    response = _open_response(url, written, policy)
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
                if received == 0 and written == 0 and looks_like_html(
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


class _FileTransfer:
    """The state of one file across attempts: writer, hashes, bytes written.

    Args:
        store: storage backend; location: the final destination; expected: what the file
            must be; progress: shared progress counter.
    """

    def __init__(self, store: cloud.Store, location: str, expected: Expected, progress: Progress):
        self.store, self.location, self.expected, self.progress = store, location, expected, progress
        self.extra = [name for name in expected.hashes if name != "sha256"]
        self._size_counted = False
        self._open(resume=True)

    def _open(self, resume: bool) -> None:
        self.writer = self.store.open_write(self.location, resume=resume)
        self.digests = Digests(self.extra)
        self.written = 0
        for chunk in self.writer.written_so_far():
            self.digests.update(chunk)
            self.written += len(chunk)
        if self.expected.bytes is not None and self.written > self.expected.bytes:
            self.restart()

    def learn_size(self, size: int) -> None:
        """Count a size announced by the server in the progress total, once per file."""
        if self.expected.bytes is None and not self._size_counted:
            self._size_counted = True
            self.progress.grow_total(size)

    def sink(self, chunk: bytes) -> None:
        self.writer.write(chunk)
        self.digests.update(chunk)
        self.progress.add(len(chunk))

    def restart(self) -> None:
        self.writer.abort(keep_partial=False)
        self.progress.add(-self.written)
        self._open(resume=False)


def _attempt_url(url: str, entry: UpstreamFile, transfer: _FileTransfer, policy: RetryPolicy,
                 outcome: FileOutcome) -> None:
    """Fetch ``url`` into ``transfer`` until it verifies or the attempts run out."""
    last_error = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        outcome.attempts += 1
        retry_after = None
        try:
            transfer.written = _transfer(
                url, entry.dest, transfer.written, transfer.sink, transfer.expected.bytes,
                policy, transfer.learn_size)
            digests = transfer.digests.hexdigests()
            problem = transfer.expected.problem(transfer.written, digests)
            if problem:
                raise CorruptError(problem)
            transfer.writer.commit()
            outcome.status, outcome.url = "fetched", url
            outcome.bytes, outcome.sha256 = transfer.written, digests["sha256"]
            outcome.checked = sorted(transfer.expected.hashes) + (
                ["bytes"] if transfer.expected.bytes is not None else [])
            outcome.error = None
            return
        except TransientError as exc:
            last_error = str(exc)
            transfer.written = getattr(exc, "written", transfer.written)
            retry_after = getattr(exc, "retry_after", None)
        except CorruptError as exc:
            last_error = f"verification failed: {exc}"
            transfer.restart()
        if attempt < policy.attempts:
            transfer.progress.say(f"fetch: {entry.dest}: {cloud.redact(last_error)}; "
                                  f"retry {attempt}/{policy.attempts - 1}")
            time.sleep(policy.delay(attempt, retry_after))
    raise TransientError(f"gave up after {policy.attempts} attempts: {last_error}")


def _already_there(store: cloud.Store, location: str, expected: Expected,
                   previous: dict | None) -> dict | None:
    """The record of a verified copy already at ``location``, or ``None`` to fetch it.

    Args:
        store: storage backend; location: the file's destination.
        expected: what the file must be.
        previous: the file's record in the existing fetch manifest, if any.
    """
    size = store.size(location)
    if size is None:
        return None
    recorded_ok = (previous is not None and previous.get("status") in ("fetched", "skipped")
                   and previous.get("bytes") == size and expected.bytes in (None, size)
                   and expected.hashes.get("sha256") in (None, previous.get("sha256")))
    if recorded_ok:
        return previous
    if not expected.hashes:
        return None  # nothing to check a copy of unknown origin against: fetch it again
    digests = Digests([n for n in expected.hashes if n != "sha256"])
    with store.open_read(location) as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digests.update(chunk)
    hexdigests = digests.hexdigests()
    if expected.problem(size, hexdigests) is None:
        return {"bytes": size, "sha256": hexdigests["sha256"], "checked": sorted(expected.hashes)}
    store.delete(location)
    return None


def fetch_one(entry: UpstreamFile, dest_root: str, store: cloud.Store, registered: dict,
              previous: dict | None, policy: RetryPolicy, progress: Progress) -> FileOutcome:
    """Fetch one file into ``dest_root/entry.dest``, verified, or skip it when it is there.

    Args:
        entry: the file.
        dest_root: the destination root (folder or bucket URL).
        store: storage backend.
        registered: the checksum registry's record of this file (may be empty).
        previous: this file's record in the existing fetch manifest, if any.
        policy: retries and timeouts.
        progress: shared progress counter.
    Returns:
        The outcome; ``record_checksum`` is set when the registry should learn this file.
    """
    outcome = FileOutcome(source=entry.source, dest=entry.dest, status="failed", url=entry.url)
    if not entry.url:
        outcome.status, outcome.error = "no-url", entry.note or "no public URL recorded"
        return outcome
    location = cloud.join(dest_root, entry.dest)
    expected = Expected.of(entry, registered)
    there = _already_there(store, location, expected, previous)
    if there is not None:
        outcome.status, outcome.bytes, outcome.sha256 = "skipped", there["bytes"], there["sha256"]
        outcome.checked = there.get("checked", [])
        outcome.record_checksum = "sha256" not in expected.hashes and bool(outcome.sha256)
        return outcome
    transfer = _FileTransfer(store, location, expected, progress)
    progress.add(transfer.written)
    errors = []
    for url in (entry.url, *entry.mirrors):
        try:
            _attempt_url(url, entry, transfer, policy, outcome)
            outcome.record_checksum = "sha256" not in expected.hashes
            return outcome
        except WrongContentError as exc:
            errors.append(f"{cloud.clean_url(url)}: {exc}")
            transfer.restart()
        except TransientError as exc:
            errors.append(f"{cloud.clean_url(url)}: {exc}")
            break
    transfer.writer.abort(keep_partial=transfer.written > 0)
    outcome.error = "; ".join(errors)
    return outcome


# -- Hugging Face datasets as origin ------------------------------------------------------
class _CountingSink:
    """A write-only file object that hashes and forwards what it is given."""

    def __init__(self, writer: cloud.ObjectWriter, digests: Digests, progress: Progress):
        self.writer, self.digests, self.progress, self.bytes = writer, digests, progress, 0

    def write(self, data) -> int:
        data = bytes(data)
        self.writer.write(data)
        self.digests.update(data)
        self.progress.add(len(data))
        self.bytes += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def fetch_hub_entry(entry: HubEntry, dest_root: str, store: cloud.Store, previous: dict | None,
                    hub_mirror: str | None, progress: Progress) -> FileOutcome:
    """Write one split of a Hub dataset as gzip JSON lines, streaming record by record.

    Args:
        entry: the dataset split and destination.
        dest_root: the destination root.
        store: storage backend.
        previous: this file's record in the existing fetch manifest, if any.
        hub_mirror: a folder holding a copy of the Hub repository as
            ``<hub_mirror>/<dataset id>``; without it the dataset id is given to
            ``datasets.load_dataset``, which reads its local cache (``HF_HOME``) and, unless
            ``HF_DATASETS_OFFLINE=1``, the Hub.
        progress: shared progress counter.
    """
    location = cloud.join(dest_root, entry.dest)
    origin = cloud.join(hub_mirror, entry.dataset) if hub_mirror else entry.dataset
    outcome = FileOutcome(source=entry.source, dest=entry.dest, status="failed",
                          url=f"hf://{entry.dataset}")
    size = store.size(location)
    if (size is not None and previous and previous.get("bytes") == size
            and previous.get("status") in ("fetched", "skipped")):
        outcome.status, outcome.bytes, outcome.sha256 = "skipped", size, previous.get("sha256")
        return outcome
    import datasets

    writer = store.open_write(location, resume=False)
    digests = Digests()
    sink = _CountingSink(writer, digests, progress)
    try:
        records = datasets.load_dataset(origin, entry.config, split=entry.split, streaming=True)
        with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) as stream:
            for record in records:
                stream.write(json.dumps(record, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
        writer.commit()
    except Exception as exc:  # any reader failure: nothing is committed
        writer.abort(keep_partial=False)
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    outcome.status, outcome.bytes, outcome.attempts = "fetched", sink.bytes, 1
    outcome.sha256 = digests.hexdigests()["sha256"]
    return outcome


# -- the run ------------------------------------------------------------------------------
@dataclass
class FetchRequest:
    """What to fetch.

    Attributes:
        sources: source names to fetch (empty: every source in the registry).
        dest: destination root (folder, gs:// or s3:// URL): the future ``--input-root``.
        registry_dir: folder of ``<source>/upstream.json`` files (default: the package's).
        checksums: checksum registry location (default ``DEST/_fetch/checksums.json``).
        workers: files fetched at the same time.
        include_optional: also fetch files marked optional.
        origin: ``files`` (the published files) or ``hub`` (Hugging Face datasets).
        hub_mirror: folder holding copies of Hub dataset repositories (``--origin hub``).
        policy: retries and timeouts.
        progress_seconds: seconds between progress lines (0: none).
        list_only: print the plan and fetch nothing.
    """

    sources: tuple[str, ...]
    dest: str
    registry_dir: str | None = None
    checksums: str | None = None
    workers: int = 4
    include_optional: bool = False
    origin: str = "files"
    hub_mirror: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    progress_seconds: float = 5.0
    list_only: bool = False


def _get_with_retries(url: str, policy: RetryPolicy) -> bytes:
    """A small document (a listing), with the same retry rules as the files."""
    for attempt in range(1, policy.attempts + 1):
        try:
            response = _open_response(url, 0, policy)
            with response:
                return response.content
        except TransientError as exc:
            if attempt == policy.attempts:
                raise FetchError(f"cannot list {cloud.clean_url(url)}: {exc}") from None
            time.sleep(policy.delay(attempt, getattr(exc, "retry_after", None)))
        except WrongContentError as exc:
            raise FetchError(f"cannot list {cloud.clean_url(url)}: {exc}") from None
    raise FetchError(f"cannot list {cloud.clean_url(url)}")


def select_sources(request: FetchRequest) -> list[UpstreamSource]:
    """The registry entries of the requested sources; raises FetchError for unknown names."""
    registry = load_registry(request.registry_dir)
    names = list(request.sources) or sorted(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise FetchError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(sorted(registry))}")
    return [registry[n] for n in names]


def plan_files(sources: list[UpstreamSource], request: FetchRequest) -> list[UpstreamFile]:
    """Every file to fetch: listed by hand and listed by each source's listing."""
    policy = request.policy
    get_json = lambda url: json.loads(_get_with_retries(url, policy).decode("utf-8"))
    get_text = lambda url: _get_with_retries(url, policy).decode("utf-8", errors="replace")
    planned = []
    for source in sources:
        files = source.files + expand_listing(source, get_json, get_text)
        planned.extend(f for f in files if request.include_optional or not f.optional)
    return planned


def _write_manifest(manifest: JsonDocument, request: FetchRequest, started: str, status: str) -> None:
    records = manifest.data.setdefault("files", {})
    counts: dict[str, int] = {}
    for record in records.values():
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    manifest.data.update({
        "format": "multiqa-corpus-fetch-manifest/1",
        "status": status,
        "started": started,
        "updated": _now(),
        "dest": cloud.clean_url(request.dest) if "://" in request.dest else request.dest,
        "origin": request.origin,
        "sources": list(request.sources),
        "counts": counts,
        "bytes": sum(r.get("bytes") or 0 for r in records.values() if r["status"] in ("fetched", "skipped")),
    })
    manifest.save()


def run_fetch(request: FetchRequest, out=None) -> dict:
    """Fetch every planned file into ``request.dest``; return the fetch manifest.

    The manifest and the checksum registry are rewritten after every file, so a run that
    is killed at any point leaves them consistent with what is at the destination.

    Args:
        request: what to fetch.
        out: where progress and the summary go (standard error by default).
    """
    out = out or sys.stderr
    store = cloud.Store()
    sources = select_sources(request)
    dest = request.dest.rstrip("/")
    manifest = JsonDocument(store, cloud.join(dest, FETCH_DIR, MANIFEST_NAME))
    checksums = ChecksumRegistry(store, request.checksums or cloud.join(dest, FETCH_DIR, CHECKSUMS_NAME))
    previous = dict(manifest.data.get("files", {}))
    started = _now()

    if request.origin == "hub":
        jobs = [entry for source in sources for entry in source.hub]
    else:
        jobs = plan_files(sources, request)
    if request.list_only:
        for job in jobs:
            print(f"{job.dest}\t{getattr(job, 'url', None) or getattr(job, 'dataset', '')}", file=out)
        return manifest.data
    total = sum((getattr(j, "bytes", None) or checksums.known(j.dest).get("bytes") or 0) for j in jobs)
    progress = Progress(len(jobs), total, request.progress_seconds, out)

    def work(job):
        if isinstance(job, HubEntry):
            return fetch_hub_entry(job, dest, store, previous.get(job.dest), request.hub_mirror, progress)
        return fetch_one(job, dest, store, checksums.known(job.dest), previous.get(job.dest),
                         request.policy, progress)

    progress.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, request.workers), thread_name_prefix="fetch") as pool:
            futures = {pool.submit(work, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # a storage failure of one file must not lose the others
                    outcome = FileOutcome(source=job.source, dest=job.dest, status="failed",
                                          error=f"{type(exc).__name__}: {exc}")
                if outcome.record_checksum:
                    checksums.record(job.dest, outcome.bytes, outcome.sha256, outcome.url)
                    checksums.save()
                manifest.data.setdefault("files", {})[job.dest] = outcome.record()
                _write_manifest(manifest, request, started, "running")
                progress.file_done(skipped_bytes=(outcome.bytes or 0) if outcome.status == "skipped" else 0)
                progress.say(f"fetch: {outcome.status:8} {job.dest}"
                             + (f" ({cloud.redact(outcome.error)})" if outcome.error else ""))
    finally:
        progress.stop()
    failed = [r for d, r in manifest.data.get("files", {}).items()
              if d in {j.dest for j in jobs} and r["status"] == "failed"]
    _write_manifest(manifest, request, started, "complete" if not failed else "incomplete")
    progress.say(progress.line())
    return manifest.data


def run_from_args(args) -> int:
    """Run ``corpus fetch`` from parsed command-line arguments; return the exit status."""
    request = FetchRequest(
        sources=tuple(s.strip() for s in args.sources.split(",") if s.strip() and s.strip() != "all"),
        dest=args.to, registry_dir=args.registry, checksums=args.checksums,
        workers=args.workers, include_optional=args.include_optional, origin=args.origin,
        hub_mirror=args.hub_mirror,
        policy=RetryPolicy(attempts=args.attempts, base_delay=args.retry_delay,
                           read_timeout=args.timeout, connect_timeout=min(args.timeout, 20.0)),
        progress_seconds=args.progress_seconds, list_only=args.list)
    try:
        manifest = run_fetch(request)
    except FetchError as exc:
        print(f"corpus fetch: {cloud.redact(exc)}", file=sys.stderr)
        return 2
    if request.list_only:
        return 0
    counts = manifest.get("counts", {})
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    print(f"Wrote {cloud.join(request.dest, FETCH_DIR, MANIFEST_NAME)}.")
    return 0 if manifest.get("status") == "complete" else 1
