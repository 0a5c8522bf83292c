"""Reading upstream files: one ``read_file`` generator per source, run file by file.

A source describes how to read *one* file as a generator::

    def read_file(stream, source_file):
        for line_number, text, raw in text_lines(stream):
            ...
            yield element                       # goes to the main output
            yield rejected(DATASET, "bad_json", source_file=source_file, ...)   # a reject

and :class:`ReadFiles` runs it over a list of files in parallel (one file is one
worker's job; a big plain file is read in byte ranges, and with several workers a
compressed file or archive member is shared out in blocks of whole lines that all workers
parse). The file is opened with its compression undone (sniffed from the bytes).
When a file cannot be read to its end, the rows before the problem are kept and the file
itself becomes a reject (reason ``unreadable_file``, with the position where reading
stopped); with ``strict`` the run stops instead, naming the file.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import io
import uuid
from dataclasses import dataclass
from typing import Callable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.engine import files, options, progress
from pipelines.engine.lines import BlockReader, LineRange, byte_ranges, file_blocks, stream_is_empty


def _unpack(item) -> tuple[str, object]:
    """``(path, context)`` of a file as :class:`ReadFiles` lists it."""
    return item if isinstance(item, tuple) else (item, _NO_CONTEXT)


class _FileStreams:
    """What reading and cutting share: naming a file, opening it (or each wanted member of
    an archive) and turning a failure into the file's reject (see :class:`ReadFiles` for
    the arguments)."""

    def __init__(self, input_root: str, dataset: str, strict: bool, decompress: bool, members,
                 members_take_context: bool = False):
        self.input_root = input_root
        self.dataset = dataset
        self.strict = strict
        self.decompress = decompress
        self.members = members
        self.members_take_context = members_take_context

    def relative(self, path: str) -> str:
        """The provenance name of ``path``: relative to the input root."""
        return files.relative_to(path, self.input_root)

    def each(self, path: str, handle: Callable, context=None, file_rejects: bool = True):
        """``handle(stream, source_file)`` for the file, or for each wanted member of an
        archive (``context`` is the file's, for members that depend on it); an archive
        without any is a ``no_member`` reject, and a file that cannot be read to its end
        its reject (see :meth:`failed`), yielded among what ``handle`` yields.
        ``file_rejects=False`` leaves those two out (another worker reading the same file
        records them; a strict run still stops)."""
        relative = self.relative(path)
        wanted = functools.partial(self.members, context) if self.members_take_context else self.members
        try:
            if self.members is not None and files.archive_format(path):
                found = False
                for member, stream in files.iter_archive_members(path, wanted=wanted):
                    found = True
                    yield from handle(stream, f"{relative}!{member}")
                if not found and file_rejects:
                    yield rejected(self.dataset, "no_member", source_file=relative, counts_as_read=True,
                                   detail=f"{relative}: the archive holds none of the expected files")
                return
            with files.open_input(path) if self.decompress else files.open_raw(path) as stream:
                yield from handle(stream, relative)
        except Exception as exc:  # any reader failure fails this file only (unless strict)
            if file_rejects or self.strict:
                yield self.failed(exc, relative)

    def failed(self, exc: Exception, source_file: str):
        """The reject of a file that could not be read to its end (raised when strict)."""
        if self.strict:
            raise files.BadInputFile(f"{source_file}: {type(exc).__name__}: {exc}") from exc
        return rejected(self.dataset, "unreadable_file", source_file=source_file,
                        record_id=_position(exc), counts_as_read=True,
                        detail=f"{source_file}: reading stopped: {type(exc).__name__}: {exc}")


class _ReadOneFile(beam.DoFn):
    def __init__(self, read_file, opener: _FileStreams, settings: options.ReadSettings):
        self.read_file = read_file
        self.opener = opener
        self.settings = settings

    def setup(self):
        options.use(self.settings)

    def process(self, element):
        if isinstance(element, _HandedOn):
            yield beam.pvalue.TaggedOutput(REJECTED, element.reject)
        elif isinstance(element, FileBlock):
            yield from self._read_block(element)
        elif isinstance(element, FileRange):
            yield from self._read_range(element)
        else:
            path, context = _unpack(element)
            yield from self.opener.each(
                path, lambda stream, source_file: self._read_stream(stream, source_file, context), context)

    def _read_range(self, byte_range: "FileRange"):
        path, context = _unpack(byte_range.item)
        relative = self.opener.relative(path)
        start, end = byte_range.start, byte_range.end
        try:
            with files.open_raw(path) as raw, progress.reading_range(path, raw, start, end):
                stream = io.BufferedReader(LineRange(raw, start, end), files.READ_BUFFER)
                yield from self._call_reader(stream, relative, context)
        except Exception as exc:  # any reader failure fails this file only (unless strict)
            yield self.opener.failed(exc, relative)

    def _read_block(self, block: "FileBlock"):
        path, context = _unpack(block.item)
        # A block that cannot be opened is the build's failure, not the input's: its lines
        # would be lost uncounted. The bundle fails (a runner that retries, retries it).
        raw = files.open_raw(block.path)
        try:
            with raw, progress.reading_block(path):
                yield from self._parse_block(raw, block.source_file, block.first_line, block.whole, context)
        except Exception as exc:
            yield self.opener.failed(exc, self.opener.relative(path))

    def _parse_block(self, raw, source_file: str, first_line: int, whole: bool, context):
        """``read_file`` over one block (its bytes in ``raw``): a block that is the whole
        file is read as the file would be, with the empty- and blank-file checks."""
        if whole:
            return self._read_stream(io.BufferedReader(raw, files.READ_BUFFER), source_file, context)
        return self._call_reader(BlockReader(raw, first_line), source_file, context)

    def _call_reader(self, stream, source_file: str, context):
        if context is _NO_CONTEXT:
            return self.read_file(stream, source_file)
        return self.read_file(stream, source_file, context)

    def _read_stream(self, stream, source_file: str, context):
        empty = hasattr(stream, "peek") and stream_is_empty(stream)
        yield from self._call_reader(stream, source_file, context)
        if empty:
            yield rejected(self.opener.dataset, "empty_file", source_file=source_file, counts_as_read=True,
                           detail=f"{source_file} is empty")


@dataclass(frozen=True)
class _HandedOn:
    """A reject of the cutting step, handed on to the reading step with the blocks."""
    reject: dict


@dataclass(frozen=True)
class FileBlock:
    """Whole lines of one input file, cut from it by the worker that read it through and
    kept in a scratch file, so that several workers parse the file at once (see
    ``ReadFiles.cut_lines``).

    Attributes:
        item: the file as :class:`ReadFiles` lists it: a path or ``(path, context)``.
        path: the block's scratch file.
        source_file: the provenance name of its lines (the file, or ``archive!member``).
        first_line: the number, in that file, of the block's first line.
        whole: the block is the whole file (it is then read as the file would be, with the
            empty- and blank-file checks).
    """

    item: object
    path: str
    source_file: str
    first_line: int
    whole: bool


# Blocks cut ahead of their writing (each up to --block_bytes in memory).
WRITES_AHEAD = 2


class _CutIntoBlocks(beam.DoFn):
    """Cut every file (or wanted archive member) into :class:`FileBlock` s; byte ranges of
    plain files pass through as they are."""

    def __init__(self, opener: _FileStreams, cut_dir: str, cut_bytes: int, starts_record,
                 settings: options.ReadSettings):
        self.opener = opener
        self.cut_dir = cut_dir
        self.cut_bytes = cut_bytes
        self.starts_record = starts_record
        self.settings = settings

    def setup(self):
        options.use(self.settings)

    def process(self, element):
        if isinstance(element, FileRange):
            yield element
            return
        path, context = _unpack(element)
        # A failure names the file, as when the file is read whole. Its reject goes on with
        # the blocks, and the reading step hands it out with its own: rejects of two steps
        # joined by a Flatten would be held whole by a local runner.
        for item in self.opener.each(path, lambda stream, source_file: self._cut(element, source_file, stream),
                                     context):
            yield _HandedOn(item.value) if isinstance(item, beam.pvalue.TaggedOutput) else item

    def _cut(self, item, source_file: str, stream):
        # Writing a block (an upload, on an object store) overlaps inflating the next ones:
        # one thread writes, in order, and at most WRITES_AHEAD blocks wait in memory. The
        # blocks cut before a problem of the stream are handed on, as when reading whole.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
            pending: collections.deque = collections.deque()
            try:
                for _index, first_line, data, whole in file_blocks(stream, self.cut_bytes, self.starts_record):
                    pending.append(writer.submit(self._write, item, source_file, first_line, data, whole))
                    if len(pending) > WRITES_AHEAD:
                        yield pending.popleft().result()
            except Exception:
                yield from (future.result() for future in pending)
                raise
            yield from (future.result() for future in pending)

    def _write(self, item, source_file: str, first_line: int, data: bytes, whole: bool) -> FileBlock:
        path = files.join(self.cut_dir, f"block-{uuid.uuid4().hex}")
        with FileSystems.create(path) as out:
            out.write(data)
        return FileBlock(item, path, source_file, first_line, whole)


def reads_in_parallel(pipeline_options) -> bool:
    """Whether a pipeline with ``pipeline_options`` reads with more than one worker: any
    remote runner, and the local one in ``multi_processing`` or ``multi_threading`` mode
    with ``--direct_num_workers`` other than 1."""
    if not progress.is_local_runner(pipeline_options.view_as(StandardOptions).runner):
        return True
    direct = pipeline_options.view_as(DirectOptions)
    return (direct.direct_running_mode in ("multi_processing", "multi_threading")
            and direct.direct_num_workers != 1)


_NO_CONTEXT = object()


@dataclass(frozen=True)
class FileRange:
    """One byte range of a big plain file, read by one worker (see ``ReadFiles.split_bytes``).

    Attributes:
        item: the file as :class:`ReadFiles` lists it: a path or ``(path, context)``.
        start, end: the range's bytes, ``[start, end)``.
    """

    item: object
    start: int
    end: int


def split_plain_files(items: list, split_bytes: int) -> list:
    """``items`` (paths or ``(path, context)``) with every uncompressed, unarchived file
    larger than ``split_bytes`` replaced by its :class:`FileRange` s."""
    result = []
    for item in items:
        path, _context = _unpack(item)
        size = files.size_of(path)
        if size > split_bytes and files.is_plain(path):
            result.extend(FileRange(item, start, end) for start, end in byte_ranges(size, split_bytes))
        else:
            result.append(item)
    return result


def _position(exc: Exception) -> str:
    position = getattr(exc, "position", None) or getattr(exc, "lineno", None)
    if isinstance(position, tuple):
        return f"line {position[0]}"
    return f"line {position}" if position else ""


class ReadFiles(beam.PTransform):
    """Run ``read_file`` over every file of ``paths``, one file per element.

    Args:
        paths: files to read (local or any Beam filesystem), or ``(path, context)``
            pairs when ``read_file`` needs something per file (a split name, a kind).
        read_file: generator ``(stream, source_file[, context]) -> elements or tagged
            rejects``; ``stream`` is a buffered binary stream, ``source_file`` the path
            relative to the input root (use it for provenance), ``context`` the value
            paired with the path. A file with no bytes at all is recorded as an
            ``empty_file`` reject after ``read_file`` has run.
        input_root: the run's input root (for relative names).
        dataset: dataset that file-level rejects are counted under.
        strict: raise on an unreadable file instead of recording it.
        decompress: undo gzip/bzip2/xz/zstd (sniffed); ``False`` hands over raw bytes.
        members: for inputs that are archives (7z, zip, tar, tar.gz, judged from the
            bytes): a predicate on member names; each matching member is read with
            ``read_file`` as ``"<archive>!<member>"``, one after the other in one pass.
            An archive without any matching member is a ``no_member`` reject. ``None``
            (the default) reads every file as a single stream.
        members_take_context: ``members`` is ``members(context, member)``: the members
            wanted depend on the file's context (the kind of input it is).
        outputs: tags ``read_file`` yields records under (``beam.pvalue.TaggedOutput``,
            see :func:`tagged_records`) besides its untagged ones, so that one step reads files of several kinds and
            each kind goes its own way (``ReadOutput[tag]``); reading them in one step
            lets the workers share them, where a step per kind keeps a worker waiting
            while another reads a small file alone.
        output_type: the type of the main output's elements when ``read_file`` yields
            one kind (``pa.Table`` for table readers, so that Beam uses the Arrow coder).
        split_bytes: files stored uncompressed and unarchived that are larger than this
            are read as byte ranges of this size by several workers at once; each range
            reaches ``read_file`` as a stream of whole lines (for line-oriented files; a
            reader names a line in a range by its number from the range's ``start``).
            The blank- and empty-file checks do not apply to a split file. With
            ``cut_lines`` and several workers, the ranges are at most ``cut_bytes`` each, so
            that a file of a few blocks is shared by every worker too.
        cut_lines: the files are line-oriented: when the pipeline reads with several
            workers (:func:`reads_in_parallel`), every file that is not split in byte ranges
            (a compressed file, an archive member) is shared out in blocks of whole lines:
            one worker reads the file through and only cuts it into blocks (``cut_bytes``
            each) kept in the run's scratch folder (``--scratch_dir``), which all workers
            then parse after a shuffle. A block reaches ``read_file`` as a :class:`BlockReader`, whose lines
            :func:`text_lines` and :func:`tsv_tables` number as in the file, so blocks give
            the same records as reading the file whole. A file of one block is read as a
            whole file. With one worker nothing is cut. The same on every runner.
        cut_bytes: bytes of a block (default: the run's ``--block_bytes``, 16 MiB).
        starts_record: for files whose records may span lines: whether a line can begin
            a record (see :func:`line_blocks`).
    Returns:
        A :class:`ReadOutput`: ``.records``, ``[REJECTED]`` and ``[tag]`` for each of ``outputs``.
    """

    def __init__(self, paths: list, read_file: Callable, *, input_root: str, dataset: str,
                 strict: bool = False, decompress: bool = True, members: Callable | None = None,
                 output_type=None, split_bytes: int | None = None, cut_lines: bool = False,
                 cut_bytes: int | None = None, starts_record: Callable[[bytes], bool] | None = None,
                 members_take_context: bool = False, outputs: tuple[str, ...] = ()):
        super().__init__()
        self.members_take_context = members_take_context
        self.outputs = tuple(outputs)
        self.output_type = output_type
        self.split_bytes = split_bytes
        self.cut_lines = cut_lines
        self.cut_bytes = cut_bytes
        self.starts_record = starts_record
        self.paths = sorted(paths, key=lambda item: _unpack(item)[0])
        self.read_file = read_file
        self.input_root = input_root
        self.dataset = dataset
        self.strict = strict
        self.decompress = decompress
        self.members = members

    def expand(self, pbegin):
        opener = _FileStreams(self.input_root, self.dataset, self.strict, self.decompress, self.members,
                              self.members_take_context)
        settings = options.settings_of(pbegin.pipeline.options)
        block_bytes = self.cut_bytes or settings.block_bytes
        parallel = self.cut_lines and reads_in_parallel(pbegin.pipeline.options)
        split_bytes = self.split_bytes
        if split_bytes and parallel:  # a plain file of a few blocks is shared by every worker too
            split_bytes = min(split_bytes, block_bytes)
        items = split_plain_files(self.paths, split_bytes) if split_bytes else self.paths
        cut = parallel and self._any_to_cut(items, block_bytes)
        read = beam.ParDo(_ReadOneFile(self.read_file, opener, settings))
        if self.output_type is not None:
            read = read.with_output_types(self.output_type)
        listed = pbegin | "List" >> beam.Create(items) | "Spread" >> beam.Reshuffle()
        if not cut:  # each file or byte range is read where it lands
            result = listed | "Read" >> read.with_outputs(REJECTED, *self.outputs, main="records")
            return ReadOutput(result.records, result[REJECTED], {tag: result[tag] for tag in self.outputs})
        # Output: FileBlock (or FileRange passed on, or a file's reject), then the records of
        # each, read by any worker.
        blocks = listed | "Cut" >> beam.ParDo(_CutIntoBlocks(
            opener, options.scratch_folder(pbegin.pipeline.options, "blocks"), block_bytes, self.starts_record,
            settings))
        result = blocks | "SpreadBlocks" >> beam.Reshuffle() | "Read" >> read.with_outputs(
            REJECTED, *self.outputs, main="records")
        return ReadOutput(result.records, result[REJECTED], {tag: result[tag] for tag in self.outputs})

    def _may_cut(self, item, size: int, block_bytes: int) -> bool:
        """Whether a listed file (not a byte range) may be cut: with byte ranges in use, a
        plain file of at most one block is read as it is."""
        return not (self.split_bytes and size <= block_bytes and files.is_plain(_unpack(item)[0]))

    def _any_to_cut(self, items: list, block_bytes: int) -> bool:
        """Whether any item may be worth cutting into blocks. When the files are split in
        byte ranges, the ranges and the plain files of at most one block are read as they
        are (cutting would pass them on unchanged, at the price of a stage and a shuffle);
        otherwise whether a file is compressed is only looked at when it is read."""
        if not self.split_bytes:
            return bool(items)
        return any(self._may_cut(item, files.size_of(_unpack(item)[0]), block_bytes)
                   for item in items if not isinstance(item, FileRange))


def tagged_records(items, tag: str):
    """``items`` (what a ``read_file`` yields) with every record tagged ``tag``, for
    :class:`ReadFiles` ``outputs``; tagged items (rejects) are passed on as they are."""
    for item in items:
        yield item if isinstance(item, beam.pvalue.TaggedOutput) else beam.pvalue.TaggedOutput(tag, item)


class ReadOutput:
    """What :class:`ReadFiles` gives: ``.records`` (what ``read_file`` yields untagged),
    ``[REJECTED]`` (the rejects of the files and of their records) and ``[tag]`` for each
    of its ``outputs``."""

    def __init__(self, records, rejects, tagged: dict | None = None):
        self.records = records
        self._rejects = rejects
        self._tagged = dict(tagged or {})

    def __getitem__(self, tag: str):
        if tag == REJECTED:
            return self._rejects
        return self._tagged[tag]
