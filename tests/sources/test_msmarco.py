"""MS MARCO source: pair rules, parsing, the bundled sample, the real excerpts, bad input."""
from __future__ import annotations

import gzip
import io
import random
import shutil
import tarfile
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pytest

from pipelines.corpus.source import OptionError, SourceContext, SourceError
from pipelines.sources import msmarco
from pipelines.sources.msmarco import DATASET, SOURCE
from pipelines.sources.msmarco.parse import (
    hard_negative_problem,
    read_collection,
    read_qrels,
    read_queries,
    repair_mojibake,
)
from pipelines.sources.msmarco.rules import (
    keep_per_query,
    select_hard_negatives,
    selection_key,
    triplet_row,
)
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase


def _values(items):
    """What a reader yields for the main output (rejects left out), tables as row tuples."""
    values = []
    for item in items:
        if isinstance(item, pa.Table):
            values.extend(tuple(row.values()) for row in item.to_pylist())
        elif not isinstance(item, beam.pvalue.TaggedOutput):
            values.append(item)
    return values


def _reasons(items):
    return [item.value["reason"] for item in items if isinstance(item, beam.pvalue.TaggedOutput)]


# -- mojibake repair -----------------------------------------------------------------------

def test_repair_undoes_double_encoding():
    assert repair_mojibake("We donâ\x80\x99t know") == "We don’t know"
    assert repair_mojibake("1Â½ cups") == "1½ cups"
    assert repair_mojibake("194 â\x80¦ 2-1946") == "194 … 2-1946"
    assert repair_mojibake("AntonÃ\xadn DvoÅ\x99Ã¡k") == "Antonín Dvořák"


def test_repair_falls_back_to_the_raw_text():
    # Correct UTF-8 text: beyond Latin-1 (€), or Latin-1 bytes that are not UTF-8 (é).
    assert repair_mojibake("price €3") == "price €3"
    assert repair_mojibake("café") == "café"
    assert repair_mojibake("plain ascii") == "plain ascii"


def test_repair_on_the_real_collection_excerpt(upstream_samples):
    passages = {}
    for line in (upstream_samples / "msmarco" / "collection.tsv").read_text("utf-8").splitlines():
        pid, text = line.split("\t", 1)
        passages[int(pid)] = repair_mojibake(text)
    assert len(passages) == 101
    assert passages[0].startswith("The presence of communication amid scientific minds was equally "
                                  "important to the success of the Manhattan Project")
    assert passages[99].startswith("(1841 - 1904) Contrary to legend, Antonín Dvořák (September 8, "
                                   "1841 - May 1, 1904) was not born in poverty.")
    assert "period of the project from 194 … 2-1946" in passages[3]
    assert "The first website–The Manhattan Project: An Interactive History–is" in passages[4]
    # No mojibake is left anywhere in the excerpt.
    for text in passages.values():
        assert not any("\x80" <= ch <= "\x9f" for ch in text)
        assert "â\x80" not in text and "Ã" not in text


# -- parsing ---------------------------------------------------------------------------------

def test_read_collection_repairs_and_rejects_bad_lines():
    data = (b"0\tWe don\xc3\xa2\xc2\x80\xc2\x99t know\n"      # double-encoded U+2019
            b"x1\tid is not a number\n"
            b"2 no tab here\n"
            b"\n"
            b"3\tbroken \xff byte\n"
            b"4\ttab\tinside text stays\n")
    items = list(read_collection(io.BytesIO(data), "msmarco/collection.tsv"))
    # Texts are normalised where they are read: the TAB inside the text becomes a space.
    assert _values(items) == [(0, "We don’t know"), (4, "tab inside text stays")]
    assert _reasons(items) == ["malformed_line", "malformed_line", "bad_encoding"]


def test_read_queries_strips_and_checks_ids():
    data = b"121352\tdefine extreme\n5\t term service agreement definition\nabc\tq\n"
    items = list(read_queries(io.BytesIO(data), "q"))
    assert _values(items) == [
        (121352, "define extreme"), (5, "term service agreement definition")]
    assert _reasons(items) == ["malformed_line"]


def test_read_qrels_accepts_tabs_or_spaces_and_skips_non_relevant():
    data = b"1185869\t0\t0\t1\n7 0 16 1\n8 0 17 0\n9\t0\t18\n"
    items = list(read_qrels(io.BytesIO(data), "qrels"))
    assert _values(items) == [(1185869, 0), (7, 16)]
    assert _reasons(items) == ["malformed_line"]


@pytest.mark.parametrize("record, reason", [
    ({"qid": 1, "pos": [2], "neg": {"bm25": [3]}}, None),
    ({"qid": 1, "pos": [2], "neg": {}}, None),
    ({"qid": 1, "pos": [], "neg": {"bm25": [3]}}, "no_positive"),
    ({"qid": "1", "pos": [2], "neg": {"bm25": [3]}}, "malformed_record"),
    ({"qid": 1.0, "pos": [2], "neg": {"bm25": [3]}}, "malformed_record"),
    ({"qid": True, "pos": [2], "neg": {"bm25": [3]}}, "malformed_record"),
    ({"pos": [2], "neg": {"bm25": [3]}}, "malformed_record"),
    ({"qid": 1, "neg": {"bm25": [3]}}, "malformed_record"),
    ({"qid": 1, "pos": 2, "neg": {"bm25": [3]}}, "malformed_record"),
    ({"qid": 1, "pos": ["2"], "neg": {"bm25": [3]}}, "malformed_record"),
    ({"qid": 1, "pos": [2]}, "malformed_record"),
    ({"qid": 1, "pos": [2], "neg": [3]}, "malformed_record"),
    ({"qid": 1, "pos": [2], "neg": {"bm25": "3"}}, "malformed_record"),
    ({"qid": 1, "pos": [2], "neg": {"bm25": [None]}}, "malformed_record"),
])
def test_hard_negative_problem(record, reason):
    problem = hard_negative_problem(record)
    assert (problem[0] if problem else None) == reason


# -- pair rules --------------------------------------------------------------------------------

def test_selection_key_is_stable_and_salted():
    assert selection_key("", 1, 2, 3) == selection_key("", 1, 2, 3)
    assert selection_key("", 1, 2, 3) != selection_key("", 1, 3, 2)
    assert selection_key("", 1, 2, 3) != selection_key("other", 1, 2, 3)


def test_select_hard_negatives_removes_relevant_passages():
    pairs = select_hard_negatives(100, [0, 1], {"bm25": [1, 3, 6], "tas-b": [3, 2]}, judged=[6])
    assert sorted(pairs) == [(0, 2), (0, 3), (1, 2), (1, 3)]


def test_select_hard_negatives_caps_per_positive_by_key():
    negatives = {"bm25": list(range(100, 160)), "tas-b": list(range(150, 220))}
    pairs = select_hard_negatives(7, [1, 2], negatives, per_positive=33)
    assert len(pairs) == 66
    for positive in (1, 2):
        chosen = [neg for pos, neg in pairs if pos == positive]
        assert len(set(chosen)) == 33
        expected = sorted(range(100, 220), key=lambda n: (selection_key("", 7, positive, n), n))[:33]
        assert chosen == expected
    # Different positives draw different negatives.
    assert {n for p, n in pairs if p == 1} != {n for p, n in pairs if p == 2}


def test_select_hard_negatives_ignores_list_order_and_filters_systems():
    negatives = {"bm25": list(range(10, 40)), "tas-b": list(range(30, 80)), "v3": [5, 6]}
    shuffled = {system: random.Random(1).sample(pids, len(pids)) for system, pids in negatives.items()}
    assert (select_hard_negatives(1, [2], negatives, per_positive=5)
            == select_hard_negatives(1, [2], dict(reversed(shuffled.items())), per_positive=5))
    only_v3 = select_hard_negatives(1, [2], negatives, systems=("v3", "absent"), per_positive=5)
    assert sorted(only_v3) == [(2, 5), (2, 6)]
    assert select_hard_negatives(1, [2], negatives, systems=("absent",)) == []
    assert (select_hard_negatives(1, [2], negatives, per_positive=5, seed="a")
            != select_hard_negatives(1, [2], negatives, per_positive=5, seed="b"))


def test_keep_per_query_is_order_independent_and_distinct():
    candidates = [(selection_key("", 9, p, n), p, n, "f") for p in (1, 2) for n in range(40)]
    kept = keep_per_query(candidates, 35)
    assert kept == sorted(candidates)[:35]
    assert keep_per_query(list(reversed(candidates)) + candidates, 35) == kept
    # A repeated text triple counts once; the earlier line stands for it.
    assert keep_per_query([(5, "p", "n", "f", 9), (5, "p", "n", "f", 3), (7, "p", "m", "f", 4)], 2) == [
        (5, "p", "n", "f", 3), (7, "p", "m", "f", 4)]


def test_combiner_merges_partial_accumulators_like_one_pass():
    combine = msmarco.rules._SmallestDistinct(4)
    candidates = [(k, "p", f"n{k}", "f") for k in (9, 3, 7, 1, 3, 8, 2, 6)]
    parts = [combine.create_accumulator() for _ in range(3)]
    for i, candidate in enumerate(candidates):
        parts[i % 3] = combine.add_input(parts[i % 3], candidate)
    merged = combine.extract_output(combine.merge_accumulators(parts))
    assert merged == keep_per_query(candidates, 4) == [
        (1, "p", "n1", "f"), (2, "p", "n2", "f"), (3, "p", "n3", "f"), (6, "p", "n6", "f")]


def test_triplet_row():
    row = triplet_row({"query": "q", "positive": "p", "negative": "n", "source_file": "msmarco/x",
                       "record_id": "1/2/3", "qid": 1, "pos": 2, "neg": 3})
    assert (row["anchor"], row["positive"], row["negative"], row["dataset"]) == ("q", "p", "n", DATASET)
    assert (row["source_file"], row["record_id"]) == ("msmarco/x", "1/2/3")


# -- inputs and options --------------------------------------------------------------------------

def _ctx(folder, **options):
    return SourceContext(input_root=str(folder.parent), source_dir=str(folder),
                         datasets=(DATASET,), options=options)


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"1\tx\n")


def test_unpacked_files_win_and_hard_negatives_come_first(tmp_path):
    folder = tmp_path / "msmarco"
    _touch(folder, "collection.tar.gz", "collection.tsv", "queries.tar.gz", "queries.dev.tsv",
           "qrels.train.tsv", "qrels.dev.tsv", "qidpidtriples.train.full.2.tsv.gz",
           "msmarco-hard-negatives.jsonl.gz", "triples.train.small.tar.gz",
           "cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz")
    found = SOURCE.find_inputs(_ctx(folder))
    assert {k: v.rsplit("/", 1)[1] for k, v in found.items()} == {
        "collection": "collection.tsv", "queries": "queries.tar.gz", "qrels": "qrels.train.tsv",
        "hard_negatives": "msmarco-hard-negatives.jsonl.gz",
        "qidpidtriples": "qidpidtriples.train.full.2.tsv.gz",
        "triples_small": "triples.train.small.tar.gz"}
    read = [p.rsplit("/", 1)[1] for p, _ in SOURCE.input_files(_ctx(folder))]
    assert read == ["collection.tsv", "queries.tar.gz", "qrels.train.tsv", "msmarco-hard-negatives.jsonl.gz"]
    assert [p.rsplit("/", 1)[1] for p, _ in SOURCE.input_files(_ctx(folder, negatives="triples_small"))] == [
        "triples.train.small.tar.gz"]


def test_bad_options_and_missing_inputs_are_build_errors(tmp_path):
    folder = tmp_path / "msmarco"
    _touch(folder, "qidpidtriples.train.full.2.tsv", "collection.tsv")
    with pytest.raises(SourceError, match="queries.train.tsv"):
        SOURCE.input_files(_ctx(folder))
    with pytest.raises(SourceError, match="hard_negatives"):
        SOURCE.input_files(_ctx(folder, negatives="hard_negatives"))
    with pytest.raises(OptionError, match="expected one of auto"):
        SOURCE.input_files(_ctx(folder, negatives="bm25"))
    with pytest.raises(OptionError, match="triples_per_query='many'"):
        msmarco._positive_option(_ctx(folder, triples_per_query="many"), "triples_per_query", 35)
    with pytest.raises(OptionError, match="whole number"):
        msmarco._positive_option(_ctx(folder, triples_per_query="0"), "triples_per_query", 35)
    assert msmarco._systems_option(_ctx(folder, systems="bm25, tas-b")) == ("bm25", "tas-b")
    assert msmarco._systems_option(_ctx(folder)) is None


def _tar_gz(path, members):
    import tarfile
    with tarfile.open(path, "w:gz", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_archive_without_the_member_empty_and_blank_files_are_rejects(tmp_path):
    folder = tmp_path / "in" / "msmarco"
    folder.mkdir(parents=True)
    _tar_gz(folder / "queries.tar.gz", [("queries.dev.tsv", b"1\tdev query\n")])
    (folder / "collection.tsv").write_bytes(b"\n  \n")
    (folder / "qrels.train.tsv").write_bytes(b"")
    (folder / "msmarco-hard-negatives.jsonl").write_bytes(b'{"qid": 1, "pos": [2], "neg": {"bm25": [3]}}\n')
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.rows[DATASET] == []
    by_file = {(r["source_file"], r["reason"]) for r in result.rejects[DATASET]}
    assert {("msmarco/queries.tar.gz", "no_member"), ("msmarco/qrels.train.tsv", "empty_file"),
            ("msmarco/collection.tsv", "blank_file")} <= by_file
    assert result.reasons(DATASET) == {"blank_file": 1, "empty_file": 1, "no_member": 1,
                                       "query_missing": 1}


# -- builds: the bundled sample -------------------------------------------------------------------

def test_sample_build_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET])
    entry = result.manifest["datasets"][DATASET]
    assert entry["verdict"] == "match", entry.get("problems")
    pairs = result.pairs(DATASET)
    steep = "Green tea should steep for two to three minutes; a longer steep makes it bitter rather than stronger."
    flavour = ("Green tea’s flavour depends on water temperature: around 80 °C keeps the leaves from "
               "scorching…")
    half_cup = "Half a cup (½ cup) of water weighs about 118 grams; half a cup of flour weighs closer to 60 grams."
    cafe = "Café au lait is brewed coffee with hot milk, a price tag of €3 in most Paris cafés."
    assert ("how long to steep green tea", flavour, half_cup) in pairs
    assert ("how long to steep green tea", steep, cafe) in pairs
    assert ("what is half a cup in grams", half_cup, steep) in pairs
    assert ("who composed the new world symphony",
            "Antonín Dvořák composed the Symphony No. 9 “From the New World” in 1893 while living in New York.",
            "The New World Symphony was first performed by the New York Philharmonic at Carnegie Hall "
            "in December 1893.") in pairs
    assert {r["record_id"] for r in result.rows[DATASET]} == {
        "100/0/2", "100/0/3", "100/0/6", "100/1/2", "100/1/3", "100/1/6", "101/2/0", "101/2/4", "102/4/5"}


def test_sample_with_qidpidtriples(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET],
                       source_options={"msmarco": {"negatives": "qidpidtriples"}})
    assert {r["record_id"] for r in result.rows[DATASET]} == {
        "100/0/3", "100/0/6", "100/1/2", "100/1/3", "101/2/4", "102/4/5"}
    assert result.reasons(DATASET) == {"bad_encoding": 1, "malformed_line": 4,
                                       "negative_is_positive": 1, "query_missing": 1}
    # Queries are named by every triple of the file, passages by the triplets reaching their join.
    with gzip.open(f"{SOURCE.sample_root()}/msmarco/qidpidtriples.train.full.2.tsv.gz") as stream:
        triple_qids = {int(q) for q, *_ids in (line.split(b"\t") for line in stream.read().splitlines())
                       if q.isdigit()}
    _qids, pids = _named_ids(result)
    assert result.manifest["input_rows"]["msmarco"] == {
        "collection.tsv": _lookup_rows_by_hand(_sample_lines("collection.tsv"), pids),
        "queries.train.tsv": _lookup_rows_by_hand(_sample_lines("queries.train.tsv"), triple_qids),
        "qrels.train.tsv": _qrels_rows_by_hand(_sample_lines("qrels.train.tsv"))}
    assert result.manifest["input_rows"]["msmarco"]["queries.train.tsv"] == {"taken": 3, "skipped": {"not_used": 2}}


def _unpacked_sample(root):
    """The bundled sample with every file unpacked and uncompressed (as big inputs are,
    to be read in byte ranges)."""
    sample = SOURCE.sample_root() + "/msmarco"
    folder = root / "msmarco"
    folder.mkdir(parents=True)
    for archive, member in (("collection.tar.gz", "collection.tsv"), ("queries.tar.gz", "queries.train.tsv")):
        with tarfile.open(f"{sample}/{archive}") as tar:
            (folder / member).write_bytes(tar.extractfile(member).read())
    with gzip.open(f"{sample}/qidpidtriples.train.full.2.tsv.gz") as stream:
        (folder / "qidpidtriples.train.full.2.tsv").write_bytes(stream.read())
    shutil.copy(f"{sample}/qrels.train.tsv", folder / "qrels.train.tsv")
    return root


def test_byte_ranges_give_the_same_triplets_and_rejects(tmp_path):
    """The sample's TSV files, unpacked, read in ~100-byte ranges (several per file, lines
    crossing range ends, bad lines inside ranges) give the rows, rejects and counts of
    whole-file reading."""
    root = _unpacked_sample(tmp_path / "in")
    options = {"negatives": "qidpidtriples"}
    whole = run_conserved_build(tmp_path / "whole", input_root=root, datasets=[DATASET],
                                source_options={"msmarco": options})
    split = run_conserved_build(tmp_path / "split", input_root=root, datasets=[DATASET],
                                source_options={"msmarco": {**options, "split_mb": "0.0001"}})
    assert split.rows[DATASET] == whole.rows[DATASET]
    assert split.reasons(DATASET) == whole.reasons(DATASET)
    assert split.manifest["datasets"][DATASET]["accounting"] == whole.manifest["datasets"][DATASET]["accounting"]
    assert split.manifest["input_rows"] == whole.manifest["input_rows"]
    ranged = [r["record_id"] for r in split.rejects[DATASET] if r["reason"] == "malformed_line"]
    assert ranged and any(" after byte " in record_id for record_id in ranged)


def test_sample_with_qidpidtriples_capped_per_query(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET],
                       source_options={"msmarco": {"negatives": "qidpidtriples", "triples_per_query": "2"}})
    ids = sorted(r["record_id"] for r in result.rows[DATASET])
    query_100 = [i for i in ids if i.startswith("100/")]
    expected = sorted(sorted([(0, 3), (0, 6), (1, 2), (1, 3)],
                             key=lambda pn: selection_key("", 100, *pn))[:2])
    assert query_100 == [f"100/{p}/{n}" for p, n in expected]
    assert len(ids) == 4


def test_sample_with_text_triples(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET],
                       source_options={"msmarco": {"negatives": "triples_small"}})
    assert result.pairs(DATASET) == {
        ("how long to steep green tea",
         "Green tea should steep for two to three minutes; a longer steep makes it bitter rather than stronger.",
         "Green tea’s flavour depends on water temperature: around 80 °C keeps the leaves from scorching…"),
        ("what is half a cup in grams",
         "Half a cup (½ cup) of water weighs about 118 grams; half a cup of flour weighs closer to 60 grams.",
         "A cup of coffee holds 240 ml; ½ of it is 120 ml."),
    }
    assert result.reasons(DATASET) == {"malformed_line": 1}


# -- input rows of the lookup tables -----------------------------------------------------------------

# Rejects of the triplets that reached the passage joins (the others are rows), and of
# those that reached the query join of the hard-negatives input.
_PASSAGE_JOIN_REJECTS = {"negative_missing", "positive_missing", "duplicate_passage_id"}
_QUERY_JOIN_REJECTS = _PASSAGE_JOIN_REJECTS | {"query_missing", "duplicate_query_id"}


def _named_ids(result) -> tuple[set, set]:
    """``(qids, pids)`` named by the triplets that reached the query join (hard negatives)
    and the passage joins: those of the rows and of the rejects of those joins (record id
    ``qid/pos/neg``)."""
    def triplets(reasons):
        record_ids = [r["record_id"] for r in result.rows[DATASET]] + [
            r["record_id"] for r in result.rejects[DATASET] if r["reason"] in reasons]
        return [tuple(int(i) for i in record_id.split("/")) for record_id in record_ids]
    return ({q for q, _p, _n in triplets(_QUERY_JOIN_REJECTS)},
            {pid for _q, p, n in triplets(_PASSAGE_JOIN_REJECTS) for pid in (p, n)})


def _lookup_rows_by_hand(lines: list[bytes], named: set) -> dict:
    """The input rows of ``collection.tsv`` or ``queries.train.tsv``, worked out from its
    lines: a line whose id is ``named`` is taken, another sound line is ``not_used``, and
    a line rejected where it is read (no TAB, an id that is no integer, not UTF-8) is taken
    (a record, rejected). Blank lines are no rows."""
    taken = not_used = 0
    for line in lines:
        if not line.strip():
            continue
        first, tab, _text = line.partition(b"\t")
        try:
            sound = bool(tab) and first.isdigit() and bool(line.decode("utf-8"))
        except UnicodeDecodeError:
            sound = False
        if not sound or int(first) in named:
            taken += 1
        else:
            not_used += 1
    return {"taken": taken, "skipped": {"not_used": not_used} if not_used else {}}


def _qrels_rows_by_hand(lines: list[bytes]) -> dict:
    """The input rows of ``qrels.train.tsv``, worked out from its lines: a judgement of
    relevance 0 is ``judged_not_relevant``; any other line is taken (a judgement used, or a
    malformed line: a record, rejected). Blank lines are no rows."""
    fields = [line.split() for line in lines if line.strip()]
    not_relevant = sum(1 for f in fields if len(f) == 4 and all(x.isdigit() for x in f) and int(f[3]) == 0)
    return {"taken": len(fields) - not_relevant,
            "skipped": {"judged_not_relevant": not_relevant} if not_relevant else {}}


def test_qrels_judgements_of_no_relevance_are_counted_skipped(tmp_path):
    """A qrels line of relevance 0 is read, counted skipped, and judges nothing: the negative
    it names stays a negative."""
    root = tmp_path / "in"
    shutil.copytree(SOURCE.sample_root(), root)
    qrels = root / "msmarco" / "qrels.train.tsv"
    base = run_conserved_build(tmp_path / "base", input_root=root, datasets=[DATASET],
                               source_options={"msmarco": {"negatives": "qidpidtriples"}})
    qrels.write_bytes(qrels.read_bytes() + b"100\t0\t3\t0\n100 0 6 0\n")
    result = run_conserved_build(tmp_path / "out", input_root=root, datasets=[DATASET],
                                 source_options={"msmarco": {"negatives": "qidpidtriples"}})
    assert {r["record_id"] for r in result.rows[DATASET]} == {r["record_id"] for r in base.rows[DATASET]}
    counted = result.manifest["input_rows"]["msmarco"]["qrels.train.tsv"]
    assert counted == _qrels_rows_by_hand(qrels.read_bytes().splitlines())
    assert counted == {"taken": 8, "skipped": {"judged_not_relevant": 2}}


def _assert_every_row_counted(counted: dict, lines_of: dict) -> None:
    for table, lines in lines_of.items():
        rows = sum(1 for line in lines if line.strip())
        assert counted[table]["taken"] + sum(counted[table]["skipped"].values()) == rows, table


def _sample_lines(member: str) -> list[bytes]:
    if member == "qrels.train.tsv":  # not packed
        return (Path(SOURCE.sample_root()) / "msmarco" / member).read_bytes().splitlines()
    archive = "collection.tar.gz" if member == "collection.tsv" else "queries.tar.gz"
    with tarfile.open(f"{SOURCE.sample_root()}/msmarco/{archive}") as tar:
        return tar.extractfile(member).read().splitlines()


def _real_excerpts_with_hard_negatives(tmp_path, upstream_samples, lines: list[str]):
    """``IN/msmarco``: the real collection, train queries and qrels, and a hard-negatives
    file of ``lines`` (no real line of that file is public)."""
    folder = tmp_path / "in" / "msmarco"
    folder.mkdir(parents=True)
    for name in ("collection.tsv", "queries.train.tsv", "qrels.train.tsv"):
        shutil.copy(upstream_samples / "msmarco" / name, folder / name)
    with gzip.open(folder / "msmarco-hard-negatives.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return folder


def test_real_excerpts_count_every_collection_and_query_row_once(tmp_path, upstream_samples):
    """Every row of the real collection and queries is counted once: taken when a triplet
    that reaches its join names the id (as query, positive or negative), else not_used."""
    folder = _real_excerpts_with_hard_negatives(tmp_path, upstream_samples, [
        '{"qid": 121352, "pos": [99], "neg": {"bm25": [100, 99, 3], "tas-b": [3]}}',
        '{"qid": 634306, "pos": [10, 11], "neg": {"bm25": [12, 10, 200]}}',  # 200: negative_missing
        '{"qid": 920825, "pos": [20], "neg": {"bm25": [300]}}',  # 20 named only by a reject
        '{"qid": 510633, "pos": [30], "neg": {"bm25": [30]}}',   # no_negative: names nothing
        '{"qid": 999, "pos": [40], "neg": {"bm25": [41]}}',      # query_missing: stops there
        '{"qid": 737889, "pos": [500], "neg": {"bm25": [50]}}',  # positive_missing
    ])
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.reasons(DATASET) == {"negative_missing": 3, "no_negative": 1, "positive_missing": 1,
                                       "query_missing": 1}
    qids, pids = _named_ids(result)
    lines = {name: (folder / name).read_bytes().splitlines()
             for name in ("collection.tsv", "queries.train.tsv", "qrels.train.tsv")}
    counted = result.manifest["input_rows"]["msmarco"]
    assert counted == {"collection.tsv": _lookup_rows_by_hand(lines["collection.tsv"], pids),
                       "queries.train.tsv": _lookup_rows_by_hand(lines["queries.train.tsv"], qids),
                       "qrels.train.tsv": _qrels_rows_by_hand(lines["qrels.train.tsv"])}
    assert counted["collection.tsv"] == {"taken": 8, "skipped": {"not_used": 93}}
    assert counted["queries.train.tsv"] == {"taken": 4, "skipped": {"not_used": 6}}
    _assert_every_row_counted(counted, lines)


# -- builds: the real excerpts ------------------------------------------------------------------------

def test_real_excerpts_default_reads_qidpidtriples(tmp_path, upstream_samples):
    # No hard-negatives file among the excerpts: qidpidtriples is read. Its three lines
    # are for qids 662731, 527862, 984152, none of which is among the ten train queries.
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET])
    assert result.rows[DATASET] == []
    assert result.reasons(DATASET) == {"query_missing": 3}
    assert {r["record_id"] for r in result.rejects[DATASET]} == {
        "662731/193249/2975302", "527862/1505983/2975302", "984152/2304924/3372067"}
    # No triple names a train query, so no triplet reaches a join: every row is not_used.
    assert result.manifest["input_rows"]["msmarco"] == {
        "collection.tsv": {"taken": 0, "skipped": {"not_used": 101}},
        "queries.train.tsv": {"taken": 0, "skipped": {"not_used": 10}},
        "qrels.train.tsv": {"taken": 52, "skipped": {}}}


def test_real_excerpts_text_triples(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET],
                       source_options={"msmarco": {"negatives": "triples_small"}})
    assert result.reasons(DATASET) == {}
    rows = {r["anchor"]: r for r in result.rows[DATASET]}
    assert sorted(rows) == ["how large is the canadian military", "how many calories a day are lost breastfeeding",
                            "is a little caffeine ok during pregnancy", "types of fruit trees",
                            "what fruit is native to australia"]
    caffeine = rows["is a little caffeine ok during pregnancy"]
    assert caffeine["positive"].startswith("We don’t know a lot about the effects of caffeine during pregnancy")
    assert "If you’re pregnant, limit caffeine to 200 milligrams each day. This is about the amount in " \
           "1½ 8-ounce cups of coffee" in caffeine["positive"]
    assert caffeine["negative"].endswith("ensure their caffeine intake is below 200 mg per day.")
    assert rows["how large is the canadian military"]["positive"].endswith(
        "In Canada, August 9 is designated as National Peacekeepers’ Day.")
    # Inner double spaces of the release are collapsed by the core normalisation.
    assert "1 The first large-scale" in rows["how large is the canadian military"]["positive"]
    assert (rows["types of fruit trees"]["negative"] == "The kola nut is the fruit of the kola tree, a genus "
            "(Cola) of trees that are native to the tropical rainforests of Africa.")
    assert caffeine["record_id"] == "line 1" and caffeine["source_file"] == "msmarco/triples.train.small.tsv"


def test_real_collection_and_queries_joined_with_mined_negatives(tmp_path, upstream_samples):
    # The real collection, train queries and qrels, with a hard-negatives line in the
    # documented format that links real ids (no real line of that file is public).
    _real_excerpts_with_hard_negatives(tmp_path, upstream_samples, [
        '{"qid": 121352, "pos": [99], "neg": {"bm25": [100, 99, 3], "msmarco-distilbert-base-v3": [3]}}',
        '{"qid": 1185868, "pos": [16], "neg": {"bm25": [0]}}'])
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    rows = {r["record_id"]: r for r in result.rows[DATASET]}
    assert sorted(rows) == ["121352/99/100", "121352/99/3"]
    dvorak = rows["121352/99/100"]
    assert dvorak["anchor"] == "define extreme"
    assert dvorak["positive"].startswith("(1841 - 1904) Contrary to legend, Antonín Dvořák (September 8, 1841")
    assert dvorak["negative"].startswith("Antonín Dvorák (1841–1904) Antonin Dvorak was a son of butcher")
    assert "from 194 … 2-1946 under the control" in rows["121352/99/3"]["negative"]
    # qid 1185868 is judged in the real qrels but is not among the ten train queries.
    assert result.reasons(DATASET) == {"query_missing": 1}


# -- builds: bad input -------------------------------------------------------------------------------

def test_bad_inputs_end_in_counted_rejects(tmp_path):
    folder = tmp_path / "in" / "msmarco"
    folder.mkdir(parents=True)
    # Collection: gzip named .tsv (sniffed from the bytes).
    (folder / "collection.tsv").write_bytes(
        gzip.compress(b"0\talpha passage\n1\tbeta passage\n2\tgamma passage\n"))
    # Queries: named .tar.gz but a gzip of plain TSV (sniffed, read as text); one line
    # is Latin-1, not UTF-8.
    (folder / "queries.tar.gz").write_bytes(gzip.compress(b"10\tquery ten\n11\tcaf\xe9 query\n"))
    # Qrels: gzip whose trailer is cut off.
    (folder / "qrels.train.tsv.gz").write_bytes(gzip.compress(b"10\t0\t0\t1\n")[:-8])
    # An empty file that is not read: negatives=auto takes the hard negatives.
    (folder / "qidpidtriples.train.full.2.tsv").write_bytes(b"")
    # Hard negatives: named .gz but plain JSON lines.
    (folder / "msmarco-hard-negatives.jsonl.gz").write_text(
        '{"qid": 10, "pos": [0], "neg": {"bm25": [1, 2]}}\n'
        '[10, 0, 1]\n'
        '{"qid": 10.0, "pos": [0], "neg": {"bm25": [1]}}\n'
        '{"qid": 11, "pos": [true], "neg": {"bm25": [1]}}\n'
        '{"qid": 10, "pos": [1], "neg": {"bm25": [2]}}\n', encoding="utf-8")
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.pairs(DATASET) == {("query ten", "alpha passage", "beta passage"),
                                     ("query ten", "alpha passage", "gamma passage")}
    assert result.reasons(DATASET) == {
        "bad_encoding": 1, "duplicate_query_line": 1, "malformed_record": 2,
        "not_an_object": 1, "unreadable_file": 1}
    unreadable = [r for r in result.rejects[DATASET] if r["reason"] == "unreadable_file"]
    assert unreadable[0]["source_file"] == "msmarco/qrels.train.tsv.gz"
    assert "ended before the end-of-stream marker" in unreadable[0]["detail"]
    duplicate = [r for r in result.rejects[DATASET] if r["reason"] == "duplicate_query_line"]
    assert duplicate[0]["record_id"] == "line 5"


def test_empty_negatives_file_is_a_reject(tmp_path):
    folder = tmp_path / "in" / "msmarco"
    folder.mkdir(parents=True)
    (folder / "collection.tsv").write_bytes(b"0\talpha passage\n")
    (folder / "queries.train.tsv").write_bytes(b"10\tquery ten\n")
    (folder / "qidpidtriples.train.full.2.tsv.gz").write_bytes(gzip.compress(b""))
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.rows[DATASET] == []
    assert result.reasons(DATASET) == {"empty_file": 1}


def test_selection_key_of_one_candidate_equals_the_vectorised_keys():
    import numpy as np

    from pipelines.sources.msmarco.rules import selection_keys

    rng = np.random.default_rng(0)
    qids, positives, negatives = (rng.integers(-2**40, 2**62, 500) for _ in range(3))
    keys = selection_keys("salt", qids, positives, negatives)
    assert [selection_key("salt", int(q), int(p), int(n)) for q, p, n in zip(qids, positives, negatives)] \
        == [int(k) for k in keys]


class TestMsmarcoSample(SourceCase):
    SOURCE = "msmarco"
    ROWS = {"msmarco_triplets": 9}

    def test_every_collection_and_query_row_is_counted_once(self, build):
        # Passages 0..6 are all named; the 3 bad lines are rejected records (taken); query
        # 103 gives no triplet (no_negative) and 105 is no train query.
        qids, pids = _named_ids(build)
        lines = {name: _sample_lines(name) for name in ("collection.tsv", "queries.train.tsv", "qrels.train.tsv")}
        counted = build.manifest["input_rows"]["msmarco"]
        assert counted == {"collection.tsv": _lookup_rows_by_hand(lines["collection.tsv"], pids),
                           "queries.train.tsv": _lookup_rows_by_hand(lines["queries.train.tsv"], qids),
                           "qrels.train.tsv": _qrels_rows_by_hand(lines["qrels.train.tsv"])}
        assert counted == {"collection.tsv": {"taken": 10, "skipped": {}},
                           "queries.train.tsv": {"taken": 4, "skipped": {"not_used": 1}},
                           "qrels.train.tsv": {"taken": 8, "skipped": {}}}
        _assert_every_row_counted(counted, lines)
