"""Builds with the options beyond the original corpus, end to end on the bundled samples:
``--decontaminate`` with overlaps planted in MS MARCO, Quora, Natural Questions and
StackExchange rows, and ``--dedup exact`` and ``--dedup near`` across datasets. Each is
compared with the plain sample build. (``--licences commercial``: tests/corpus/test_licences.py.)"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from pipelines.corpus.matching import match_form
from tests.helpers import read_output, run_build
from tests.sample_corpus import sample_corpus

# (evaluation id, text, the sample row text it was made from): an exact copy, one re-cased
# and re-punctuated, two paraphrased by a word or two, and a relevant passage.
PLANTED = [
    ("q-msmarco", "how long to steep green tea", "how long to steep green tea"),
    ("q-quora", "HOW do I become fluent, in spoken English??",
     "How do I become fluent in spoken English?"),
    ("q-nq", "who discovered penicillin and in which year", "who discovered penicillin and in what year"),
    ("q-se", "How do I get a reversed copy of a Python list?",
     "How do I get a reversed copy of a list in Python?"),
]
PASSAGE = ("d-nq", "Google was founded in 1998 by : Larry Sergey")
UNRELATED = ["what is the boiling point of mercury", "best hiking trails near the alps in autumn",
             "How do I configure a reverse proxy with nginx?"]


def _write_beir(folder):
    (folder / "qrels").mkdir(parents=True)
    queries = [(qid, text) for qid, text, _ in PLANTED] + [(f"u{n}", t) for n, t in enumerate(UNRELATED)]
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": PASSAGE[0], "title": "", "text": PASSAGE[1]}) + "\n"
                                         + json.dumps({"_id": "d-other", "title": "", "text": "Not relevant."}) + "\n")
    # The evaluation queries are those the qrels judge (BEIR's queries.jsonl holds every split).
    judged = [f"{qid}\td-other\t0\n" for qid, _ in queries if qid != "u0"]
    (folder / "qrels" / "test.tsv").write_text(
        f"query-id\tcorpus-id\tscore\nu0\t{PASSAGE[0]}\t1\n" + "".join(judged))
    (folder / "queries.jsonl").open("a").write(json.dumps({"_id": "train-1", "text": PLANTED[0][1] + " ok"}) + "\n")
    return folder


def _shards(output):
    return {p.relative_to(output): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and (p.suffix == ".parquet" or p.name.endswith(".jsonl.gz"))}


RERUN = ("msmarco_triplets", "quora_triplets")
YAHOO = ("yahoo_answers_title_answer", "yahoo_answers_title_question", "yahoo_answers_question_answer")


@pytest.fixture(scope="module")
def decontaminated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evalsets")
    evalset = _write_beir(folder / "planted")
    return run_build(folder / "out1", sample=True, decontaminate=(str(evalset),)), evalset


def test_every_planted_overlap_is_dropped_and_nothing_else(decontaminated):
    result, _ = decontaminated
    plain = read_output(sample_corpus())
    originals = {match_form(source): qid for qid, _, source in PLANTED}
    originals[match_form(PASSAGE[1])] = f"corpus:{PASSAGE[0]}"  # a passage's id is marked
    expected = {(dataset, row["record_id"]): originals.get(match_form(row["anchor"]))
                or originals.get(match_form(row["positive"]))
                for dataset, rows in plain.rows.items() for row in rows
                if match_form(row["anchor"]) in originals or match_form(row["positive"]) in originals}
    dropped = {(dataset, reject["record_id"]): reject for dataset, rejects in result.rejects.items()
               for reject in rejects if reject["reason"] == "eval_overlap"}
    assert {key: None for key in dropped} == {key: None for key in expected}
    for key, reject in dropped.items():
        assert "evaluation set 'planted'" in reject["detail"] and f"'{expected[key]}'" in reject["detail"]
    # Every planted query and the passage found rows, in the four sources named.
    assert set(expected.values()) == {qid for qid, _, _ in PLANTED} | {f"corpus:{PASSAGE[0]}"}
    assert {"msmarco_triplets", "quora_triplets", "natural_questions", "stackexchange_title_body"} <= \
        {dataset for dataset, _ in dropped}
    # Kept rows are the plain build's rows less the dropped ones.
    for dataset, rows in plain.rows.items():
        left = [row for row in rows if (dataset, row["record_id"]) not in dropped]
        assert sorted(r["record_id"] for r in result.rows[dataset]) == sorted(r["record_id"] for r in left)


def test_a_decontaminated_build_accounts_for_every_row_and_reruns_identically(decontaminated, tmp_path):
    first, evalset = decontaminated
    manifest = first.manifest
    for dataset, entry in manifest["datasets"].items():
        if entry["status"] != "built":
            continue
        assert entry["accounting"]["rows"]["holds"] and entry["accounting"]["records"]["holds"] is not False
        dropped = entry["rejected"]["by_reason"].get("eval_overlap", 0)
        assert entry.get("overlap", {}).get("planted", 0) == dropped
        assert entry["verdict"] == "match"  # judged on the rows before the filter
    assert manifest["run"]["decontaminate"][0]["name"] == "planted"
    assert all(len(f["sha256"]) == 64 for f in manifest["run"]["decontaminate"][0]["files"])
    # A dataset's shards depend on its own rows only: a rerun of two of the datasets with
    # planted overlaps writes their files again, byte for byte.
    again = run_build(tmp_path / "again", sample=True, datasets=RERUN, decontaminate=(str(evalset),))
    rerun = _shards(again.output)
    assert rerun and rerun == {path: data for path, data in _shards(first.output).items()
                               if any(dataset in path.parts for dataset in RERUN)}


def test_changing_an_evaluation_set_changes_the_fingerprint(tmp_path):
    evalset = _write_beir(tmp_path / "planted")
    output = tmp_path / "out"
    run_build(output, sample=True, datasets=("quora_triplets",), decontaminate=(str(evalset),))
    before = json.loads((output / "manifest.json").read_text())["fingerprint"]
    with open(evalset / "queries.jsonl", "a") as stream:
        stream.write(json.dumps({"_id": "q-new", "text": "How can I speak English fluently?"}) + "\n")
    result = run_build(output, sample=True, datasets=("quora_triplets",), decontaminate=(str(evalset),),
                       force=True)
    assert result.manifest["fingerprint"] != before
    assert result.manifest["datasets"]["quora_triplets"]["overlap"]["planted"] > 0


def test_a_bad_evaluation_file_is_one_line(tmp_path, capsys):
    from pipelines import cli

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "fine"}\n{not json\n')
    code = cli.run(["build", "--sample", "--output", str(tmp_path / "out"), "--decontaminate", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bad.jsonl" in err[0]


def _keys(rows):
    return Counter((match_form(r["anchor"]), match_form(r["positive"]),
                    None if r["negative"] is None else match_form(r["negative"])) for r in rows)


# The datasets the dedup builds take: the three Yahoo ones (the sample holds a row in two of
# them) and two others, so that duplicates are looked for across sources too.
DEDUP = YAHOO + ("quora_triplets", "squad")


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_dedup_keeps_one_copy_across_datasets_and_names_it(tmp_path, mode):
    plain = read_output(sample_corpus())
    result = run_build(tmp_path / "out", sample=True, dedup=mode, datasets=DEDUP)
    if mode == "exact":  # a rerun writes the same bytes
        again = run_build(tmp_path / "again", sample=True, dedup=mode, datasets=DEDUP)
        assert _shards(again.output) == _shards(result.output)
    kept = [row for rows in result.rows.values() for row in rows]
    everything = [row for dataset in DEDUP for row in plain.rows[dataset]]
    # No two rows left share their texts' match forms, and every text the plain build had
    # is still there once.
    assert max(_keys(kept).values()) == 1
    assert set(_keys(kept)) <= set(_keys(everything))
    if mode == "exact":
        assert set(_keys(kept)) == set(_keys(everything))
    duplicates = [r for rejects in result.rejects.values() for r in rejects if r["reason"] == "duplicate"]
    assert len(kept) + len(duplicates) == len(everything)
    assert duplicates, "the sample holds a row in two Yahoo datasets"
    by_id = {(r["dataset"], r["source_file"], r["record_id"]) for r in kept}
    for reject in duplicates:
        detail = reject["detail"]
        assert any(f"of {d} {f} record {i}" in detail for d, f, i in by_id), detail
    for dataset, entry in result.manifest["datasets"].items():
        if entry["status"] == "built":
            assert entry["accounting"]["rows"]["holds"]
            assert entry["verdict"] == "match"


def test_the_report_shows_overlap_per_dataset_and_evaluation_set(decontaminated):
    from pipelines import report

    html = report.render(str(decontaminated[0].output))
    section = html[html.index('id="filters"'):]
    assert "planted" in section.split("</table>")[0]
    assert "msmarco_triplets" in section.split("</table>")[0]
