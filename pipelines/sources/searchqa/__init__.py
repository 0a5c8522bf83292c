"""SearchQA (Dunn et al. 2017): Jeopardy! clues paired with their top search snippets.

Files (under ``IN/searchqa/``), both published layouts, one JSON document per clue:
    ``data_json/{train,val,test}.zip``      the ``train_test_val`` release as downloaded;
                                            each zip's members are streamed in one pass
    ``data_json/{train,val,test}/<name>.json``  the same, unpacked
    ``jeopardy/<range dir>/<name>.json``    the ``raw_jeopardy`` release (all 216,757
                                            clues, no split); ``jeopardy.zip`` too
File names are ``<id:06d>-<show>_<round>_<category>_<value>.json``. Any ``*.zip`` below
the folder is read as an archive (its ``.json`` members are the clues); any ``*.json``
file (also gzip/bz2/xz/zstd-compressed, sniffed from the bytes) is one clue; other files
are not read. A clue's split is the ``train``/``val``/``test`` folder or zip it sits in,
and ``jeopardy`` when it sits in neither (the raw layout).

Parse: each file is a small JSON object (pretty-printed or on one line, key order
varies): ``id`` (int), ``question`` (the clue), ``answer``, ``category``, ``air_date``,
``round``, ``value``, ``show_number`` and ``search_results`` (list of ``{url, snippet,
title, related_links}`` in rank order, up to ~50). Rejects while parsing:
``bad_encoding`` (not UTF-8), ``bad_json``, ``not_an_object``, ``malformed_record`` (no
usable id, a clue that is not a string, ``search_results`` that is not a list),
``blank_file`` (only whitespace); from the core's reader ``empty_file`` (no byte at all),
``unreadable_file`` (a file or zip that cannot be read) and ``no_member`` (a zip without
any clue of a selected split). Every file and every zip is one element of the read.

Duplicates: the same clue can arrive more than once (the layouts overlap, and in the
published fixture ``val`` and ``test`` hold the same files). Clues are keyed by ``id``
(the JSON field; the file name's leading number when the field is absent) and their
copies meet in one task of a :class:`~pipelines.engine.HashJoin` with a single side
(spilled to disk, so that no runner holds all the clues in memory); the copy kept is the
first by split (``train``, ``val``, ``test``, ``jeopardy``) and then by file name, so the
choice does not depend on reading order. Every other copy is a ``duplicate_clue`` reject.

Pair rule (one function, :func:`merge_top_snippets`):
    searchqa: (clue, the first ``top_k`` = 5 non-empty snippets in rank order, joined
    with a space). Project rule: results without a snippet (absent, ``null``, not a
    string, or only whitespace) are skipped, so a clue with enough results always gets
    five snippets; snippets are plain text (they quote pages, including literal ``<tag>``
    text), so they are not rendered as HTML. A clue with no snippet at all is a
    ``no_snippets`` reject, an empty clue an ``empty_clue`` reject.

Documented count: 582,261, more than the 216,757 raw clues, while this rule gives at most
one row per clue. How the original reached that number is unresolved (the registry notes
it), so the measured count stays far below it and the report shows the difference.
All splits are read by default, since even all of them cannot reach the documented count.

Records (:mod:`pipelines.corpus.accounting`): a record is one clue file (a loose file or a
zip member). It ends as a row or one reject: a parse reject, a ``duplicate_clue`` copy,
``empty_clue`` or ``no_snippets``. No record is skipped: clues of unselected splits are
never read.

Source options (``--source-option searchqa.<key>=<value>``):
    ``splits``  comma-separated, of ``train``, ``val``, ``test``, ``jeopardy`` (default:
                all four)
    ``top_k``   how many snippets are merged (default 5)
"""
from __future__ import annotations

import functools
import posixpath
import re
from collections import defaultdict

import apache_beam as beam
import pyarrow as pa

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_text
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import make_row, rows_as_table
from pipelines.corpus.source import Source, SourceContext, SourceOutput, names_from, positive_int
from pipelines.engine import GatherTables, HashJoin, ReadFiles, blank_file, files, parse_json, text_key

DATASET = "searchqa"
SPLITS = ("train", "val", "test", "jeopardy")
RAW_SPLIT = "jeopardy"
DEFAULT_TOP_K = 5
# A clue file is a few KB; anything far larger is not a SearchQA clue.
MAX_CLUE_BYTES = 16 << 20
RULE_REJECT_EXCERPT_CHARS = 300
# A parsed clue, as its copies are spilled and joined; ``key`` is the id's text_key.
CLUES = pa.schema([("key", pa.int64()), ("id", pa.string()), ("split", pa.string()),
                   ("source_file", pa.string()), ("clue", pa.string()), ("snippets", pa.string())])

_JSON_NAME = re.compile(r"\.json(?:\.(?:gz|bz2|xz|zst))?$", re.I)
_LEADING_ID = re.compile(r"^(\d+)-")


# -- parsing ---------------------------------------------------------------------------

def split_of(path: str) -> str:
    """The split a clue file belongs to: the ``train``/``val``/``test`` folder or zip in
    its path (nearest first), else ``jeopardy`` (the raw layout, which has no split)."""
    parts = [part[:-4] if part.lower().endswith(".zip") else part
             for part in re.split(r"[/!]", path)[:-1]]
    for part in reversed(parts):
        if part in SPLITS[:3]:
            return part
    return RAW_SPLIT


def is_clue_name(name: str) -> bool:
    return bool(_JSON_NAME.search(name)) and not posixpath.basename(name).startswith(".")


def clue_id(record: dict, file_name: str) -> str | None:
    """The clue's id: the ``id`` field (an int, or a string of digits), else the leading
    number of the file name; ``None`` when neither exists."""
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value))
    match = _LEADING_ID.match(posixpath.basename(file_name))
    return str(int(match.group(1))) if match else None


def merge_top_snippets(search_results: list, top_k: int = DEFAULT_TOP_K) -> str:
    """The positive text of a clue: the first ``top_k`` non-empty snippets, in rank order,
    joined with a space.

    Project rule. The reference file is "question_top5_snippets_merged"; results without
    a usable snippet (missing, ``null``, not a string, whitespace only) are skipped rather
    than counted, so the merge holds five real snippets whenever five exist. Snippets
    stay plain text: they quote pages verbatim, ``<triviacat>`` included.
    """
    snippets = []
    for result in search_results:
        snippet = result.get("snippet") if isinstance(result, dict) else None
        text = normalize_text(snippet) if isinstance(snippet, str) else ""
        if text:
            snippets.append(text)
            if len(snippets) == top_k:
                break
    return " ".join(snippets)


def parse_clue(data: bytes, file_name: str, top_k: int):
    """One clue file's content: a clue dict ready for de-duplication, or a tagged reject.

    The clue dict carries the merged snippets already (computed by
    :func:`merge_top_snippets`), so only two short texts travel through the shuffle.
    """
    if not data.strip():
        return blank_file(DATASET, file_name)  # counted as a record read by the core
    accounting.count_read(DATASET)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return rejected(DATASET, "bad_encoding", source_file=file_name,
                        detail=f"the clue file is not UTF-8: {exc}", excerpt=data[:2000])
    try:
        record = parse_json(text)
    except ValueError as exc:
        return rejected(DATASET, "bad_json", source_file=file_name,
                        detail=f"not a JSON document: {exc}", excerpt=text)
    if not isinstance(record, dict):
        return rejected(DATASET, "not_an_object", source_file=file_name,
                        detail="the document is JSON but not an object", excerpt=record)
    identifier = clue_id(record, file_name)
    question, results = record.get("question"), record.get("search_results")
    problem = ("no id field and no number in the file name" if identifier is None else
               "question is not a string" if not isinstance(question, str) else
               "search_results is not a list" if not isinstance(results, list) else None)
    if problem:
        return rejected(DATASET, "malformed_record", source_file=file_name,
                        record_id=identifier or "", detail=problem,
                        excerpt={k: v for k, v in record.items() if k != "search_results"})
    return {"key": text_key(identifier), "id": identifier, "split": split_of(file_name), "source_file": file_name,
            "clue": normalize_text(question), "snippets": merge_top_snippets(results, top_k)}


# -- de-duplication and the pair ---------------------------------------------------------

def preference(clue: dict) -> tuple:
    """Sort key of the copies of one clue: the first is kept (split order, then file)."""
    return SPLITS.index(clue["split"]), clue["source_file"]


def keep_first_copy(identifier: str, copies: list[dict]):
    """Keep one copy of a clue (see :func:`preference`); the others are rejects."""
    copies = sorted(copies, key=preference)
    yield copies[0]
    for copy in copies[1:]:
        yield rejected(DATASET, "duplicate_clue", source_file=copy["source_file"],
                       record_id=identifier, excerpt={"clue": copy["clue"]},
                       detail=f"clue {identifier} is already read from {copies[0]['source_file']}")


def searchqa_pair(clue: dict) -> dict:
    """searchqa: (Jeopardy! clue, its top snippets merged), see :func:`merge_top_snippets`."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, clue["clue"], clue["snippets"], source_file=clue["source_file"],
                    record_id=clue["id"])


def pair_or_reject(clue: dict):
    if not clue["clue"]:
        reason, detail = "empty_clue", "the clue text is empty"
    elif not clue["snippets"]:
        reason, detail = "no_snippets", "no search result has a snippet"
    else:
        yield searchqa_pair(clue)
        return
    yield rejected(DATASET, reason, source_file=clue["source_file"], record_id=clue["id"],
                   detail=detail, excerpt={"clue": clue["clue"][:RULE_REJECT_EXCERPT_CHARS]})


# -- Beam transforms --------------------------------------------------------------------

def read_clue(stream, source_file: str, top_k: int):
    """``read_file`` for :class:`ReadFiles`: one clue file, or one clue member of a zip.
    A file without any byte gives nothing here: ReadFiles records it as ``empty_file``."""
    data = stream.read(MAX_CLUE_BYTES + 1)
    if len(data) > MAX_CLUE_BYTES:
        yield rejected(DATASET, "malformed_record", counts_as_read=True, source_file=source_file,
                       detail=f"over {MAX_CLUE_BYTES} bytes: not a clue file")
    elif data:
        yield parse_clue(data, source_file, top_k)


def is_wanted_member(splits: frozenset, zip_split: str, member: str) -> bool:
    """Whether a zip member is a clue of a selected split; its split is the one of its
    folder inside the zip, else ``zip_split`` (that of the zip's own path)."""
    return is_clue_name(member) and split_of(f"{zip_split}!{member}") in splits


parse_splits = names_from(SPLITS)


def pair_first_copies(tables: dict):
    """:class:`~pipelines.engine.HashJoin` function: the clues of one task grouped by id,
    each id's first copy paired (or rejected by the pair rule), the others rejected.

    Args:
        tables: ``{"clues": CLUES}``.
    """
    copies = defaultdict(list)
    for clue in tables["clues"].to_pylist():
        copies[clue["id"]].append(clue)
    yield from rows_as_table(outcome for identifier in sorted(copies)
                             for outcome in first_copy_outcomes(identifier, copies[identifier]))


def first_copy_outcomes(identifier: str, copies: list[dict]):
    """The pair (or pair-rule reject) of a clue's first copy, then the other copies' rejects."""
    kept, *duplicates = keep_first_copy(identifier, copies)
    yield from pair_or_reject(kept)
    yield from duplicates


class SearchQA(Source):
    name = "searchqa"
    counts_records = True
    folder = "searchqa"
    datasets = (DATASET,)
    description = "SearchQA: Jeopardy! clues with Google search snippets (Dunn et al. 2017)"

    def find_inputs(self, ctx: SourceContext) -> tuple[dict[str, list[str]], list[str]]:
        """The zips to read, grouped by the split of their own path (``jeopardy`` when it
        names none), and the loose clue files to read. Loose files of unselected splits
        are left out here; zip members are filtered while streaming."""
        splits = ctx.option("splits", frozenset(SPLITS), parse_splits)
        zips, loose = {}, []
        for path, _size in files.list_dir(ctx.source_dir):
            relative = files.relative_to(path, ctx.source_dir)
            if relative.lower().endswith(".zip"):
                # A zip named for a split is skipped when that split is not selected; any
                # other zip is opened and its members are filtered by their own paths.
                zip_split = split_of(relative + "!member")
                if zip_split in splits or zip_split == RAW_SPLIT:
                    zips.setdefault(zip_split, []).append(path)
            elif is_clue_name(relative) and split_of(relative) in splits:
                loose.append(path)
        return zips, loose

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        zips, loose = self.find_inputs(ctx)
        wanted = {path for paths in zips.values() for path in paths} | set(loose)
        return [(path, size) for path, size in files.list_dir(ctx.source_dir) if path in wanted]

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        splits = ctx.option("splits", frozenset(SPLITS), parse_splits)
        read_file = functools.partial(read_clue, top_k=ctx.option("top_k", DEFAULT_TOP_K, positive_int))
        zips, loose = self.find_inputs(ctx)
        reads = [pipeline | "searchqa/ReadFiles" >> ReadFiles(
            loose, read_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict)]
        for zip_split, paths in sorted(zips.items()):
            # One read per split of the zips' paths: a member's split falls back to it.
            reads.append(pipeline | f"searchqa/ReadZips/{zip_split}" >> ReadFiles(
                paths, read_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict,
                members=functools.partial(is_wanted_member, splits, zip_split)))
        # Output: Arrow tables of CLUES, every copy of every clue
        clues = (tuple(read.records for read in reads) | "searchqa/AllClues" >> beam.Flatten()
                 | "searchqa/ClueTables" >> beam.ParDo(GatherTables(CLUES)))
        pairs = {"clues": clues} | "searchqa/PairFirstCopies" >> HashJoin(
            pair_first_copies, keys={"clues": "key"}, schemas={"clues": CLUES})
        return SourceOutput(rows={DATASET: pairs.main},
                            rejects=[read[REJECTED] for read in reads] + [pairs[REJECTED]])


SOURCE = SearchQA()
