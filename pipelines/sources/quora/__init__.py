"""Quora Question Pairs: (question, duplicate question, hard-negative question) triplets.

Files (under ``IN/quora/``, as published by Quora in 2017):
    ``quora_duplicate_questions.tsv``   404,290 labelled question pairs, 149,263 of them
                                        duplicates; the file may also be stored compressed
                                        (gzip/bz2/xz/zstd, sniffed from the bytes) under the
                                        same name or with the usual suffix

Other files in the folder are not read (the Kaggle ``train.csv`` re-release is a
different, comma-separated file and is not supported).

Parse: a header line ``id qid1 qid2 question1 question2 is_duplicate`` (TAB-separated),
then one pair per record. Fields that contain ``"`` are CSV-quoted with doubled quotes and
a quoted field may span lines, so the file is read with ``csv.reader(delimiter='\\t')``,
never split by line. Bytes that are not UTF-8 are kept (surrogate escapes) so that only
the record holding them is rejected (``bad_encoding``). Each record is checked:
    ``wrong_field_count``  not exactly six fields
    ``bad_id``             ``id``, ``qid1`` or ``qid2`` not a decimal integer
    ``missing_question``   ``question1`` or ``question2`` empty
    ``bad_is_duplicate``   ``is_duplicate`` not ``0`` or ``1``
    ``same_question``      ``qid1`` equals ``qid2``
    ``bad_csv``            a record ``csv`` refuses (a field beyond its limit of 131,072
                           characters, e.g. a stray quote that swallows the lines after
                           it); reading goes on with the next line
A file whose first record is not that header is rejected whole (``malformed_file``); a
file without any byte is the core reader's ``empty_file``.

Pair rules (``docs/corpus-spec.md``; the negative is a **project rule**), one function
each:
    :func:`anchor_directions`  which sides of a duplicate pair become anchors
    :func:`pick_negative`      which non-duplicate partner of the anchor is the negative
    :func:`triplet`            quora_triplets: (question, duplicate, negative)

Joins: duplicate pairs are first made unique per unordered pair of qids (the file lists
some pairs twice, in both orders; repeats are rejected as ``repeated_pair``). Then every
question's duplicate partners and non-duplicate partners meet in a Beam ``CoGroupByKey``
keyed by qid, so the candidates for a negative are exactly the questions that appear with
the anchor in a pair marked not-duplicate. An anchor without such a partner gives no
triplet (``no_negative``).

Documented count: 103,663 triplets (model card). With the defaults each of the 149,263
duplicate pairs can give two triplets (each question as anchor), and one is kept when that
anchor also appears in some non-duplicate pair; only questions asked more than once can,
which is what brings the ~298k candidate anchors down to the documented order of
magnitude. A later re-upload of the same file has 101,762 triplets.

Records (:mod:`pipelines.corpus.accounting`): a record is one anchor candidate, i.e. one
question of a duplicate pair with the other as its positive, so a duplicate pair is two
records. It ends as a triplet, a ``no_negative`` reject, or the skip
``not_an_anchor_direction`` (the question2 side with ``directions=question1``). A record
of the file that never becomes a duplicate pair is one record: a malformed one or a
``repeated_pair`` is rejected, a pair marked not-duplicate is the skip ``not_duplicate``
(it only supplies negatives). A ``malformed_file`` is one record read and rejected.

Source options (``--source-option quora.<key>=<value>``):
    ``directions``     ``both`` (default): question1 and question2 of a duplicate pair are
                       each an anchor, the other one its positive; ``question1``: only
                       question1 is an anchor.
    ``negative_seed``  text mixed into the hash that ranks candidate negatives (default
                       ``quora``); changing it draws another, equally deterministic,
                       choice of negatives.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re

import apache_beam as beam

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_text
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import make_row
from pipelines.corpus.source import Source, SourceContext, SourceOutput
from pipelines.engine import ReadFiles, files

DATASET = "quora_triplets"
HEADER = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
DIRECTIONS = ("both", "question1")
DEFAULT_DIRECTIONS = "both"
DEFAULT_NEGATIVE_SEED = "quora"

_FILE_NAME = re.compile(r"^quora_duplicate_questions\.tsv(?:\.(?:gz|bz2|xz|zst))?$")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_INTEGER = re.compile(r"^[0-9]+$")


# -- parsing ---------------------------------------------------------------------------

def parse_pair(fields: list[str]) -> tuple[dict | None, str | None, str]:
    """Check one TSV record and turn it into a pair dict.

    Args:
        fields: the record's fields as the csv reader gives them.
    Returns:
        ``(pair, None, "")`` for a valid record, otherwise ``(None, reason, detail)``.
        ``pair`` has ``id``, ``qid1``, ``qid2`` (ints), ``question1``, ``question2``
        and ``duplicate`` (bool).
    """
    if any(_ESCAPED_BYTE.search(field) for field in fields):
        return None, "bad_encoding", "record is not valid UTF-8"
    if len(fields) != len(HEADER):
        return None, "wrong_field_count", f"{len(fields)} fields, expected {len(HEADER)}"
    pair_id, qid1, qid2, question1, question2, label = (f.strip() for f in fields)
    if not all(_INTEGER.match(v) for v in (pair_id, qid1, qid2)):
        return None, "bad_id", "id, qid1 and qid2 must be decimal integers"
    if not question1 or not question2:
        return None, "missing_question", "question1 or question2 is empty"
    if label not in ("0", "1"):
        return None, "bad_is_duplicate", f"is_duplicate is {label!r}, expected 0 or 1"
    if qid1 == qid2:
        return None, "same_question", "qid1 and qid2 are the same question"
    return {"id": int(pair_id), "qid1": int(qid1), "qid2": int(qid2), "question1": question1,
            "question2": question2, "duplicate": label == "1"}, None, ""


def read_pairs(stream, source_file: str):
    """``read_file`` for :class:`ReadFiles`: valid pairs, and rejects for the rest."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter="\t")
    header = next(reader, None)
    if header is None:
        return  # a file without any byte: ReadFiles records it as empty_file
    if header != HEADER:
        yield rejected(DATASET, "malformed_file", source_file=source_file, record_id="line 1",
                       counts_as_read=True,
                       detail=f"expected the header {HEADER}, found {header!a}",
                       excerpt="\t".join(header or []).encode("utf-8", "surrogateescape"))
        return
    line = reader.line_num
    for fields in _records_or_errors(reader):
        record_line, line = line + 1, reader.line_num
        if isinstance(fields, csv.Error):
            yield rejected(DATASET, "bad_csv", counts_as_read=True, source_file=source_file,
                           record_id=f"line {record_line}", detail=f"csv refuses the record: {fields}")
            continue
        if not fields:
            continue
        pair, reason, detail = parse_pair(fields)
        if pair is None:
            record_id = fields[0] if fields and _INTEGER.match(fields[0]) else f"line {record_line}"
            yield rejected(DATASET, reason, counts_as_read=True,
                           source_file=source_file, record_id=record_id,
                           detail=detail, excerpt="\t".join(fields).encode("utf-8", "surrogateescape"))
            continue
        pair["source_file"] = source_file
        yield pair


def _records_or_errors(reader):
    """The records of a ``csv.reader``, with a ``csv.Error`` in place of a record it
    refuses (the reader goes on with the next line)."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc


# -- pair rules ------------------------------------------------------------------------

def anchor_directions(directions: str) -> list[tuple[str, str]]:
    """Which sides of a duplicate pair are anchors: ``(anchor side, positive side)``.

    Project rule: with ``both`` (default) each question of the pair is an anchor with the
    other as its positive. Duplicate-ness is symmetric, and taking both directions is what
    lets questions that only ever appear as ``question2`` contribute their non-duplicate
    partners; it brings the count near the documented 103,663. ``question1`` keeps only
    the direction as listed in the file.
    """
    if directions == "question1":
        return [("1", "2")]
    return [("1", "2"), ("2", "1")]


def negative_rank(seed: str, anchor_qid: int, positive_qid: int, candidate_qid: int) -> bytes:
    """Hash that orders the candidate negatives of one (anchor, positive)."""
    key = f"{seed}\x1f{anchor_qid}\x1f{positive_qid}\x1f{candidate_qid}".encode("utf-8")
    return hashlib.blake2b(key, digest_size=8).digest()


def pick_negative(anchor: dict, candidates: list[dict], seed: str) -> dict | None:
    """The hard negative of one (anchor, positive), or ``None`` when there is none.

    Project rule: the candidates are the questions that appear with the anchor in a pair
    marked not-duplicate (a "related but different" question, which is how Quora built
    its negative pairs), excluding the positive, any question that is also marked a
    duplicate of the anchor (inconsistent labels) and any question whose text equals the
    anchor's or the positive's (case-insensitively, after normalisation). Among them the
    one with the smallest :func:`negative_rank` wins: deterministic, independent of file
    order, and different positives of one anchor draw different negatives.

    Args:
        anchor: ``qid``, ``positive_qid``, ``anchor``, ``positive`` and
            ``duplicate_qids`` (every duplicate partner of the anchor).
        candidates: non-duplicate partners, dicts with ``qid`` and ``text``.
        seed: the ``negative_seed`` option.
    """
    same_text = {normalize_text(anchor["anchor"]).casefold(),
                 normalize_text(anchor["positive"]).casefold()}
    allowed = [c for c in candidates
               if c["qid"] != anchor["positive_qid"] and c["qid"] not in anchor["duplicate_qids"]
               and normalize_text(c["text"]).casefold() not in same_text]
    if not allowed:
        return None
    return min(allowed, key=lambda c: (negative_rank(seed, anchor["qid"], anchor["positive_qid"],
                                                     c["qid"]), c["qid"]))


def triplet(anchor: dict, negative: dict) -> dict:
    """quora_triplets: (question, its duplicate, a question it is not a duplicate of)."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, anchor["anchor"], anchor["positive"], negative["text"],
                    source_file=anchor["source_file"],
                    record_id=(f"pair {anchor['pair_id']}: {anchor['qid']}->{anchor['positive_qid']}"
                               f" negative {negative['qid']} (pair {negative['pair_id']})"))


# -- Beam transforms --------------------------------------------------------------------

def _route_pair(pair: dict):
    if pair["duplicate"]:
        yield beam.pvalue.TaggedOutput("duplicates", pair)
    else:
        # One record, never an anchor: it only supplies negatives.
        accounting.count_read(DATASET)
        accounting.count_skipped(DATASET, "not_duplicate")
        yield beam.pvalue.TaggedOutput("non_duplicates", pair)


def _keep_first_pair(element):
    """One duplicate pair per unordered pair of qids: the lowest id; the rest are rejects."""
    _qids, pairs = element
    pairs = sorted(pairs, key=lambda p: p["id"])
    yield pairs[0]
    for pair in pairs[1:]:
        # one record: rejected before its anchors are taken
        yield rejected(DATASET, "repeated_pair", counts_as_read=True,
                       source_file=pair["source_file"],
                       record_id=str(pair["id"]), excerpt=pair,
                       detail=f"the same two questions are already a duplicate pair in id {pairs[0]['id']}")


def _duplicate_sides(pair: dict, directions: str):
    """Key both questions of a duplicate pair by qid; mark the sides that are anchors."""
    anchors = {side for side, _ in anchor_directions(directions)}
    accounting.count_read(DATASET, 2)  # one anchor candidate per question of the pair
    for side, other in (("1", "2"), ("2", "1")):
        yield pair[f"qid{side}"], {
            "pair_id": pair["id"], "qid": pair[f"qid{side}"], "positive_qid": pair[f"qid{other}"],
            "anchor": pair[f"question{side}"], "positive": pair[f"question{other}"],
            "is_anchor": side in anchors, "source_file": pair["source_file"]}


def _non_duplicate_sides(pair: dict):
    """Key both questions of a non-duplicate pair by qid, with the partner as candidate."""
    for side, other in (("1", "2"), ("2", "1")):
        yield pair[f"qid{side}"], {"pair_id": pair["id"], "qid": pair[f"qid{other}"],
                                   "text": pair[f"question{other}"]}


def _unique_candidates(candidates) -> list[dict]:
    """One candidate per partner qid (the one from the lowest pair id)."""
    best: dict[int, dict] = {}
    for candidate in candidates:
        kept = best.get(candidate["qid"])
        if kept is None or candidate["pair_id"] < kept["pair_id"]:
            best[candidate["qid"]] = candidate
    return [best[qid] for qid in sorted(best)]


def _triplets_of_question(element, seed: str):
    _qid, grouped = element
    sides = sorted(grouped["duplicates"], key=lambda s: (s["pair_id"], s["positive_qid"]))
    candidates = _unique_candidates(grouped["non_duplicates"])
    duplicate_qids = frozenset(s["positive_qid"] for s in sides)
    for side in sides:
        if not side["is_anchor"]:
            accounting.count_skipped(DATASET, "not_an_anchor_direction")
            continue
        negative = pick_negative({**side, "duplicate_qids": duplicate_qids}, candidates, seed)
        if negative is None:
            yield rejected(DATASET, "no_negative", source_file=side["source_file"],
                           record_id=f"pair {side['pair_id']}: {side['qid']}->{side['positive_qid']}",
                           detail="the anchor appears in no non-duplicate pair with a usable partner",
                           excerpt={"anchor": side["anchor"], "positive": side["positive"]})
        else:
            yield triplet(side, negative)


class Quora(Source):
    name = "quora"
    counts_records = True
    folder = "quora"
    datasets = (DATASET,)
    description = "Quora Question Pairs (quora_duplicate_questions.tsv), duplicate triplets"

    def find_files(self, ctx: SourceContext) -> list[str]:
        """The pair files to read: ``quora_duplicate_questions.tsv`` (compressed or not)."""
        return [path for path, _size in files.list_dir(ctx.source_dir)
                if _FILE_NAME.match(path.replace("\\", "/").rsplit("/", 1)[-1])]

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        wanted = set(self.find_files(ctx))
        return [(p, s) for p, s in files.list_dir(ctx.source_dir) if p in wanted]

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        directions = ctx.option("directions", DEFAULT_DIRECTIONS, choices=DIRECTIONS)
        seed = ctx.option("negative_seed", DEFAULT_NEGATIVE_SEED)
        read = pipeline | "quora/ReadPairs" >> ReadFiles(
            self.find_files(ctx), read_pairs, input_root=ctx.input_root, dataset=DATASET,
            strict=ctx.strict)
        routed = read.records | "quora/RouteByLabel" >> beam.FlatMap(_route_pair).with_outputs(
            "duplicates", "non_duplicates")
        unique = (
            routed.duplicates
            | "quora/KeyByQuestionPair" >> beam.Map(lambda p: (tuple(sorted((p["qid1"], p["qid2"]))), p))
            | "quora/GroupQuestionPairs" >> beam.GroupByKey()
            | "quora/KeepFirstPair" >> beam.FlatMap(_keep_first_pair).with_outputs(REJECTED, main="pairs")
        )
        duplicates = unique.pairs | "quora/KeyDuplicatesByQid" >> beam.FlatMap(
            _duplicate_sides, directions)
        non_duplicates = routed.non_duplicates | "quora/KeyNonDuplicatesByQid" >> beam.FlatMap(
            _non_duplicate_sides)
        triplets = (
            {"duplicates": duplicates, "non_duplicates": non_duplicates}
            | "quora/JoinPartnersByQid" >> beam.CoGroupByKey()
            | "quora/Triplets" >> beam.FlatMap(_triplets_of_question, seed)
            .with_outputs(REJECTED, main="rows")
        )
        return SourceOutput(rows={DATASET: triplets.rows},
                            rejects=[read[REJECTED], unique[REJECTED], triplets[REJECTED]])


SOURCE = Quora()
