"""A ``corpus fetch`` run: :func:`run_fetch` plans the files of the requested sources (listed
by hand, or by a listing expanded now; their Hugging Face ``hub`` entries with ``--origin
hub``), fetches them with a thread pool (``--workers``, default 4: the work is network and
storage I/O, and hashing releases the GIL; a Beam pipeline would add nothing, as its workers
would need egress to every upstream host and a bundle retry would refetch whole files
without resume) under one progress line, and rewrites the fetch manifest
``DEST/_fetch/manifest.json`` and the checksum registry after every file, so that a run
killed at any point leaves them consistent with what is at the destination and a restart
completes it. Per file the manifest records its URL, destination, size, sha256 (and the
published checksums it was checked against), attempts, status (``fetched``, ``skipped``,
``failed``, ``no-url``) and the error of a failure. An archive marked ``unpack`` is
unpacked by the pool once its record is saved as verified (:mod:`pipelines.fetch.unpack`:
one record per member, status ``unpacked``); an archive removed after a complete unpacking
is not fetched again while its members are in place. :func:`run_from_args` is the command
line: exit status 0 when every file is there (and unpacked), 1 when some failed, 2 for a
request that cannot be carried out.
"""
from __future__ import annotations

import functools
import json
import posixpath
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from pipelines.fetch import storage as cloud
from pipelines.fetch import unpack
from pipelines.fetch.records import ChecksumRegistry, FetchManifest, FileOutcome, Progress, timestamp
from pipelines.fetch.remote import RetryPolicy, TransientError, WrongContentError, open_response
from pipelines.fetch.transfer import fetch_hub_entry, fetch_one
from pipelines.fetch.upstream import (FetchError, HubEntry, UpstreamFile, UpstreamSource,
                                      expand_listing, load_registry)

FETCH_DIR = "_fetch"
MANIFEST_NAME = "manifest.json"
CHECKSUMS_NAME = "checksums.json"


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
            response = open_response(url, 0, policy)
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


@dataclass(frozen=True)
class _Unpacking:
    """The pool's job of unpacking a verified archive (after the job that fetched it)."""

    entry: UpstreamFile


def _plan_line(job) -> str:
    """One line of ``--list``: destination, URL or dataset, and what is done after it."""
    line = f"{job.dest}\t{getattr(job, 'url', None) or getattr(job, 'dataset', '')}"
    if getattr(job, "unpack", False):
        line += f"\tunpacked into {posixpath.dirname(job.dest)}/"
    return line


def _write_manifest(manifest: FetchManifest, request: FetchRequest, started: str, status: str) -> None:
    with manifest.lock:
        _update_manifest(manifest, request, started, status)
        manifest.save()


def _update_manifest(manifest: FetchManifest, request: FetchRequest, started: str, status: str) -> None:
    records = manifest.data.setdefault("files", {})
    counts: dict[str, int] = {}
    for record in records.values():
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    manifest.data.update({
        "format": "multiqa-corpus-fetch-manifest/1",
        "status": status,
        "started": started,
        "updated": timestamp(),
        "dest": cloud.clean_url(request.dest) if "://" in request.dest else request.dest,
        "origin": request.origin,
        "sources": list(request.sources),
        "counts": counts,
        "bytes": sum(r.get("bytes") or 0 for r in records.values() if r["status"] in ("fetched", "skipped")),
        "unpack_failed": sorted(d for d, r in records.items() if (r.get("unpack") or {}).get("status") == "failed"),
    })


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
    manifest = FetchManifest(store, cloud.join(dest, FETCH_DIR, MANIFEST_NAME))
    checksums = ChecksumRegistry(store, request.checksums or cloud.join(dest, FETCH_DIR, CHECKSUMS_NAME))
    previous = dict(manifest.data.get("files", {}))
    started = timestamp()

    if request.origin == "hub":
        jobs = [entry for source in sources for entry in source.hub]
    else:
        jobs = plan_files(sources, request)
    if request.list_only:
        for job in jobs:
            print(_plan_line(job), file=out)
        return manifest.data
    total = sum((getattr(j, "bytes", None) or checksums.known(j.dest).get("bytes") or 0) for j in jobs)
    progress = Progress(len(jobs), total, request.progress_seconds, out)

    protected = frozenset(job.dest for job in jobs)
    save = functools.partial(_write_manifest, manifest, request, started, "running")

    def work(job):
        if isinstance(job, _Unpacking):
            return unpack.unpack_archive(job.entry, dest, store, manifest, progress, save, protected)
        if isinstance(job, HubEntry):
            return fetch_hub_entry(job, dest, store, previous.get(job.dest), request.hub_mirror, progress)
        if (job.unpack and store.size(cloud.join(dest, job.dest)) is None
                and unpack.unpacked_in_place(store, dest, job.dest, manifest)):
            # Removed after a complete unpacking: its members are what a build reads.
            kept = manifest.record(job.dest)
            return FileOutcome(source=job.source, dest=job.dest, status="skipped", url=kept.get("url"),
                               bytes=kept.get("bytes"), sha256=kept.get("sha256"),
                               checked=kept.get("checked", []), note="removed after unpacking; members in place")
        return fetch_one(job, dest, store, checksums.known(job.dest), previous.get(job.dest),
                         request.policy, progress)

    def record_outcome(job, outcome: FileOutcome) -> None:
        if outcome.record_checksum:
            checksums.record(job.dest, outcome.bytes, outcome.sha256, outcome.url)
            checksums.save()
        with manifest.lock:
            record = outcome.record()
            summary = manifest.record(job.dest).get("unpack")
            if getattr(job, "unpack", False) and summary:
                record["unpack"] = summary  # the unpacking it had stays known until redone
            manifest.put(job.dest, record)
            _write_manifest(manifest, request, started, "running")
        progress.file_done(skipped_bytes=(outcome.bytes or 0) if outcome.status == "skipped" else 0)
        progress.say(f"fetch: {outcome.status:8} {job.dest}"
                     + (f" ({cloud.redact(outcome.error)})" if outcome.error else "")
                     + (f" ({outcome.note})" if outcome.note else ""))

    unpack_failed = []
    progress.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, request.workers), thread_name_prefix="fetch") as pool:
            running = {pool.submit(work, job): job for job in jobs}
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    if isinstance(job, _Unpacking):
                        try:
                            result = future.result()
                        except Exception as exc:  # unpack_archive records its own failures: a bug
                            result = unpack.UnpackOutcome(
                                {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
                        if result.summary.get("status") != "complete":
                            unpack_failed.append(job.entry.dest)
                        progress.say(result.line(job.entry.dest))
                        continue
                    try:
                        outcome = future.result()
                    except Exception as exc:  # a storage failure of one file must not lose the others
                        outcome = FileOutcome(source=job.source, dest=job.dest, status="failed",
                                              error=f"{type(exc).__name__}: {exc}")
                    record_outcome(job, outcome)
                    if (getattr(job, "unpack", False) and outcome.status in unpack.VERIFIED
                            and outcome.note is None):
                        running[pool.submit(work, _Unpacking(job))] = _Unpacking(job)
    finally:
        progress.stop()
    failed = [r for d, r in manifest.data.get("files", {}).items()
              if d in {j.dest for j in jobs} and r["status"] == "failed"]
    failed += unpack_failed
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
    if manifest.get("unpack_failed"):
        print(f"Not unpacked: {', '.join(manifest['unpack_failed'])}.")
    print(f"Wrote {cloud.join(request.dest, FETCH_DIR, MANIFEST_NAME)}.")
    return 0 if manifest.get("status") == "complete" else 1
