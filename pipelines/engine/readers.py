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

import functools
import io
import json
import os
import uuid
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems

from pipelines.engine import files, progress
from pipelines.corpus.rejects import REJECTED, rejected


class LineTooLong(ValueError):
    """A line longer than the reader accepts; the message gives its number."""


def max_line_bytes() -> int:
    """The longest line :func:`text_lines` reads: ``CORPUS_MAX_LINE_BYTES`` or 512 MiB
    (Natural Questions lines are several MB; nothing real comes near the limit)."""
    return int(os.environ.get("CORPUS_MAX_LINE_BYTES", 512 << 20))


def text_lines(stream: BinaryIO, first_line: int | None = None) -> Iterator[tuple[int, str | None, bytes]]:
    """Lines of a UTF-8 text file, without their line ending.

    Args:
        stream: the file (or a block of whole lines of it).
        first_line: the number of the stream's first line; by default 1, or the block's
            first line when ``stream`` is one block of a file cut by :class:`ReadFiles`.
    Yields:
        ``(line_number, text, raw)`` with 1-based line numbers; ``text`` is ``None`` when
        the line is not valid UTF-8 (``raw`` keeps the bytes for the dead-letter output).
        A UTF-8 BOM on the file's first line is dropped.
    Raises:
        LineTooLong: a line is longer than :func:`max_line_bytes` (a file without line
            breaks, or a decompression bomb); the lines before it have been yielded, and
            the file is recorded as unreadable.
    """
    limit = max_line_bytes()
    first_line = first_line_of(stream) if first_line is None else first_line
    for number, raw in enumerate(iter(lambda: stream.readline(limit + 1), b""), start=first_line):
        if len(raw) > limit:
            raise LineTooLong(f"line {number} is longer than {limit:,} bytes "
                              "(set CORPUS_MAX_LINE_BYTES to allow longer lines)")
        progress.count_record()
        raw = raw.rstrip(b"\r\n")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8"), raw
        except UnicodeDecodeError:
            yield number, None, raw


def byte_ranges(size: int, split_bytes: int) -> list[tuple[int, int]]:
    """Cut a file of ``size`` bytes into ``[start, end)`` ranges of ``split_bytes``, so that
    several workers can read one big uncompressed line-oriented file at once."""
    if size <= split_bytes:
        return [(0, size)]
    return [(start, min(start + split_bytes, size)) for start in range(0, size, split_bytes)]


def lines_in_range(stream: BinaryIO, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """The lines of a seekable binary stream whose first byte lies in ``[start, end)``, with
    their byte offsets (line endings kept). Ranges from :func:`byte_ranges` therefore give
    every line of the file exactly once.

    Raises:
        LineTooLong: as :func:`text_lines`.
    """
    limit = max_line_bytes()
    if start > 0:
        stream.seek(start - 1)
        stream.readline(limit + 1)  # the end of the line that began before the range
    position = stream.tell()
    while position < end:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit:
            raise LineTooLong(f"the line at byte {position:,} is longer than {limit:,} bytes")
        yield position, line
        position += len(line)


class LineRange(io.RawIOBase):
    """The whole lines of a seekable binary stream whose first byte lies in
    ``[start, end)``, as a stream (see :func:`lines_in_range`): the line that begins before
    ``start`` is left to the range before, the line that crosses ``end`` is read to its end.

    Attributes:
        start: the range's first byte in the file; readers name a line inside a range by
            its number counted from there (the line numbers of the file are not known).
    """

    def __init__(self, raw: BinaryIO, start: int, end: int):
        self._raw = raw
        self.start = start
        self._end = end
        limit = max_line_bytes()
        if start > 0:
            raw.seek(start - 1)
            if len(raw.readline(limit + 1)) > limit:  # the end of the line before the range
                raise LineTooLong(f"the line before byte {start:,} is longer than {limit:,} bytes")
        self._position = raw.tell()
        self._tail = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._tail and not self._done:
            if self._position < self._end:
                data = self._raw.read(min(len(buffer), self._end - self._position))
                self._position += len(data)
                if not data:
                    self._done = True
                elif self._position >= self._end and not data.endswith(b"\n"):
                    data += self._raw.readline(max_line_bytes() + 1)  # the line crossing the end
                    self._done = True
                self._tail = data
            else:
                self._done = True
        n = min(len(buffer), len(self._tail))
        buffer[:n] = self._tail[:n]
        self._tail = self._tail[n:]
        return n


def range_start(stream) -> int | None:
    """The first byte of the range when ``stream`` is one :class:`LineRange` of a split
    file (possibly buffered), ``None`` when it is a whole file."""
    raw = getattr(stream, "raw", stream)
    return raw.start if isinstance(raw, LineRange) else None


# -- blocks: one file's lines cut by the worker that reads it through, parsed by many ----------

# Bytes of whole lines per block of a cut file (see ReadFiles.cut_dir): blocks kept as files
# (on an object store each costs a request), and blocks of stripes, which stay in memory:
# smaller ones spread a file more evenly (PAQ's 4x benchmark input, two workers: 6.7 s with
# 16 MB, 6.2 s with 4 MB) and each worker holds two at a time.
BLOCK_BYTES = 16 << 20
STRIPE_BLOCK_BYTES = 4 << 20


def default_block_bytes(stripes: bool = False) -> int:
    """Bytes of a block of a cut file when a source names none: ``CORPUS_BLOCK_BYTES`` or
    :data:`BLOCK_BYTES` (:data:`STRIPE_BLOCK_BYTES` for stripes). Read where the pipeline
    is built (the workers get the number with the step); the blocks' size changes how the
    work is spread, never the output."""
    default = STRIPE_BLOCK_BYTES if stripes else BLOCK_BYTES
    return int(os.environ.get("CORPUS_BLOCK_BYTES", default))


class BlockReader(io.BufferedReader):
    """The stream of one block of a cut file, as ``read_file`` receives it.

    Attributes:
        first_line: the number, in the file, of the block's first line.
    """

    def __init__(self, raw: BinaryIO, first_line: int):
        super().__init__(raw, files.READ_BUFFER)
        self.first_line = first_line


def first_line_of(stream) -> int:
    """The number of ``stream``'s first line in its file: 1, or a block's first line."""
    return stream.first_line if isinstance(stream, BlockReader) else 1


def is_block(stream) -> bool:
    """Whether ``stream`` is one block of a file cut into several (not the whole file)."""
    return isinstance(stream, BlockReader)


def line_blocks(stream: BinaryIO, block_bytes: int = BLOCK_BYTES,
                starts_record: Callable[[bytes], bool] | None = None) -> Iterator[tuple[int, bytes]]:
    """Cut a stream into blocks of whole lines of about ``block_bytes`` each.

    Args:
        stream: the file, its compression undone.
        block_bytes: bytes a block reaches before it is cut at the next line end.
        starts_record: for files whose records may span lines: whether a line (with its
            line ending) can begin a record; a block is then cut only before such a line,
            or, when none comes, after another ``block_bytes`` (no record is that long).
    Yields:
        ``(first_line, data)``: the number of the block's first line and its bytes.
    Raises:
        LineTooLong: the line that crosses a block's end is longer than
            :func:`max_line_bytes`. That, or any error of the stream, is raised once the
            whole lines read before it have been yielded as a last block.
    """
    limit = max_line_bytes()
    # One raw read at a time, so that an error loses no more than the read it broke off.
    read = getattr(stream, "read1", stream.read)
    first_line, carry = 1, b""
    while True:
        buffer, carry = bytearray(carry), b""
        try:
            while len(buffer) < block_bytes:
                piece = read(min(files.READ_BUFFER, block_bytes - len(buffer)))
                if not piece:
                    break
                buffer += piece
            if buffer and not buffer.endswith(b"\n"):
                buffer += _line_within(stream, limit, first_line, buffer)
            while starts_record is not None and buffer and len(buffer) < 2 * block_bytes:
                line = _line_within(stream, limit, first_line, buffer)
                if not line or starts_record(line):
                    carry = line
                    break
                buffer += line
        except Exception:
            whole = bytes(buffer[:buffer.rfind(b"\n") + 1])
            if whole:
                yield first_line, whole
            raise
        if not buffer:
            return
        yield first_line, bytes(buffer)
        first_line += buffer.count(b"\n") + (0 if buffer.endswith(b"\n") else 1)


def _line_within(stream: BinaryIO, limit: int, first_line: int, before: bytearray) -> bytes:
    """The next line of ``stream`` (or the rest of one), or :class:`LineTooLong`."""
    line = stream.readline(limit + 1)
    if len(line) > limit:
        number = first_line + before.count(b"\n")
        raise LineTooLong(f"line {number:,} is longer than {limit:,} bytes "
                          "(set CORPUS_MAX_LINE_BYTES to allow longer lines)")
    return line


def file_blocks(stream: BinaryIO, block_bytes: int, starts_record: Callable[[bytes], bool] | None = None
                ) -> Iterator[tuple[int, int, bytes, bool]]:
    """The blocks of :func:`line_blocks`, numbered, each saying whether it is the whole file.

    Whether the file was one block (or blank throughout) is known only at its end, so the
    last block is held back until then; such a file is read as a whole (with the empty-
    and blank-file checks). An error of the stream is raised after the block before it.

    Yields:
        ``(index, first_line, data, whole)``: the block's number in the file (from 0), the
        number of its first line, its bytes, and whether it is the whole file.
    """
    held, blocks, blank = None, 0, True
    try:
        for first_line, data in line_blocks(stream, block_bytes, starts_record):
            blank = blank and data.isspace()
            if held is not None:
                yield blocks - 1, *held, False
            held, blocks = (first_line, data), blocks + 1
    except Exception:
        if held is not None:  # the lines before the problem are read all the same
            yield blocks - 1, *held, blocks == 1
        raise
    yield max(blocks - 1, 0), *(held or (1, b"")), blocks <= 1 or blank


def stream_is_empty(stream: BinaryIO) -> bool:
    """Whether ``stream`` has no byte left to read; nothing is consumed.

    ``stream`` is buffered (has ``peek``), as :class:`ReadFiles` hands it to ``read_file``,
    or seekable (``io.BytesIO`` in tests).
    """
    if hasattr(stream, "peek"):
        return not stream.peek(1)[:1]
    position = stream.tell()
    empty = not stream.read(1)
    stream.seek(position)
    return empty


def blank_file(dataset: str, source_file: str):
    """The tagged ``blank_file`` reject of a file that has bytes but only whitespace, so
    no record. (A file without any byte is recorded by :class:`ReadFiles` as ``empty_file``.)"""
    return rejected(dataset, "blank_file", source_file=source_file, counts_as_read=True,
                    detail=f"{source_file} holds only blank lines: no record")


def unless_blank(items: Iterable, stream: BinaryIO, dataset: str, source_file: str) -> Iterator:
    """Pass on what ``items`` yields, and a :func:`blank_file` reject when it yields nothing
    although ``stream`` has bytes.

    Args:
        items: a reader of ``stream`` that has not started yet (a generator such as
            ``json_lines(stream, ...)``), yielding something for every non-blank line.
        stream: the file's stream, checked for bytes before ``items`` reads it.
        dataset: the dataset the reject is counted under.
        source_file: the file's provenance name.
    """
    if range_start(stream) is not None or is_block(stream):  # a part: records may be elsewhere
        yield from items
        return
    has_bytes = not stream_is_empty(stream)
    produced = False
    for item in items:
        produced = True
        yield item
    if has_bytes and not produced:
        yield blank_file(dataset, source_file)


def text_records(stream: BinaryIO, dataset: str, source_file: str, first_line: int | None = None,
                 where: str = "") -> Iterator:
    """Non-blank lines of a UTF-8 text file, with invalid lines turned into rejects.

    ``first_line`` is the number of the stream's first line (see :func:`text_lines`);
    ``where`` is added to the record id of a reject (" after byte N" in a byte range).

    Yields:
        ``(line_number, text)`` for every line that is valid UTF-8 and not blank, and a
        tagged ``bad_encoding`` reject (for ``dataset``) for every line that is not.
    """
    for number, text, raw in text_lines(stream, first_line):
        if text is None:
            yield rejected(dataset, "bad_encoding", source_file=source_file,
                           record_id=f"line {number}{where}", detail="line is not valid UTF-8",
                           excerpt=raw)
        elif text.strip():
            yield number, text


# 19 ASCII digits in a row: an integer that may not fit in 64 bits, which orjson reads as a
# float (``json`` keeps it exact), or a number with more digits than a double holds. Found
# by mapping every digit byte to "0" and every other byte to " " (``bytes.translate``, at
# memory speed; a regular expression took longer than parsing the line).
_DIGIT_BYTES = bytes(ord("0") if ord("0") <= b <= ord("9") else ord(" ") for b in range(256))
_LONG_DIGITS = b"0" * 19


def parse_json(text: str):
    """The value of a JSON text, exactly as ``json.loads`` gives it, faster.

    orjson parses first (measured on PAQ's metadata lines: 0.37 s per 300,000 lines with this
    function's checks, 0.63 s with ``json.loads``). ``json.loads`` parses what orjson refuses
    and the standard library accepts (``NaN``, ``1e400``, lone surrogates, nesting deeper
    than 1,024) and any text with 19 digits in a row (orjson reads integers beyond 64 bits
    as floats); its error, a ``ValueError``, is raised for text that is not JSON at all.
    """
    data = text.encode("utf-8", "surrogatepass")
    if _LONG_DIGITS not in data.translate(_DIGIT_BYTES):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def json_lines(stream: BinaryIO, dataset: str, source_file: str) -> Iterator:
    """Parsed JSON objects of a JSON-lines file; bad lines become rejects.

    Yields ``(line_number, object)`` tuples, or tagged rejects (``bad_encoding``,
    ``bad_json``, ``not_an_object``) for ``dataset``. Blank lines are skipped.
    """
    for item in text_records(stream, dataset, source_file):
        if not isinstance(item, tuple):
            yield item
            continue
        number, text = item
        try:
            value = parse_json(text)
        except ValueError as exc:
            yield rejected(dataset, "bad_json", source_file=source_file, record_id=f"line {number}",
                           detail=f"not valid JSON: {exc}", excerpt=text)
            continue
        if not isinstance(value, dict):
            yield rejected(dataset, "not_an_object", source_file=source_file,
                           record_id=f"line {number}", detail="line is JSON but not an object",
                           excerpt=text)
            continue
        yield number, value


# Bytes of whole lines parsed at once by :func:`tsv_tables`.
TSV_BLOCK_BYTES = 8 << 20
# Ids of up to 18 digits always fit an int64.
_ID_DIGITS = 18
_ID_PATTERN = rf"^-?[0-9]{{1,{_ID_DIGITS}}}$"


def tsv_tables(stream: BinaryIO, dataset: str, source_file: str, names: tuple[str, ...],
               ids: tuple[str, ...] = (), *, block_bytes: int = TSV_BLOCK_BYTES,
               vectorised: bool = True) -> Iterator:
    """A TAB-separated file (no header, no quoting) as Arrow tables, one per block of lines.

    Args:
        stream: the file.
        dataset: dataset the rejects are counted under.
        source_file: the file's provenance name.
        names: the column names, in file order. When the last column is not an id it
            takes the rest of the line (a TAB inside it is kept).
        ids: the columns that hold integer ids (``int64``; the others are strings).
        block_bytes: bytes of whole lines parsed at once.
        vectorised: ``False`` reads every block line by line (the reference behaviour
            the vectorised parse is tested against).
    Yields:
        ``pa.Table`` batches, and tagged rejects: ``bad_encoding`` (a line that is not
        UTF-8) and ``malformed_line`` (a wrong number of columns, an id that is not an
        integer), with the line number. Blank lines are skipped.

    Each block is parsed by pyarrow's CSV reader (vectorised) when it is clean: no
    carriage return, every line with the right number of columns and valid UTF-8, every
    id plain digits. A block that is not is read line by line instead, so the result is
    the same either way and every bad line is named.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    types = {name: pa.string() for name in names}
    schema = pa.schema([(name, pa.int64() if name in ids else pa.string()) for name in names])
    parse = csv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                             escape_char=False, newlines_in_values=False)
    convert = csv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                 quoted_strings_can_be_null=False)
    limit = max_line_bytes()
    first_line = first_line_of(stream)
    # In a byte range of a file (LineRange) lines are counted from the range's start.
    start = range_start(stream)
    where = f" after byte {start:,}" if start else ""
    while True:
        block = stream.read(block_bytes)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += stream.readline(limit + 1)
        if first_line == 1 and not where and block.startswith(b"\xef\xbb\xbf"):
            block = block[3:]
        lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        table = None
        if vectorised and b"\r" not in block:
            try:
                table = csv.read_csv(pa.py_buffer(block), parse_options=parse, convert_options=convert,
                                     read_options=csv.ReadOptions(column_names=list(names),
                                                                  use_threads=False,
                                                                  block_size=len(block) + 1))
                for name in ids:
                    if table.num_rows and not pc.all(pc.match_substring_regex(table[name], _ID_PATTERN)).as_py():
                        raise ValueError(f"{name} is not an integer")
                table = table.cast(schema)
            except (pa.ArrowInvalid, ValueError):
                table = None
        if table is not None:
            progress.count_record(lines)
            if table.num_rows:
                yield table
        else:
            yield from _tsv_lines_table(io.BytesIO(block), dataset, source_file, first_line, schema,
                                        ids, where)
        first_line += lines


def _tsv_lines_table(stream, dataset, source_file, first_line, schema, ids, where=""):
    """One block of :func:`tsv_tables` read line by line: its rejects, then one table."""
    import pyarrow as pa

    names = schema.names
    columns = len(names)
    split = columns - 1 if names[-1] not in ids else -1
    rows = {name: [] for name in names}
    for item in text_records(stream, dataset, source_file, first_line, where):
        if not isinstance(item, tuple):
            yield item
            continue
        number, text = item
        fields = text.split("\t", split)
        problem = None
        if len(fields) != columns:
            problem = f"expected {columns} TAB-separated columns, found {len(fields)}"
        else:
            values = []
            for name, value in zip(names, fields):
                if name in ids:
                    value = parse_int(value, _ID_DIGITS)
                    if value is None:
                        problem = f"{name} is not an integer"
                        break
                values.append(value)
        if problem:
            yield rejected(dataset, "malformed_line", source_file=source_file,
                           record_id=f"line {number}{where}", detail=problem, excerpt=text[:300])
            continue
        for name, value in zip(names, values):
            rows[name].append(value)
    if rows[names[0]]:
        yield pa.table(rows, schema=schema)


def parse_int(value: str, max_digits: int | None = None) -> int | None:
    """An id from a text column as an int (surrounding spaces and a minus sign allowed), or
    ``None`` when it is not a plain integer (or has more than ``max_digits`` digits)."""
    value = value.strip()
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()):
        return None
    if max_digits is not None and len(digits) > max_digits:
        return None
    return int(value)


def json_items(stream: BinaryIO, prefix: str) -> Iterator:
    """Stream the values found at ``prefix`` of one (possibly huge) JSON document.

    Uses ijson's C parser: memory is bounded by the largest single value, not by the
    document. ``prefix`` follows ijson: ``"item"`` for the elements of a top-level array,
    ``"data.item"`` for the elements of the array under the key ``data``.

    Numbers with a fraction come back as ``float`` (not ``Decimal``). A UTF-8 BOM at the
    start is skipped, as :func:`text_lines` and :func:`read_json_document` do. A syntax
    error or a truncated document raises ``ijson.JSONError`` (or
    ``ijson.IncompleteJSONError``) after the values before it have been yielded.
    """
    import ijson

    for value in ijson.items(without_bom(stream), prefix, use_float=True):
        progress.count_record()
        yield value


_BOM = b"\xef\xbb\xbf"


def without_bom(stream: BinaryIO) -> BinaryIO:
    """``stream`` without a leading UTF-8 BOM (byte parsers such as ijson refuse it)."""
    head = stream.read(len(_BOM))
    if head == _BOM:
        return stream
    return io.BufferedReader(_Chained(head, stream), files.READ_BUFFER)


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
    def __init__(self, read_file, opener: _FileStreams, block_bytes: int | None = None, starts_record=None):
        self.read_file = read_file
        self.opener = opener
        self.block_bytes = block_bytes
        self.starts_record = starts_record

    def process(self, element):
        if isinstance(element, FileBlock):
            yield from self._read_block(element)
        elif isinstance(element, FileStripe):
            yield from self._read_stripe(element)
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
        try:
            with files.open_raw(block.path) as raw, progress.reading_block(path):
                yield from self._parse_block(raw, block.source_file, block.first_line, block.whole, context)
        except Exception as exc:
            yield self.opener.failed(exc, self.opener.relative(path))

    def _read_stripe(self, stripe: "FileStripe"):
        path, context = _unpack(stripe.item)
        # The file's own rejects (unreadable, no wanted member) are recorded by stripe 0.
        yield from self.opener.each(
            path, lambda stream, source_file: self._read_own_blocks(stripe, path, stream, source_file, context),
            context, file_rejects=stripe.index == 0)

    def _read_own_blocks(self, stripe: "FileStripe", path: str, stream, source_file: str, context):
        for index, first_line, data, whole in file_blocks(stream, self.block_bytes, self.starts_record):
            if index % stripe.count != stripe.index:
                continue
            # As for a block read from its scratch file: a failure fails this block only.
            try:
                yield from self._parse_block(io.BytesIO(data), source_file, first_line, whole, context)
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
class FileBlock:
    """Whole lines of one input file, cut from it by the worker that read it through and
    kept in a scratch file, so that several workers parse the file at once (see
    ``ReadFiles.cut_dir``).

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


@dataclass(frozen=True)
class FileStripe:
    """Every ``count``-th block of whole lines of one input file, from block ``index`` on.

    With several local worker processes, a file that would be cut into blocks is read
    through by ``count`` workers at once instead, its compression undone by each; each
    cuts it into the same blocks (:func:`file_blocks`) and parses its own: no block is
    written to disk, and no worker waits while another cuts (see ``ReadFiles.spread_by``).

    Attributes:
        item: the file as :class:`ReadFiles` lists it: a path or ``(path, context)``.
        index: the stripe's number, from 0 (stripe 0 records the file's own rejects).
        count: the number of stripes of the file.
    """

    item: object
    index: int
    count: int


class _CutIntoBlocks(beam.DoFn):
    """Cut every file (or wanted archive member) into :class:`FileBlock` s; byte ranges of
    plain files pass through as they are."""

    def __init__(self, opener: _FileStreams, cut_dir: str, cut_bytes: int, starts_record):
        self.opener = opener
        self.cut_dir = cut_dir
        self.cut_bytes = cut_bytes
        self.starts_record = starts_record

    def process(self, element):
        if isinstance(element, FileRange):
            yield element
            return
        path, context = _unpack(element)
        # A failure names the file, as when the file is read whole.
        yield from self.opener.each(path, lambda stream, source_file: self._cut(element, source_file, stream),
                                    context)

    def _cut(self, item, source_file: str, stream):
        for _index, first_line, data, whole in file_blocks(stream, self.cut_bytes, self.starts_record):
            yield self._write(item, source_file, first_line, data, whole)

    def _write(self, item, source_file: str, first_line: int, data: bytes, whole: bool) -> FileBlock:
        path = files.join(self.cut_dir, f"block-{uuid.uuid4().hex}")
        with FileSystems.create(path) as out:
            out.write(data)
        return FileBlock(item, path, source_file, first_line, whole)


# How a file that one worker cannot share by byte ranges is shared out (ReadFiles.spread_by):
# "stripes" on the local runner, "blocks" elsewhere; CORPUS_SPREAD_BY, where the pipeline is
# built, chooses one for every runner.
SPREAD_BY_ENV = "CORPUS_SPREAD_BY"
SPREAD_BY = ("blocks", "stripes")


def default_spread_by(options) -> str:
    """``CORPUS_SPREAD_BY`` if set, else ``stripes`` for the local runner (its workers share
    one machine: each can undo a file's compression for itself, and blocks would be written
    to its disk) and ``blocks`` for a remote one (any number of workers, each would
    decompress the whole file)."""
    from apache_beam.options.pipeline_options import StandardOptions

    chosen = os.environ.get(SPREAD_BY_ENV)
    if chosen:
        if chosen not in SPREAD_BY:
            raise ValueError(f"{SPREAD_BY_ENV}={chosen!r}: expected one of {', '.join(SPREAD_BY)}")
        return chosen
    return "stripes" if progress.is_local_runner(options.view_as(StandardOptions).runner) else "blocks"


def local_worker_count(options) -> int:
    """The number of workers of the local runner with ``options`` (``--direct_num_workers``,
    0 meaning one per core)."""
    from apache_beam.options.pipeline_options import DirectOptions

    workers = options.view_as(DirectOptions).direct_num_workers
    return (os.cpu_count() or 1) if workers == 0 else max(1, workers or 1)


def reads_in_parallel(options) -> bool:
    """Whether a pipeline with ``options`` reads with more than one worker: any remote
    runner, and the local one in ``multi_processing`` or ``multi_threading`` mode with
    ``--direct_num_workers`` other than 1."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    if not progress.is_local_runner(options.view_as(StandardOptions).runner):
        return True
    direct = options.view_as(DirectOptions)
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
        path = item[0] if isinstance(item, tuple) else item
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
            The blank- and empty-file checks do not apply to a split file.
        cut_dir: for line-oriented files, a scratch folder: when the pipeline reads with
            several workers (:func:`reads_in_parallel`), every file that is not split in
            byte ranges (a compressed file, an archive member) is shared out in blocks of
            whole lines (``cut_bytes`` each, see ``spread_by``). With ``"blocks"`` one
            worker reads the file through and only cuts it into blocks kept in this
            folder, which all workers then parse. A block reaches ``read_file`` as a
            :class:`BlockReader`, whose lines :func:`text_lines` and :func:`tsv_tables`
            number as in the file. A file of one block is read as a whole file. With one
            worker nothing is cut.
        cut_bytes: bytes of a block (default :func:`default_block_bytes`: 16 MB for blocks,
            4 MB for stripes).
        starts_record: for files whose records may span lines: whether a line can begin
            a record (see :func:`line_blocks`).
        spread_by: how a file to be cut is shared out: ``"blocks"`` (as above), or
            ``"stripes"``: each of the W workers reads the file through, cuts it into the
            same blocks in memory and parses every W-th (:class:`FileStripe`), so nothing
            is written to ``cut_dir`` and nobody waits for a cut; a file smaller than half
            a worker's share of the bytes is read whole by one worker instead. Default
            :func:`default_spread_by` (stripes on the local runner, where W is known and
            the workers share a machine). Blocks and stripes give the same records, with
            the same line numbers, as reading the file whole.
    Returns:
        A :class:`ReadOutput`: ``.records``, ``[REJECTED]`` and ``[tag]`` for each of ``outputs``.
    """

    def __init__(self, paths: list, read_file: Callable, *, input_root: str, dataset: str,
                 strict: bool = False, decompress: bool = True, members: Callable | None = None,
                 output_type=None, split_bytes: int | None = None, cut_dir: str | None = None,
                 cut_bytes: int | None = None, starts_record: Callable[[bytes], bool] | None = None,
                 members_take_context: bool = False, outputs: tuple[str, ...] = (),
                 spread_by: str | None = None):
        super().__init__()
        if spread_by not in (None, *SPREAD_BY):
            raise ValueError(f"spread_by={spread_by!r}: expected one of {', '.join(SPREAD_BY)}")
        self.spread_by = spread_by
        self.members_take_context = members_take_context
        self.outputs = tuple(outputs)
        self.output_type = output_type
        self.split_bytes = split_bytes
        self.cut_dir = cut_dir
        self.cut_bytes = cut_bytes
        self.starts_record = starts_record
        self.paths = sorted(paths, key=lambda item: item[0] if isinstance(item, tuple) else item)
        self.read_file = read_file
        self.input_root = input_root
        self.dataset = dataset
        self.strict = strict
        self.decompress = decompress
        self.members = members

    def expand(self, pbegin):
        opener = _FileStreams(self.input_root, self.dataset, self.strict, self.decompress, self.members,
                              self.members_take_context)
        options = pbegin.pipeline.options
        items = split_plain_files(self.paths, self.split_bytes) if self.split_bytes else self.paths
        shared_out = bool(self.cut_dir) and reads_in_parallel(options) and self._any_to_cut(items)
        striped = shared_out and (self.spread_by or default_spread_by(options)) == "stripes"
        block_bytes = self.cut_bytes or default_block_bytes(striped)
        read = beam.ParDo(_ReadOneFile(self.read_file, opener, block_bytes, self.starts_record))
        if self.output_type is not None:
            read = read.with_output_types(self.output_type)
        if striped:
            items = self._striped(items, local_worker_count(options), block_bytes)
        listed = pbegin | "List" >> beam.Create(items) | "Spread" >> beam.Reshuffle()
        if not shared_out or striped:  # no cutting step: each element is read where it lands
            result = listed | "Read" >> read.with_outputs(REJECTED, *self.outputs, main="records")
            return ReadOutput(result.records, result[REJECTED], {tag: result[tag] for tag in self.outputs})
        cut = listed | "Cut" >> beam.ParDo(_CutIntoBlocks(
            opener, self.cut_dir, block_bytes, self.starts_record)
        ).with_outputs(REJECTED, main="parts")
        result = cut.parts | "SpreadBlocks" >> beam.Reshuffle() | "Read" >> read.with_outputs(
            REJECTED, *self.outputs, main="records")
        return ReadOutput(result.records, (cut[REJECTED], result[REJECTED]) | "Rejects" >> beam.Flatten(),
                          {tag: result[tag] for tag in self.outputs})

    def _striped(self, items: list, workers: int, block_bytes: int) -> list:
        """``items`` with each file that would be cut replaced by its ``workers`` stripes,
        when it holds more than half a worker's share of all the bytes to read; the other
        files (and the byte ranges) are read whole, one worker each. The stripes of a file
        are listed together, so that the local runner, which deals a stage's elements to its
        workers in turn, gives them to different workers."""
        sizes = [item.end - item.start if isinstance(item, FileRange) else files.size_of(_unpack(item)[0])
                 for item in items]
        share = sum(sizes) / (2 * workers)
        striped = []
        for item, size in zip(items, sizes):
            if isinstance(item, FileRange) or size <= share or not self._may_cut(item, size, block_bytes):
                striped.append(item)
            else:
                striped.extend(FileStripe(item, index, workers) for index in range(workers))
        return striped

    def _may_cut(self, item, size: int, block_bytes: int) -> bool:
        """Whether a listed file (not a byte range) may be cut: with byte ranges in use, a
        plain file of at most one block is read as it is."""
        return not (self.split_bytes and size <= block_bytes and files.is_plain(_unpack(item)[0]))

    def _any_to_cut(self, items: list) -> bool:
        """Whether any item may be worth cutting into blocks. When the files are split in
        byte ranges, the ranges and the plain files of at most one block are read as they
        are (cutting would pass them on unchanged, at the price of a stage and a shuffle);
        otherwise whether a file is compressed is only looked at when it is read."""
        if not self.split_bytes:
            return bool(items)
        block = self.cut_bytes or default_block_bytes()
        return any(self._may_cut(item, files.size_of(_unpack(item)[0]), block)
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


def read_json_document(stream: BinaryIO):
    """Parse a whole (single-document) JSON file from a stream; for files of modest size
    such as SQuAD. Raises ``ValueError`` with the position of a syntax error."""
    return json.load(io.TextIOWrapper(stream, encoding="utf-8-sig"))


class UnsafeXML(ValueError):
    """An XML document that declares a DTD (entities could expand without bound)."""


_PROLOG_BYTES = 1 << 16


def iter_xml_elements(stream: BinaryIO, tag: str, fields: tuple[str, ...] | None = None,
                      where: tuple[str, frozenset] | None = None) -> Iterator[dict]:
    """Stream the attribute dicts of every ``<tag>`` element of an XML document.

    ``fields`` limits each dict to those attributes (absent ones are left out), which saves
    copying large attributes nobody reads. ``where=(attribute, values)`` yields only the
    elements whose ``attribute`` is one of ``values`` (the others are skipped before any
    copy: StackExchange's answers when only questions are wanted).

    Safe for untrusted input: a document that declares a DTD (``<!DOCTYPE``) is refused
    before parsing, because lxml expands internal entities inside attribute values even with
    entity resolution off (a "billion laughs" file would blow up memory); external entities,
    DTD loading and network access are off as well. Elements are cleared as they are read,
    so memory stays flat however long the document is.

    Raises:
        UnsafeXML: the document declares a DTD.
        lxml.etree.XMLSyntaxError: the document is malformed or truncated; the elements
            before the problem have been yielded. ``.position`` gives (line, column).
    """
    from lxml import etree

    prolog = stream.read(_PROLOG_BYTES)
    root_start = _first_element_start(prolog)
    if b"<!DOCTYPE" in prolog[:root_start].upper():
        raise UnsafeXML("the document declares a DTD; dump files never do, refusing to parse it")
    whole = io.BufferedReader(_Chained(prolog, stream), files.READ_BUFFER)
    parser = etree.iterparse(
        whole, events=("end",), tag=tag, resolve_entities=False, no_network=True,
        load_dtd=False, huge_tree=True, remove_comments=True, remove_pis=True)
    where_name, where_values = where or (None, None)
    uncounted = 0
    for _, element in parser:
        uncounted += 1
        if uncounted == _COUNT_EVERY:
            progress.count_record(uncounted)
            uncounted = 0
        # element.get, not element.attrib: the attribute proxy and its two lookups per
        # field made parsing a 160 MB Posts.xml 6% slower (1.20 against 1.13 s).
        get = element.get
        if where_name is None or get(where_name) in where_values:
            if fields is None:
                yield dict(element.attrib)
            else:
                values = {}
                for name in fields:
                    value = get(name)
                    if value is not None:
                        values[name] = value
                yield values
        element.clear(keep_tail=False)
        parent = element.getparent()
        if parent is not None:
            while element.getprevious() is not None:
                del parent[0]
    progress.count_record(uncounted)


# Elements counted for the progress report at once (a call per element costs as much as
# the attribute copy).
_COUNT_EVERY = 1024


def _first_element_start(data: bytes) -> int:
    """Offset of the first start tag (``<`` followed by a name character) in ``data``."""
    position = 0
    while True:
        position = data.find(b"<", position)
        if position < 0 or position + 1 >= len(data):
            return len(data)
        following = data[position + 1:position + 2]
        if following.isalpha() or following == b"_":
            return position
        position += 1


class _Chained(io.RawIOBase):
    """Bytes already read, followed by the rest of a stream."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)
