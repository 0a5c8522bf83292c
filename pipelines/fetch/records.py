"""What a fetch keeps while it runs: :class:`JsonDocument` is a small JSON object at a local
path or bucket URL, rewritten whole (atomically) on every save; :class:`FetchManifest` is
the fetch manifest ``DEST/_fetch/manifest.json``, whose records the threads that unpack
archives change while other files finish; :class:`ChecksumRegistry` (``DEST/_fetch/checksums.json``, or
any local or bucket file given with ``--checksums`` so that several mirrors share it; the
installed package is never written to) records, as TensorFlow Datasets does, the size and
sha256 of each file whose checksums are not published from its first verified fetch, and
every later fetch is held to them; :class:`FileOutcome` is one file's result as the manifest
records it, with URLs and errors cleaned of credentials (:func:`storage.redact`);
:class:`Progress` counts files and bytes across the worker threads and prints a line with
bytes, rate and ETA in the units of the build's progress (:mod:`pipelines.engine.progress`),
and the members written by each archive being unpacked.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import sys
import threading
import time
from dataclasses import dataclass, field

from pipelines.runtime.progress_report import format_bytes, format_duration
from pipelines.fetch import storage as cloud


def timestamp() -> str:
    """The current UTC time to the second, ISO 8601 (as the manifest records times)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
        # Re-entrant: a caller may update the data and save under one hold of the lock.
        self.lock = threading.RLock()

    def save(self) -> None:
        with self.lock:
            payload = json.dumps(self.data, indent=1, sort_keys=True).encode("utf-8")
            self.store.write_bytes(self.location, payload)


class FetchManifest(JsonDocument):
    """The fetch manifest: ``data["files"][dest]`` is the record of one file or unpacked
    archive member. Every read and change of the records holds :attr:`lock`."""

    def record(self, dest: str) -> dict:
        """A copy of the record of ``dest`` (empty when there is none)."""
        with self.lock:
            return dict(self.data.get("files", {}).get(dest) or {})

    def put(self, dest: str, record: dict) -> None:
        with self.lock:
            self.data.setdefault("files", {})[dest] = record

    def drop(self, dests) -> None:
        with self.lock:
            records = self.data.get("files", {})
            for dest in dests:
                records.pop(dest, None)

    def members_of(self, archive_dest: str) -> dict[str, dict]:
        """``{dest: record}`` of the members recorded as unpacked from ``archive_dest``."""
        with self.lock:
            return {dest: dict(record) for dest, record in self.data.get("files", {}).items()
                    if record.get("from") == archive_dest}


class ChecksumRegistry(JsonDocument):
    """Sizes and sha256 recorded by the first verified fetch of each unpublished file.

    ``data["files"][dest] = {"bytes", "sha256", "url", "recorded"}``.
    """

    def known(self, dest: str) -> dict:
        return self.data.get("files", {}).get(dest, {})

    def record(self, dest: str, size: int, sha256: str, url: str) -> None:
        self.data.setdefault("format", "multiqa-corpus-checksums/1")
        self.data.setdefault("files", {})[dest] = {
            "bytes": size, "sha256": sha256, "url": cloud.clean_url(url), "recorded": timestamp()}


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
    note: str | None = None  # said on the progress line, not recorded

    def record(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("record_checksum")
        data.pop("note")
        data["url"] = cloud.clean_url(self.url) if self.url else None
        data["error"] = cloud.redact(self.error) if self.error else None
        data["finished"] = timestamp()
        return data


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
        self.unpacking: dict[str, tuple[int, int]] = {}  # archive dest -> (members, bytes) written
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

    def unpacked(self, archive_dest: str, members: int, size: int) -> None:
        """Members and bytes written so far by the unpacking of ``archive_dest``."""
        with self._lock:
            self.unpacking[archive_dest] = (members, size)

    def unpack_done(self, archive_dest: str) -> None:
        with self._lock:
            self.unpacking.pop(archive_dest, None)

    def line(self) -> str:
        with self._lock:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = self.moved / elapsed
            text = (f"fetch: {self.done_files}/{self.files} files, {format_bytes(self.moved)}"
                    + (f" of {format_bytes(self.total_bytes)}" if self.total_bytes else "")
                    + f", {format_bytes(rate)}/s")
            if self.total_bytes and rate > 0 and self.moved < self.total_bytes:
                text += f", ETA {format_duration((self.total_bytes - self.moved) / rate)}"
            for archive_dest, (members, size) in sorted(self.unpacking.items()):
                text += f"; unpacking {archive_dest}: {members} members, {format_bytes(size)}"
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

