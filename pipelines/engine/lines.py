"""Lines of upstream files: text lines with their numbers, byte ranges of big plain files,
and blocks of whole lines of a file cut so that several workers parse it.

A reader names a line by its number in the file wherever it is read from: a byte range
(:class:`LineRange`) numbers from its start, a block (:class:`BlockReader`) from its first
line. The longest line read is a limit of the run (:func:`max_line_bytes`).
"""
from __future__ import annotations

import io
from typing import BinaryIO, Callable, Iterator

from pipelines.engine import files, options, progress


class LineTooLong(ValueError):
    """A line longer than the reader accepts; the message gives its number."""


def max_line_bytes() -> int:
    """The longest line :func:`text_lines` reads: the run's ``--max_line_bytes``."""
    return options.current().max_line_bytes


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
                              "(--max_line_bytes allows longer lines)")
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


class LineRange(io.RawIOBase):
    """The whole lines of a seekable binary stream whose first byte lies in
    ``[start, end)``, as a stream (see :func:`range_lines`): the line that begins before
    ``start`` is left to the range before, the line that crosses ``end`` is read to its end.

    Attributes:
        start: the range's first byte in the file; readers name a line inside a range by
            its number counted from there (the line numbers of the file are not known).
        first_line_byte: where the range's first whole line begins in the file.
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
        self.first_line_byte = self._position
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


def range_lines(stream) -> Iterator[tuple[int, bytes]]:
    """The lines of one byte range of a file (a :class:`LineRange`, possibly buffered) with
    the byte offset of each in the file, line endings kept: a reader of a file without line
    numbers names a line by its offset.

    Raises:
        LineTooLong: as :func:`text_lines`.
    """
    raw = getattr(stream, "raw", stream)
    position, limit = raw.first_line_byte, max_line_bytes()
    for line in iter(lambda: stream.readline(limit + 1), b""):
        if len(line) > limit:
            raise LineTooLong(f"the line at byte {position:,} is longer than {limit:,} bytes")
        progress.count_record()
        yield position, line
        position += len(line)


def is_piece(stream) -> bool:
    """Whether ``stream`` is one piece of a file shared out among workers: a byte range
    (:class:`LineRange`) or a block (:class:`BlockReader`), not the whole file."""
    return range_start(stream) is not None or is_block(stream)


def located_lines(stream) -> Iterator[tuple[int, bytes]]:
    """The lines of one piece of a file (see :func:`is_piece`), line endings kept, each with
    where it lies in the file: the byte offset of the line in a byte range (whose line
    numbers are not known), its line number in a block; :func:`location` says which.

    Raises:
        LineTooLong: as :func:`text_lines`.
    """
    if range_start(stream) is not None:
        yield from range_lines(stream)
        return
    limit, uncounted = max_line_bytes(), 0
    for number, line in enumerate(iter(lambda: stream.readline(limit + 1), b""), start=first_line_of(stream)):
        if len(line) > limit:
            raise LineTooLong(f"line {number:,} is longer than {limit:,} bytes "
                              "(--max_line_bytes allows longer lines)")
        uncounted += 1
        if uncounted == _COUNT_EVERY:  # a progress call per line costs as much as the loop
            progress.count_record(uncounted)
            uncounted = 0
        yield number, line
    progress.count_record(uncounted)


def location(stream, where: int) -> str:
    """Where a line of :func:`located_lines` lies, in words: ``byte N`` or ``line N``."""
    return f"byte {where}" if range_start(stream) is not None else f"line {where}"


# Lines counted for the progress report at once.
_COUNT_EVERY = 1024


# -- blocks: one file's lines cut by the worker that reads it through, parsed by many ----------

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


def line_blocks(stream: BinaryIO, block_bytes: int,
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
                          "(--max_line_bytes allows longer lines)")
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
