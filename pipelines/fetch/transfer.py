"""One file into its destination, verified: :func:`fetch_one` for a published file,
:func:`fetch_hub_entry` for a split of a Hugging Face dataset (written as gzip JSON lines).
The body is streamed in 1 MiB chunks, each hashed (sha256 always, plus every published
algorithm: :class:`Digests`) and written straight to the destination (a bucket upload of
bounded part size, or a local ``.<name>.partial`` file), so no file is held in memory or
staged on local disk; a retry resumes the same upload and hashes with a range request, and a
mirror is tried when a URL serves something else. The size and every checksum, published or
registered (:class:`Expected`), are checked before the upload is committed: a mismatch
restarts the file and a file that never verifies is aborted, so nothing unverified ever
appears under its final name. A file already at its destination is skipped when the fetch
manifest records it with the same size and checksum (or, without a record, when it re-hashes
to the expected checksum); a local partial file left by an interrupted run is resumed, while
an interrupted bucket upload was never committed and starts again.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import dataclass

from pipelines.fetch import storage as cloud
from pipelines.fetch.records import FileOutcome, Progress
from pipelines.fetch.remote import (CHUNK_BYTES, CorruptError, RetryPolicy, TransientError,
                                    WrongContentError, stream_body)
from pipelines.fetch.upstream import HubEntry, UpstreamFile

_HASHES = ("sha256", "md5", "sha1")


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
            transfer.written = stream_body(
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
