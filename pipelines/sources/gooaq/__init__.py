"""GooAQ (Google "People also ask" questions and answers): (search query, answer) pairs.

Files (under ``IN/gooaq/``, from github.com/allenai/gooaq ``data/``):
    ``gooaq.jsonl``   about 5M rows, one JSON object per line, keys ``id`` (int),
                      ``question`` (str), ``short_answer`` (str|null), ``answer``
                      (str|null), ``answer_type`` (str), ``answer_url`` (str|null)
    ``split.json``    ``{"dev": [id, ...], "test": [id, ...], "train": [[id, similarity], ...]}``
                      (train entries are ``[id, similarity]`` pairs)
Both are found at any depth below the folder by name, optionally with a compression
suffix (``gooaq.jsonl.gz``, ``split.json.bz2``, ...; the compression itself is sniffed
from the bytes). Other files in the folder are not read. A second ``gooaq.jsonl`` (a
copy) is harmless: repeated ids are rejected as ``duplicate_id``.

Parse: ``gooaq.jsonl`` line by line (``bad_encoding``, ``bad_json``, ``not_an_object``
rejects from :func:`pipelines.engine.read.json_lines`); a row needs an integer ``id``
(``bad_id``, also for an id beyond 64 bits), a string ``question`` and an ``answer`` that is a string or null
(``bad_field``); a file of blank lines only is a reject ``blank_file``. ``split.json`` is
one document of ~3.1M entries; it is streamed with ijson (:func:`iter_split_entries`),
never loaded whole, and every entry becomes a keyed element. An entry that is not an
integer id of 64 bits (or ``[id, similarity]``) is a reject ``bad_split_entry``. From the core's
reader: a file without any byte is ``empty_file``, and one that breaks off (or is not a
JSON object) ``unreadable_file``, the entries before the problem being kept.

The split (:func:`split_decision`) meets the rows in a partitioned hash join by id
(:class:`pipelines.engine.join.HashJoin`: both sides spilled in runs, one task per hash
range, :func:`join_split`), never a dict of all ids nor the runner's shuffle: a row is a
candidate when its id is listed under ``train`` and under no other
split. Rows held out in dev/test are not candidates by definition and are skipped without
a reject (Beam metric ``gooaq/held_out``). Rows whose id is not in ``split.json`` at all
are rejects ``not_in_split`` (mostly the knowledge and conversion types, which the
release leaves out of every split). When one id has several rows, the first by
(file, line) is used and the others are rejects ``duplicate_id``.

Pair rule (``docs/corpus-spec.md``): pair = (question, answer) where the long answer
exists, one function each:
    :func:`parse_collection`   a ``collection`` answer is a Python list literal inside a
                               string; parsed with ``ast.literal_eval`` (nothing is ever
                               evaluated or executed), items joined with a space
    :func:`long_answer_text`   the long answer of a row, or the reason it has none
    :func:`gooaq_pair`         gooaq: (question, long answer text)
Rows whose ``answer`` is null (``knowledge``, ``unit_conv``, ``time_conv``,
``curr_conv``, ... which only have a ``short_answer``) are rejects ``no_long_answer``.
Short answers are not used, not even as a fallback: they are entity names and numbers
("Al", "340.957", "1e+18 Joule"), not answer passages, and the spec's pair is the long
answer. A ``collection`` answer that is not a list of strings is a reject
``bad_collection_answer``.

Records (:mod:`pipelines.corpus.accounting`): a record is one line of ``gooaq.jsonl``. It
ends as a pair, a reject (parse, ``not_in_split``, ``duplicate_id``, ``no_long_answer``,
``bad_collection_answer``) or the skip ``held_out`` (a dev/test row). Entries of
``split.json`` are not records, except a ``bad_split_entry``, which is one record read and
rejected; an entry without a row in ``gooaq.jsonl`` is not a record either.

Documented count: 3,012,496 pairs. The HF release has 3,112,679 train rows; the
difference (100,183) is not explained upstream. Train rows without a long answer and
rows whose texts are empty after normalisation are the candidates for it (unverified);
the manifest reports the measured difference.

Source options: none.
"""
from __future__ import annotations

import ast
import posixpath
import re
from collections import defaultdict

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from pipelines.corpus import accounting
from pipelines.corpus.rejects import REJECTED, layout_rejects, make_reject, rejected
from pipelines.corpus.schema import make_row, rows_as_table, web_link
from pipelines.corpus.source import Source, SourceContext, SourceOutput
from pipelines.engine import (GatherTables, HashJoin, ReadFiles, files, json_lines, stream_is_empty, unless_blank,
                              without_bom)

DATASET = "gooaq"
TRAIN = "train"
COLLECTION = "collection"
_COMPRESSION_SUFFIX = r"(?:\.(?:gz|bz2|xz|zst))?"
DATA_FILE = re.compile(rf"^gooaq\.jsonl{_COMPRESSION_SUFFIX}$")
SPLIT_FILE = re.compile(rf"^split\.json{_COMPRESSION_SUFFIX}$")
# Excerpt of a rejected row kept in the dead-letter output: the id finds the full row.
EXCERPT_FIELDS = ("id", "question", "answer_type")
# The two sides of the split join: the rows of gooaq.jsonl, and the entries of split.json.
ROWS = pa.schema([("id", pa.int64()), ("question", pa.string()), ("answer", pa.string()),
                  ("answer_type", pa.string()), ("answer_url", pa.string()), ("source_file", pa.string()),
                  ("line", pa.int64())])
SPLITS = pa.schema([("id", pa.int64()), ("split", pa.string())])
_INT64 = range(-(1 << 63), 1 << 63)


# -- split.json ------------------------------------------------------------------------

class SplitFileError(ValueError):
    """``split.json`` is not a JSON object."""


def iter_split_entries(stream):
    """Entries of ``split.json`` as ``(split_name, entry)``, streamed in one pass.

    The document is one object holding a list per split. The core's
    :func:`~pipelines.engine.read.json_items` streams the values of one prefix only
    (``"train.item"``), while the held-out rule needs the list of every split, so the
    same ijson parser is used here on its parse events: the events inside each top-level
    list are handed on as the items of one array (:func:`_list_item_events`), and ijson
    builds each entry as ``json_items`` would. Values that are not lists are skipped.

    Args:
        stream: binary stream of the document ``{"name": [entry, ...], ...}``.
    Yields:
        One tuple per list item, in file order.
    Raises:
        SplitFileError: the document is not an object. ``ijson.JSONError``: it breaks
            off or is not JSON; the entries before the problem have been yielded.
    """
    import ijson

    current = {"split": None}
    events = ijson.parse(without_bom(stream), use_float=True)
    for entry in ijson.items(_list_item_events(events, current), "item"):
        yield current["split"], entry


def _list_item_events(events, current: dict):
    """The parse events inside the top-level lists of the document, re-prefixed as the
    items of one array (``"train.item.item"`` becomes ``"item.item"``); ``current["split"]``
    names the list they come from."""
    in_list = False
    for prefix, event, value in events:
        if prefix == "":
            if event == "map_key":
                current["split"] = value
            elif event not in ("start_map", "end_map"):
                raise SplitFileError("split.json is not a JSON object of split lists")
            continue
        if prefix == current["split"]:
            if event == "start_array":
                in_list = True
            elif event == "end_array":
                in_list = False
            continue
        if in_list:
            yield prefix[len(current["split"]) + 1:], event, value


def split_entry_id(entry) -> int | None:
    """The id of a split entry: an integer, or the first item of ``[id, similarity]``."""
    if isinstance(entry, list) and entry:
        entry = entry[0]
    if isinstance(entry, int) and not isinstance(entry, bool) and entry in _INT64:
        return entry
    return None


def read_split_file(stream, source_file: str):
    """Read one ``split.json``: yield its :data:`SPLITS` entries and the rejects. A document that
    breaks off raises after its entries so far; :class:`ReadFiles` keeps them and records
    the file as ``unreadable_file``."""
    if stream_is_empty(stream):
        return  # ReadFiles records the file as empty_file
    for number, (name, entry) in enumerate(iter_split_entries(stream), start=1):
        entry_id = split_entry_id(entry)
        if entry_id is None:
            # a record only as a reject
            yield rejected(DATASET, "bad_split_entry", counts_as_read=True, source_file=source_file,
                           record_id=f"{name}[{number}]", excerpt=entry,
                           detail="split entry is not an integer id or [id, similarity]")
            continue
        yield {"id": entry_id, "split": name}


# -- gooaq.jsonl -----------------------------------------------------------------------

def _kind(record: dict, key: str) -> str:
    return type(record[key]).__name__ if key in record else "missing"


def record_problem(record: dict) -> tuple[str, str] | None:
    """Why a parsed line is not a usable GooAQ row, as ``(reason, detail)``, or ``None``."""
    record_id = record.get("id")
    if not isinstance(record_id, int) or isinstance(record_id, bool):
        return "bad_id", f"'id' is {_kind(record, 'id')}, not an integer"
    if record_id not in _INT64:
        return "bad_id", "'id' is an integer beyond 64 bits"
    if not isinstance(record.get("question"), str):
        return "bad_field", f"'question' is {_kind(record, 'question')}, not a string"
    answer = record.get("answer")
    if answer is not None and not isinstance(answer, str):
        return "bad_field", f"'answer' is {_kind(record, 'answer')}, not a string or null"
    answer_type = record.get("answer_type")
    if answer_type is not None and not isinstance(answer_type, str):
        return "bad_field", f"'answer_type' is {_kind(record, 'answer_type')}, not a string"
    return None


def read_data_file(stream, source_file: str):
    """Read one ``gooaq.jsonl``: yield its :data:`ROWS` records and the rejects; a file of
    blank lines only is a ``blank_file`` reject."""
    return unless_blank(_data_rows(stream, source_file), stream, DATASET, source_file)


def _data_rows(stream, source_file: str):
    for item in json_lines(stream, DATASET, source_file):
        accounting.count_read(DATASET)
        if isinstance(item, beam.pvalue.TaggedOutput):
            yield item
            continue
        number, record = item
        problem = record_problem(record)
        if problem:
            yield rejected(DATASET, problem[0], source_file=source_file,
                           record_id=str(record.get("id", f"line {number}")), detail=problem[1],
                           excerpt=record)
            continue
        yield {
            "id": record["id"], "question": record["question"], "answer": record.get("answer"),
            "answer_type": record.get("answer_type") or "", "answer_url": record.get("answer_url"),
            "source_file": source_file, "line": number}


# -- pair rules ------------------------------------------------------------------------

def split_decision(split_names) -> str:
    """What the split listing of an id makes of its row: ``train`` (a candidate),
    ``held_out`` (listed under dev, test or any split other than train, even if also
    under train: held-out ids must never leak into training) or ``unlisted``."""
    names = set(split_names)
    if not names:
        return "unlisted"
    return TRAIN if names == {TRAIN} else "held_out"


def parse_collection(answer: str) -> list[str]:
    """The items of a ``collection`` answer, e.g. ``"['Step 1: ...', \\"Step 2: ...\\"]"``.

    The list is a Python literal (quotes mixed as Python's repr writes them), so it is
    parsed with ``ast.literal_eval``, which accepts literals only and never calls or
    evaluates anything. Empty items are dropped.

    Raises:
        ValueError: the string is not a list (or tuple) of strings.
    """
    try:
        value = ast.literal_eval(answer.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python list literal ({type(exc).__name__})") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"literal is a {type(value).__name__}, not a list")
    if not all(isinstance(item, str) for item in value):
        raise ValueError("list items are not all strings")
    return [item.strip() for item in value if item.strip()]


def long_answer_text(answer: str | None, answer_type: str) -> tuple[str | None, str, str]:
    """The long answer of a row as ``(text, "", "")``, or ``(None, reason, detail)``.

    ``collection`` answers are parsed (:func:`parse_collection`) and their items joined
    with a space (each item is a sentence or step, most end with a full stop); every other
    type's ``answer`` is the text itself. A null answer means the row has only a short
    answer: reject ``no_long_answer``.
    """
    if answer is None:
        return None, "no_long_answer", f"answer_type {answer_type!r} has no long answer (only short_answer)"
    if answer_type == COLLECTION:
        try:
            return " ".join(parse_collection(answer)), "", ""
        except ValueError as exc:
            return None, "bad_collection_answer", f"collection answer: {exc}"
    return answer, "", ""


def gooaq_pair(record: dict, answer_text: str) -> dict:
    """gooaq: (search question, long answer text), linked to the page the answer was taken
    from (``answer_url``) where the row gives one."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, record["question"], answer_text, source_file=record["source_file"],
                    record_id=str(record["id"]), attribution_url=web_link(record.get("answer_url")))


def _excerpt(record: dict) -> dict:
    return {key: record[key] for key in EXCERPT_FIELDS}


def join_split(tables: dict):
    """:class:`~pipelines.engine.HashJoin` function: the rows of one task's ids with their
    split listings (:func:`split_outcomes`); an id listed in split.json without a row in
    gooaq.jsonl gives nothing.

    Args:
        tables: ``{"rows": ROWS, "splits": SPLITS}``.
    """
    rows, splits = tables["rows"], tables["splits"]
    if rows.num_rows == 0:
        return
    listed = defaultdict(set)
    for entry_id, name in zip(splits["id"].to_pylist(), splits["split"].to_pylist()):
        listed[entry_id].add(name)
    records = defaultdict(list)
    for record in rows.to_pylist():
        records[record["id"]].append(record)
    yield from rows_as_table(item for row_id in sorted(records)
                             for item in split_outcomes(records[row_id], listed.get(row_id, ())))


def split_outcomes(records: list[dict], split_names):
    """The rows of one id with the splits that list it: the pair, or rejects, or nothing."""
    records = sorted(records, key=lambda r: (r["source_file"], r["line"]))
    decision = split_decision(split_names)
    if decision == "held_out":
        Metrics.counter(DATASET, "held_out").inc(len(records))
        accounting.count_skipped(DATASET, "held_out", len(records))
        return
    if decision == "unlisted":
        for record in records:
            yield rejected(DATASET, "not_in_split", source_file=record["source_file"],
                           record_id=str(record["id"]), excerpt=_excerpt(record),
                           detail="id is in no split of split.json")
        return
    first, *repeated = records
    for record in repeated:
        yield rejected(DATASET, "duplicate_id", source_file=record["source_file"],
                       record_id=str(record["id"]), excerpt=_excerpt(record),
                       detail=f"id already used by {first['source_file']} line {first['line']}")
    text, reason, detail = long_answer_text(first["answer"], first["answer_type"])
    if text is None:
        yield rejected(DATASET, reason, source_file=first["source_file"], record_id=str(first["id"]),
                       excerpt={**_excerpt(first), "answer": first["answer"]}, detail=detail)
    else:
        yield gooaq_pair(first, text)


class GooAQ(Source):
    name = "gooaq"
    counts_records = True
    folder = "gooaq"
    datasets = (DATASET,)
    description = "GooAQ gooaq.jsonl with the train ids of split.json"

    def find_files(self, ctx: SourceContext) -> tuple[list[str], list[str]]:
        """Paths of the ``gooaq.jsonl`` and ``split.json`` files below the folder."""
        data, splits = [], []
        for path, _size in files.list_dir(ctx.source_dir):
            name = posixpath.basename(path)
            if DATA_FILE.match(name):
                data.append(path)
            elif SPLIT_FILE.match(name):
                splits.append(path)
        return data, splits

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        data, splits = self.find_files(ctx)
        wanted = set(data) | set(splits)
        return [(path, size) for path, size in files.list_dir(ctx.source_dir) if path in wanted]

    def expand(self, pipeline: beam.Pipeline, ctx: SourceContext) -> SourceOutput:
        data, splits = self.find_files(ctx)
        # gooaq.jsonl is one file of ~5M lines: with several workers it is cut into blocks
        # that all of them parse (the split document is one JSON value and read whole).
        rows = pipeline | "gooaq/ReadRows" >> ReadFiles(
            data, read_data_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict,
            cut_lines=True)
        split = pipeline | "gooaq/ReadSplit" >> ReadFiles(
            splits, read_split_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict)
        joined = (
            {"rows": rows.records | "gooaq/RowTables" >> beam.ParDo(GatherTables(ROWS)),
             "splits": split.records | "gooaq/SplitTables" >> beam.ParDo(GatherTables(SPLITS, rows_per_table=1 << 16))}
            | "gooaq/JoinSplit" >> HashJoin(join_split, keys={"rows": "id", "splits": "id"},
                                            schemas={"rows": ROWS, "splits": SPLITS})
        )
        rejects = [rows[REJECTED], split[REJECTED], joined[REJECTED]]
        missing = [make_reject(DATASET, reason, source_file=ctx.relative(ctx.source_dir), detail=detail)
                   for reason, found, detail in (
            ("missing_data_file", data, "no gooaq.jsonl below the folder: nothing to read"),
            ("missing_split_file", splits, "no split.json below the folder: no row is in the train "
                                           "split, every row is rejected as not_in_split"),
        ) if not found]
        if missing:
            rejects.append(layout_rejects(pipeline, "gooaq/MissingFiles", missing))
        return SourceOutput(rows={DATASET: joined.main}, rejects=rejects)


SOURCE = GooAQ()
