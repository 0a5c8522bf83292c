"""Progress of a local build: which source is being read, records and bytes, and an ETA.

A Beam runner reports metrics only when a stage (or the whole pipeline) has finished,
and on ``--direct_running_mode=multi_processing`` the reading happens in other
processes. So progress is counted where the reading happens and handed over through a
spool folder:

* every reading process keeps a :class:`ReadMeter`. The input openers of
  :mod:`pipelines.engine.files` (``open_input``, ``iter_archive_members``) tell it when a
  file starts and ends and let it ask the raw file how far it has been read; the parsing
  helpers of :mod:`pipelines.engine.lines` and :mod:`pipelines.engine.formats` (text
  lines, JSON items, XML rows) count a record each. At most once a second, and when a file ends, the process appends
  the counts of the files that changed since its last write to ``<spool>/<process>.jsonl``
  as one JSON line (a journal: a write costs what changed, not every file the process has
  read, which would make a reader of many small files quadratic);
* the building process runs a reporter around the pipeline
  (:class:`pipelines.runtime.progress_report.ProgressReporter`): it makes the spool folder
  (the pipeline option ``--progress_dir``, which the engine's reading steps make current
  in every worker process, see :mod:`pipelines.engine.options`), and every ``interval``
  seconds sums the spool files against the run's input files and writes one line::

      progress: reading stackexchange (3/12 files); 1,204,311 records, 2.1 GB of 5.6 GB
      input (37%), 41.0 MB/s, reading done in about 1m25s

The ETA is the time left to read the input at the rate seen so far; the shuffle and
write steps after the reading are not in it. Remote runners (Dataflow) have their own
progress pages, and the reporter stays off for them. With no reporter running, the
counting costs one look-up per file and one attribute read per record.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid

from pipelines.engine import options

# Seconds between two spool writes of one process (a file's end is always written).
SPOOL_WRITE_SECONDS = 1.0
# Records between two looks at the clock for a spool write.
RECORDS_PER_CHECK = 1000
# Runners that run in (or beside) this process, where the reporter can see the readers.
LOCAL_RUNNERS = frozenset({"DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"})


def new_counts() -> dict:
    """A file's counts before any of it is read."""
    return {"records": 0, "position": 0, "done": False}


class ReadMeter:
    """The reading counts of one process, per input file, written to the spool folder.

    Args:
        spool: the spool folder (``--progress_dir``).
    """

    def __init__(self, spool: str):
        self.spool = spool
        self.path = os.path.join(spool, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
        self._lock = threading.Lock()
        # path -> {"records", "position", "done"}, and for a file read in byte ranges
        # "ranges": {start: [bytes read, done, length]}
        self._files: dict[str, dict] = {}
        self._raw: dict[str, object] = {}
        self._range_raw: dict[tuple[str, int], object] = {}
        self._changed: set[str] = set()
        self._last_write = 0.0

    def _entry(self, path: str) -> dict:
        """The counts of ``path``, new ones if it has none yet (the lock is held); the
        caller changes them, so they are written at the next write."""
        self._changed.add(path)
        return self._files.setdefault(path, new_counts())

    def started(self, path: str, raw) -> None:
        """A file is opened; ``raw`` is its stream as stored (its ``tell()`` is the position)."""
        with self._lock:
            self._entry(path)["done"] = False
            self._raw[path] = raw

    def range_started(self, path: str, raw, start: int, end: int) -> None:
        """The byte range ``[start, end)`` of ``path`` is opened; ``raw.tell()`` is the
        position in the file."""
        with self._lock:
            entry = self._entry(path)
            entry.setdefault("ranges", {})[str(start)] = [0, False, end - start]
            self._range_raw[(path, start)] = raw

    def range_finished(self, path: str, start: int) -> None:
        """The range of ``path`` beginning at ``start`` was read (or given up on)."""
        with self._lock:
            entry = self._entry(path)["ranges"][str(start)]
            entry[0], entry[1] = entry[2], True
            self._range_raw.pop((path, start), None)
            self._write_if_due(force=True)

    def add_records(self, path: str, count: int, force: bool = False) -> None:
        """``count`` more records were read from ``path`` (or one of its blocks); ``force``
        writes the counts now (at a block's end)."""
        with self._lock:
            self._entry(path)["records"] += count
            self._write_if_due(force=force)

    def finished(self, path: str) -> None:
        """``path`` was read to its end (or given up on)."""
        with self._lock:
            self._entry(path)["done"] = True
            self._raw.pop(path, None)
            self._write_if_due(force=True)

    def _write_if_due(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < SPOOL_WRITE_SECONDS:
            return
        self._last_write = now
        for path, raw in self._raw.items():
            try:
                self._entry(path)["position"] = int(raw.tell())
            except (AttributeError, OSError, ValueError):
                pass  # a stream that cannot tell its position counts when it ends
        for (path, start), raw in self._range_raw.items():
            entry = self._entry(path)["ranges"][str(start)]
            try:
                entry[0] = max(0, min(entry[2], int(raw.tell()) - start))
            except (AttributeError, OSError, ValueError):
                pass
        if not self._changed:
            return
        line = json.dumps({path: self._files[path] for path in sorted(self._changed)}) + "\n"
        self._changed.clear()
        try:
            # The reporter reads whole lines only, so a line being written is not seen half.
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(line)
        except OSError:
            pass  # the build ended and removed the spool: nothing is left to report to


_process_meter: ReadMeter | None = None
_process_meter_lock = threading.Lock()
_current = threading.local()


def process_meter() -> ReadMeter | None:
    """This process's :class:`ReadMeter`, or ``None`` when no build is reporting progress
    (no ``--progress_dir``, or gone)."""
    global _process_meter
    spool = options.current().progress_dir
    if not spool or not os.path.isdir(spool):
        return None
    with _process_meter_lock:
        if _process_meter is None or _process_meter.spool != spool:
            _process_meter = ReadMeter(spool)
        return _process_meter


class _FileReading:
    """Context of one input file being read by this thread (see :func:`reading_file`)."""

    def __init__(self, meter: ReadMeter, path: str, raw):
        self.meter = meter
        self.path = path
        self.raw = raw
        self.pending = 0
        self.outer = None

    def __enter__(self):
        self._opened()
        self.outer = getattr(_current, "reading", None)
        _current.reading = self
        return self

    def flush(self) -> None:
        added, self.pending = self.pending, 0
        self.meter.add_records(self.path, added)

    def __exit__(self, *exc_info):
        _current.reading = self.outer
        added, self.pending = self.pending, 0
        self._closed(added)
        return None

    def _opened(self) -> None:
        self.meter.started(self.path, self.raw)

    def _closed(self, records: int) -> None:
        self.meter.add_records(self.path, records)
        self.meter.finished(self.path)


class _RangeReading(_FileReading):
    """Context of one byte range of an input file being read by this thread."""

    def __init__(self, meter: ReadMeter, path: str, raw, start: int, end: int):
        super().__init__(meter, path, raw)
        self.start, self.end = start, end

    def _opened(self) -> None:
        self.meter.range_started(self.path, self.raw, self.start, self.end)

    def _closed(self, records: int) -> None:
        self.meter.add_records(self.path, records)
        self.meter.range_finished(self.path, self.start)


class _BlockReading(_FileReading):
    """Context of one block of a cut input file: its records count for the file, whose
    bytes were counted when it was read through to be cut."""

    def _opened(self) -> None:
        pass

    def _closed(self, records: int) -> None:
        self.meter.add_records(self.path, records, force=True)


class _NotReporting:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None


def reading_file(path: str, raw):
    """Context manager around the reading of one input file; does nothing when no
    build is reporting progress.

    Args:
        path: the file (local or any Beam filesystem), as the build lists its inputs.
        raw: the file's stream as stored; its ``tell()`` gives the bytes read so far.
    """
    meter = process_meter()
    return _NotReporting() if meter is None else _FileReading(meter, path, raw)


def reading_range(path: str, raw, start: int, end: int):
    """Like :func:`reading_file`, for the byte range ``[start, end)`` of ``path``
    (``raw.tell()`` is the position in the file); the file is read once all its ranges are."""
    meter = process_meter()
    return _NotReporting() if meter is None else _RangeReading(meter, path, raw, start, end)


def reading_block(path: str):
    """Like :func:`reading_file`, for one block of ``path`` cut by another worker: only
    its records are counted (the file's bytes were counted as it was cut)."""
    meter = process_meter()
    return _NotReporting() if meter is None else _BlockReading(meter, path, None)


def count_record(n: int = 1) -> None:
    """Count ``n`` records (lines, JSON items, XML rows) of the file this thread reads."""
    reading = getattr(_current, "reading", None)
    if reading is None:
        return
    reading.pending += n
    if reading.pending >= RECORDS_PER_CHECK:
        reading.flush()


def is_local_runner(runner) -> bool:
    """Whether ``runner`` (a name or a runner object; ``None`` is the DirectRunner) reads
    in or beside this process, so that the reporter can see the readers."""
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1] in LOCAL_RUNNERS
