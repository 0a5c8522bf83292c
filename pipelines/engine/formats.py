"""Record formats a source's ``read_file`` builds on: text records, JSON lines, JSON
documents and streamed JSON items, TSV read into Arrow tables, and XML rows read safely
(no DTD, no entity expansion, no network).

Each helper yields records and tagged rejects (:func:`pipelines.corpus.rejects.rejected`)
for the lines it cannot use, and counts what it reads for the progress report.
"""
from __future__ import annotations

import io
import json
from typing import BinaryIO, Iterable, Iterator

import orjson

from pipelines.corpus.rejects import rejected
from pipelines.engine import files, progress
from pipelines.engine.lines import (first_line_of, is_block, max_line_bytes,
                                    range_start, stream_is_empty, text_lines)

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


def read_json_document(stream: BinaryIO):
    """Parse a whole (single-document) JSON file from a stream; for files of modest size
    such as SQuAD. Raises ``ValueError`` with the position of a syntax error."""
    return json.load(io.TextIOWrapper(stream, encoding="utf-8-sig"))


class UnsafeXML(ValueError):
    """An XML document that declares a DTD (entities could expand without bound)."""


_PROLOG_BYTES = 1 << 16


def iter_xml_elements(stream: BinaryIO, tag: str, fields: tuple[str, ...] | None = None,
                      where: tuple[str, frozenset] | None = None, passed: dict | None = None) -> Iterator[dict]:
    """Stream the attribute dicts of every ``<tag>`` element of an XML document.

    ``fields`` limits each dict to those attributes (absent ones are left out), which saves
    copying large attributes nobody reads. ``where=(attribute, values)`` yields only the
    elements whose ``attribute`` is one of ``values`` (the others are skipped before any
    copy: StackExchange's answers when only questions are wanted); ``passed``, when given,
    counts those others by their value of ``attribute`` (``None`` when absent).

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
        selected = where_name is None or get(where_name) in where_values
        if not selected and passed is not None:
            value = get(where_name)
            passed[value] = passed.get(value, 0) + 1
        if selected:
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
