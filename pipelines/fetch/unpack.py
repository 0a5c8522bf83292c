"""Archives that ``upstream.json`` marks ``"unpack": true``: a build reads their members, not
the archive (TriviaQA's evidence join opens evidence files by name, which it cannot do inside
a gzip tarball). Once the fetch has verified such an archive, :func:`unpack_archive` streams
its members one at a time with :func:`pipelines.engine.files.iter_archive_members`, writes
each into the archive's own folder, at the path the archive gives it, through
:class:`~pipelines.fetch.storage.Store` (local, ``gs://``, ``s3://``) while taking its size
and sha256, and then records it in the fetch manifest as a record of its own::

    "<folder>/<member>": {"source", "status": "unpacked", "from": "<archive dest>", "bytes", "sha256"}

(no ``dest``, the key already says it: an archive can hold hundreds of thousands of members).

The archive's record gets an ``unpack`` summary: ``status`` (``running``, ``complete`` or
``failed``), ``archive_sha256`` (the archive the members came from), ``members``,
``bytes``, ``started``, ``finished`` and the ``error`` of a failure. A member whose name
would leave the folder, or whose size or compression ratio passes the engine's
:class:`~pipelines.engine.files.ArchiveLimits`, is refused: nothing is written for it, and
the unpacking ends there (the engine's reader stops at it), reported as failed.

A member is recorded only once its write is committed, and local files are flushed to disk
(once for all of them) before their records are saved, so a record never stands for a
half-written file. The archive is not unpacked again when its members are in place: a
complete summary for the same archive, a record per member, and each file at its recorded
size in one listing of the folder (:func:`unpacked_in_place`; sizes, not checksums: reading
every member again would cost as much as unpacking it). An interrupted unpacking is resumed:
the archive is read again, the members recorded and in place at their size are passed over,
and the others are written.
"""
from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.engine import files
from pipelines.fetch import storage as cloud
from pipelines.fetch.records import FetchManifest, Progress, timestamp
from pipelines.fetch.remote import CHUNK_BYTES
from pipelines.fetch.upstream import UpstreamFile

UNPACKED = "unpacked"
# Fetch outcomes of an archive that verified (the members it gives are the published ones).
VERIFIED = ("fetched", "skipped")
# Seconds between saves while members are written: the manifest, a record per member, is
# rewritten whole, so it cannot be saved after every member of a large archive; a save is
# also at least SAVE_SPACING times as far from the next as it took, to bound their share.
SAVE_SECONDS = 10.0
SAVE_SPACING = 5.0


class UnpackError(Exception):
    """A member that cannot be written where the archive puts it: one line."""


@dataclass
class UnpackOutcome:
    """What unpacking one archive did.

    Attributes:
        summary: the ``unpack`` summary now in the archive's record.
        written: members written by this run (0 when every member was in place).
    """

    summary: dict
    written: int = 0

    def line(self, archive_dest: str) -> str:
        """The progress line that reports it."""
        summary = self.summary
        if summary.get("status") == "failed":
            return f"fetch: failed   {archive_dest} (unpack: {summary.get('error')})"
        folder = posixpath.dirname(archive_dest)
        if not self.written:
            return f"fetch: in place {archive_dest} ({summary.get('members')} members already unpacked)"
        return (f"fetch: unpacked {archive_dest} ({self.written} of {summary.get('members')} members "
                f"written into {folder}/)")


def member_dest(archive_dest: str, name: str) -> str:
    """The destination of archive member ``name``: below the archive's own folder."""
    path = posixpath.normpath(name)
    if path in ("", ".", "..") or path.startswith(("../", "/")):
        raise UnpackError(f"member {name!r} would escape the archive folder")
    return f"{posixpath.dirname(archive_dest)}/{path}"


def _members_in_place(store: cloud.Store, dest_root: str, archive_dest: str,
                      members: dict[str, dict]) -> set[str]:
    """The recorded members whose file is at its destination with the recorded size."""
    sizes = store.sizes_below(cloud.join(dest_root, posixpath.dirname(archive_dest)))
    return {dest for dest, record in members.items()
            if sizes.get(cloud.join(dest_root, dest)) == record.get("bytes")}


def _complete(archive: dict) -> bool:
    summary = archive.get("unpack") or {}
    return (archive.get("status") in VERIFIED and summary.get("status") == "complete"
            and summary.get("archive_sha256") == archive.get("sha256"))


def unpacked_in_place(store: cloud.Store, dest_root: str, archive_dest: str,
                      manifest: FetchManifest) -> bool:
    """Whether the verified archive at ``archive_dest`` was unpacked completely and every
    member it gave is at its destination, at its recorded size (so the archive itself may
    be gone)."""
    archive = manifest.record(archive_dest)
    if not _complete(archive):
        return False
    members = manifest.members_of(archive_dest)
    return (len(members) == archive["unpack"].get("members")
            and len(_members_in_place(store, dest_root, archive_dest, members)) == len(members))


def _write_member(store: cloud.Store, location: str, stream) -> dict:
    """Stream one member to ``location``; its ``bytes`` and ``sha256``. Nothing appears at
    ``location`` unless the whole member was written."""
    # Not flushed to disk one by one: the caller flushes all of them before recording them.
    writer = store.open_write(location, resume=False, durable=False)
    digest, size = hashlib.sha256(), 0
    try:
        while chunk := stream.read(CHUNK_BYTES):
            writer.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        writer.commit()
    except BaseException:
        writer.abort(keep_partial=False)
        raise
    return {"bytes": size, "sha256": digest.hexdigest()}


def _prepare_beam_filesystems() -> None:
    """The engine reads a bucket through Beam's filesystems, whose ``s3://`` client takes its
    settings from pipeline options: the defaults (credentials and endpoint from the
    environment, as the fetch's own)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.runtime import filesystems

    filesystems.prepare(PipelineOptions([]))


def _set_summary(manifest: FetchManifest, archive_dest: str, summary: dict) -> None:
    with manifest.lock:
        record = manifest.record(archive_dest)
        record["unpack"] = summary
        manifest.put(archive_dest, record)


def unpack_archive(entry: UpstreamFile, dest_root: str, store: cloud.Store, manifest: FetchManifest,
                   progress: Progress, save: Callable[[], None], protected: frozenset = frozenset(),
                   limits: files.ArchiveLimits | None = None) -> UnpackOutcome:
    """Unpack the verified archive ``entry`` into its folder, unless its members are in place.

    Args:
        entry: the archive (its record in ``manifest`` is verified).
        dest_root: the destination root (folder or bucket URL).
        store: storage backend.
        manifest: the fetch manifest; member records and the archive's ``unpack`` summary
            are written to it.
        progress: shared progress counter.
        save: saves the manifest (with its counts); called with the manifest's lock held.
        protected: destinations of the files the fetch plans, which no member may replace.
        limits: the archive-bomb caps (the engine's defaults when ``None``).
    Returns:
        The outcome; a failure is in its summary (``status`` ``failed``, ``error``).
    """
    archive = manifest.record(entry.dest)
    sha256 = archive.get("sha256")
    previous = archive.get("unpack") or {}
    members = manifest.members_of(entry.dest)
    if members and previous.get("archive_sha256") != sha256:
        # Members of another version of the archive: none of them can be kept.
        manifest.drop(members)
        members = {}
    in_place = _members_in_place(store, dest_root, entry.dest, members)
    if _complete(archive) and len(in_place) == len(members) == previous.get("members"):
        return UnpackOutcome(previous)

    local = cloud.scheme_of(dest_root) == "file"
    started = timestamp()
    seen: set[str] = set()
    pending: dict[str, dict] = {}
    written, written_bytes = 0, 0
    next_save = time.monotonic() + SAVE_SECONDS

    def flush_and_save(summary: dict | None = None) -> None:
        if local:
            store.flush_local()
        with manifest.lock:
            for dest, record in pending.items():
                manifest.put(dest, record)
            if summary is not None:
                _set_summary(manifest, entry.dest, summary)
            save()
        pending.clear()

    flush_and_save({"status": "running", "archive_sha256": sha256, "started": started})

    def wanted(name: str) -> bool:
        dest = member_dest(entry.dest, name)
        seen.add(dest)
        return dest not in in_place

    location = cloud.join(dest_root, entry.dest)
    if not local:
        _prepare_beam_filesystems()
    error = None
    try:
        for name, stream in files.iter_archive_members(location, wanted, limits or files.ArchiveLimits()):
            dest = member_dest(entry.dest, name)
            other = manifest.record(dest)
            if dest in protected or (other and other.get("from") != entry.dest):
                raise UnpackError(f"member {name!r} would replace {dest}, a fetched file")
            record = _write_member(store, cloud.join(dest_root, dest), stream)
            pending[dest] = {"source": entry.source, "status": UNPACKED, "from": entry.dest, **record}
            written, written_bytes = written + 1, written_bytes + record["bytes"]
            progress.unpacked(entry.dest, written, written_bytes)
            if time.monotonic() >= next_save:
                began = time.monotonic()
                flush_and_save()
                took = time.monotonic() - began
                next_save = time.monotonic() + max(SAVE_SECONDS, SAVE_SPACING * took)
    except (files.BadInputFile, UnpackError) as exc:
        # The engine names the archive first; the line that reports this names it already.
        error = str(exc).removeprefix(f"{location}: ").replace(location, entry.dest)
    except Exception as exc:  # a storage failure: what was written stays recorded, the rest waits
        error = f"{type(exc).__name__}: {exc}"
    finally:
        progress.unpack_done(entry.dest)
    if error is None:
        stale = set(manifest.members_of(entry.dest)) - seen
        manifest.drop(stale)
        members = {**manifest.members_of(entry.dest), **pending}
        summary = {"status": "complete", "archive_sha256": sha256, "members": len(seen),
                   "bytes": sum(record["bytes"] for record in members.values()),
                   "started": started, "finished": timestamp()}
    else:
        summary = {"status": "failed", "archive_sha256": sha256, "error": cloud.redact(error),
                   "started": started, "finished": timestamp()}
    flush_and_save(summary)
    return UnpackOutcome(summary, written)
