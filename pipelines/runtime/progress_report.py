"""The progress report of a local build: one line every few seconds, from the counts the
reading processes leave in the spool folder (see :mod:`pipelines.engine.progress`), and a
summary when the run ends. Remote runners have their own progress pages; the reporter
stays off for them.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from pipelines.engine.progress import new_counts


@dataclass(frozen=True)
class InputFile:
    """One input file of a run.

    Attributes:
        path: the file as the readers open it.
        source: the source that reads it.
        size: its size in bytes.
    """

    path: str
    source: str
    size: int


@dataclass
class Totals:
    """Summed progress of every reading process.

    Attributes:
        records: records read.
        bytes_read: input bytes read (whole files once ended, the position inside open ones).
        per_source: per source, ``{"records", "bytes", "files_done", "files_reading"}``.
    """

    records: int
    bytes_read: int
    per_source: dict


class Spool:
    """The counts in a spool folder, read as the processes append them: each journal
    (``<process>.jsonl``, one JSON line per write, a file's latest counts overriding its
    earlier ones) is read on from where the last look stopped, so a look costs what was
    written since.

    Args:
        folder: the spool folder.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._read_to: dict[str, int] = {}
        self._counts: dict[str, dict[str, dict]] = {}  # journal -> path -> counts

    def merged(self) -> dict[str, dict]:
        """Per file path, its counts summed over every process."""
        for name in sorted(os.listdir(self.folder)) if os.path.isdir(self.folder) else []:
            if name.endswith(".jsonl"):
                self._read_on(name)
        merged: dict[str, dict] = {}
        for snapshot in self._counts.values():
            for path, counts in snapshot.items():
                into = merged.setdefault(path, new_counts())
                into["records"] += counts["records"]
                into["position"] = max(into["position"], counts["position"])
                into["done"] = into["done"] or counts["done"]
                for start, (read, done, length) in counts.get("ranges", {}).items():
                    seen = into.setdefault("ranges", {}).get(start, [0, False, length])
                    into["ranges"][start] = [max(seen[0], read), seen[1] or done, length]
        return merged

    def _read_on(self, name: str) -> None:
        try:
            with open(os.path.join(self.folder, name), "rb") as stream:
                stream.seek(self._read_to.get(name, 0))
                data = stream.read()
        except OSError:
            return
        whole = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
        self._read_to[name] = self._read_to.get(name, 0) + len(whole)
        counts = self._counts.setdefault(name, {})
        for line in whole.splitlines():
            try:
                counts.update(json.loads(line))
            except ValueError:
                continue  # not a journal line: nothing to count


def read_spool(spool: "str | Spool", inputs: list[InputFile]) -> Totals:
    """Sum the spool files of every reading process against the run's input files
    (files opened that are not inputs of the run are left out).

    Args:
        spool: the spool folder, or a :class:`Spool` read before (which reads on).
        inputs: the run's input files.
    """
    merged = (spool if isinstance(spool, Spool) else Spool(spool)).merged()
    per_source: dict[str, dict] = {}
    for item in inputs:
        total = per_source.setdefault(item.source, {"records": 0, "bytes": 0, "files_done": 0,
                                                    "files_reading": 0})
        counts = merged.get(item.path)
        if counts is None:
            continue
        total["records"] += counts["records"]
        ranges = counts.get("ranges")
        if ranges and not counts["done"]:  # read in byte ranges, maybe by several processes
            covered = sum(length for _read, done, length in ranges.values() if done)
            counts = {"done": covered >= item.size,
                      "position": sum(read for read, _done, _length in ranges.values())}
        if counts["done"]:
            total["files_done"] += 1
            total["bytes"] += item.size
        else:
            total["files_reading"] += 1
            total["bytes"] += min(item.size, counts["position"])
    return Totals(records=sum(c["records"] for c in per_source.values()),
                  bytes_read=sum(c["bytes"] for c in per_source.values()), per_source=per_source)


def format_bytes(count: float) -> str:
    """``count`` bytes in the largest unit that keeps the number below 1000 (``2.1 GB``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def format_duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``42s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _files_per_source(inputs: list[InputFile]) -> Counter:
    return Counter(item.source for item in inputs)


def summary_line(totals: Totals, inputs: list[InputFile], elapsed: float) -> str:
    """The line written when the pipeline has finished.

    Args:
        totals: the summed spool.
        inputs: the run's input files.
        elapsed: seconds the pipeline ran.
    """
    finished = sum(c["files_done"] for c in totals.per_source.values())
    line = (f"progress: pipeline finished in {format_duration(elapsed)}; read {finished} of "
            f"{len(inputs)} input files ({format_bytes(totals.bytes_read)}), {totals.records:,} records")
    # A source may list files it opens only when a record refers to them (TriviaQA's
    # evidence); once the pipeline has finished, those never opened were not needed.
    listed = _files_per_source(inputs)
    opened = {source: c["files_done"] + c["files_reading"] for source, c in totals.per_source.items()}
    unread = {source: count - opened.get(source, 0) for source, count in listed.items()}
    unread = {source: count for source, count in sorted(unread.items()) if count > 0}
    if unread:
        line += "; not needed: " + ", ".join(f"{count:,} of {source}" for source, count in unread.items())
    return line


def progress_line(totals: Totals, inputs: list[InputFile], elapsed: float) -> str:
    """The line written while the pipeline runs: what is being read, records, bytes,
    rate and ETA.

    Args:
        totals: the summed spool.
        inputs: the run's input files.
        elapsed: seconds since the pipeline started.
    """
    files_per_source = _files_per_source(inputs)
    input_bytes = sum(item.size for item in inputs)
    running = [source for source, counts in sorted(totals.per_source.items()) if counts["files_reading"]]
    if running:
        doing = "reading " + ", ".join(
            f"{source} ({totals.per_source[source]['files_done']}/{files_per_source[source]} files)"
            for source in running)
    else:
        finished = sum(c["files_done"] for c in totals.per_source.values())
        doing = f"{finished}/{len(inputs)} input files read"
    details = [f"{totals.records:,} records"]
    if input_bytes:
        share = min(1.0, totals.bytes_read / input_bytes)
        details.append(f"{format_bytes(totals.bytes_read)} of {format_bytes(input_bytes)} input ({share:.0%})")
    rate = totals.bytes_read / elapsed if elapsed > 0 else 0.0
    if rate > 0:
        details.append(f"{format_bytes(rate)}/s")
        if totals.bytes_read < input_bytes:
            details.append(f"reading done in about {format_duration((input_bytes - totals.bytes_read) / rate)}")
        else:
            details.append("input read; grouping and writing shards")
    return f"progress: {doing}; " + ", ".join(details)


class ProgressReporter:
    """Reports the reading progress of a local build every ``interval`` seconds.

    Use as a context manager around the pipeline run. Its :attr:`spool` is the run's
    ``--progress_dir`` (the build puts it in the pipeline options, which carry it to the
    readers in every worker process); it writes a last line when the run ends, and
    removes the spool folder.

    Args:
        inputs: the run's input files.
        interval: seconds between two progress lines.
        write: called with each line (default: print to standard error).
        enabled: ``False`` makes the reporter do nothing (remote runners).
    """

    def __init__(self, inputs: list[InputFile], *, interval: float = 10.0,
                 write: Callable[[str], None] | None = None, enabled: bool = True):
        self.inputs = list(inputs)
        self.interval = interval
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.enabled = enabled
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._spool: str | None = None
        self._counts: Spool | None = None
        self._started = 0.0

    def __enter__(self) -> "ProgressReporter":
        if not self.enabled:
            return self
        self._spool = tempfile.mkdtemp(prefix="corpus-progress-")
        self._counts = Spool(self._spool)
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="corpus-progress", daemon=True)
        self._thread.start()
        return self

    @property
    def spool(self) -> str:
        """The spool folder while the reporter runs ('' when off): the ``--progress_dir``."""
        return self._spool or ""

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()

    def report(self, final: bool = False) -> str | None:
        """Write one progress line now (and return it); ``None`` when off.

        Args:
            final: write the summary of a finished pipeline instead.
        """
        if not self._spool:
            return None
        make_line = summary_line if final else progress_line
        line = make_line(read_spool(self._counts, self.inputs), self.inputs, time.monotonic() - self._started)
        self.lines.append(line)
        self.write(line)
        return line

    def __exit__(self, exc_type, *exc_info) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            self.report(final=True)
        shutil.rmtree(self._spool, ignore_errors=True)
        self._spool = None
