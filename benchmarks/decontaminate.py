"""Measure decontamination: the evaluation index, the step alone, and whole builds.

    python -m benchmarks.decontaminate                      # 50,000 queries; 2,000,000 rows of each kind
    python -m benchmarks.decontaminate --rows 500000 --builds msmarco,stackexchange --repeat 2

It writes an evaluation set in the BEIR layout (``--queries`` queries, all judged in
``qrels/test.tsv``, a relevant passage for one in five), then measures, in this process:

* ``index``  reading it and building the :class:`~pipelines.corpus.overlap.EvalIndex`
             (what ``corpus build --decontaminate`` does once, before the pipeline), the
             index's size, and decoding it (what each worker does once);
* ``step``   :class:`~pipelines.filters.decontaminate.DropOverlaps` over a stream of Arrow
             tables of ``TABLE_ROWS`` rows (``--rows`` rows of each kind), and over dicts:
             ``msmarco`` (a query, its relevant passage and a negative; query and passage
             repeat over 35 rows, as MS MARCO's triplets reach the step), ``stackexchange``
             (a title and a body of 80-250 words, every row distinct) and ``pairs`` (a
             question and a short answer, as PAQ, WikiAnswers or GooAQ). One row in 2,000
             carries an evaluation query (exact, re-cased, or paraphrased by a few words);
             the rows dropped are printed with the rows/s.

With ``--builds``, it also runs ``corpus build`` of the named sources' benchmark inputs
(:mod:`benchmarks.run`, ``--scale``) with and without ``--decontaminate``, each in a process
of its own on one worker, and prints the ratio of their times (the target: at most 1.25).

Texts mix English function words, the generated inputs' common words and rarer made-up
words drawn Zipf-like from 40,000, as real queries mix frequent and rare words. Nothing is
asserted; a shared machine moves the figures by 10-20%, so compare within a run.
"""
from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks import synthetic
from benchmarks.run import work_folder
from pipelines.corpus.overlap import FUNCTION_WORDS, EvalIndex
from pipelines.corpus.schema import make_rows

TABLE_ROWS = 16_384
POOL = 50_000          # distinct texts of each kind a stream is cut from
PLANT_EVERY = 2_000
RARE_WORDS = 40_000
KINDS = ("msmarco", "stackexchange", "pairs")


class Language:
    """Seeded words: function words, the benchmark inputs' common words, and rare words."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "qu", "ar", "en", "ol", "is", "um", "pe"]
        self.rare = ["".join(self.rng.choice(syllables) for _ in range(self.rng.randint(2, 4)))
                     for _ in range(RARE_WORDS)]
        self.rare_weights = [1 / (n + 10) for n in range(RARE_WORDS)]
        self.function = list(FUNCTION_WORDS)

    def words(self, count: int, function_share: float) -> list[str]:
        rng = self.rng
        rare = rng.choices(self.rare, self.rare_weights, k=count)
        return [rng.choice(self.function) if rng.random() < function_share
                else rng.choice(synthetic._WORDS) if rng.random() < 0.3 else rare[n] for n in range(count)]

    def query(self) -> str:
        start = self.rng.choice(["what is the", "how do i", "why does", "when did", "who is", "where can i",
                                 "how to", "what are", "is it"])
        return f"{start} {' '.join(self.words(self.rng.randint(2, 7), 0.2))}?".capitalize()

    def passage(self, low: int, high: int) -> str:
        return " ".join(self.words(self.rng.randint(low, high), 0.45)).capitalize() + "."


def write_evalset(folder: Path, queries: int, language: Language) -> list[str]:
    """A BEIR folder of ``queries`` queries, a relevant passage for one in five; returns
    the queries."""
    texts = [language.query() for _ in range(queries)]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "queries.jsonl", "w") as q, open(folder / "corpus.jsonl", "w") as c, \
            open(folder / "qrels" / "test.tsv", "w") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for n, text in enumerate(texts):
            q.write(json.dumps({"_id": f"q{n}", "text": text}) + "\n")
            if n % 5 == 0:
                c.write(json.dumps({"_id": f"d{n}", "title": "", "text": language.passage(50, 120)}) + "\n")
            # Every query judged (qrels name the queries evaluated), one in five relevant to its passage.
            r.write(f"q{n}\td{n - n % 5}\t{int(n % 5 == 0)}\n")
    return texts


def _planted(query: str, n: int) -> str:
    """An evaluation query as a row carries it: as it is, re-cased and re-punctuated, or
    with a word added."""
    if n % 3 == 0:
        return query
    if n % 3 == 1:
        return query.upper().replace("?", " !!")
    words = query.split()
    return " ".join(words[:2] + ["really"] + words[2:])


def table_stream(kind: str, rows: int, language: Language, queries: list[str]):
    """Arrow tables of ``kind`` rows in the row schema, ``TABLE_ROWS`` rows each. The texts
    come from the evaluation set's language: a few are evaluation texts by chance, as in
    real data, besides those planted."""
    rng = np.random.default_rng(1)
    if kind == "msmarco":
        anchors = pa.array([language.query() for _ in range(POOL)])
        positives = negatives = pa.array([language.passage(40, 90) for _ in range(POOL)])
    elif kind == "stackexchange":
        anchors = pa.array([language.query().rstrip("?") for _ in range(POOL)])
        positives = pa.array([language.passage(80, 250) for _ in range(POOL)])
        negatives = None
    else:
        anchors = pa.array([language.query() for _ in range(POOL)])
        positives = pa.array([language.passage(8, 30) for _ in range(POOL)])
        negatives = None
    planted = 0
    for start in range(0, rows, TABLE_ROWS):
        count = min(TABLE_ROWS, rows - start)
        if kind == "msmarco":  # a query and its passage over 35 triplets, side by side
            pick = np.repeat(rng.integers(0, POOL, count // 35 + 1), 35)[:count]
            anchor, positive = anchors.take(pick), positives.take(pick)
            negative = negatives.take(rng.integers(0, POOL, count))
        else:  # distinct rows: the pool's texts with the row's number
            number = pa.array([f" {n}" for n in range(start, start + count)])
            anchor = pc.binary_join_element_wise(anchors.take(rng.integers(0, POOL, count)), number, "")
            positive = pc.binary_join_element_wise(positives.take(rng.integers(0, POOL, count)), number, "")
            negative = None
        anchor = anchor.to_pylist()
        for at in range(PLANT_EVERY - start % PLANT_EVERY, count, PLANT_EVERY):
            anchor[at] = _planted(queries[planted * 7919 % len(queries)], planted)
            planted += 1
        yield make_rows(kind, pa.array(anchor, pa.string()), positive, negative,
                        source_file=pa.array([f"{kind}/bench"] * count),
                        record_id=pa.array([str(n) for n in range(start, start + count)]))


def measure_step(kind: str, rows: int, language: Language, queries: list[str], index: bytes) -> dict:
    """The step over the tables of ``kind``, and over dicts of its first rows."""
    from pipelines.filters.decontaminate import DropOverlaps

    tables = list(table_stream(kind, rows, language, queries))
    result = {}
    for label, elements in (("tables", tables),
                            ("dicts", [row for table in tables[:4] for row in table.to_pylist()])):
        step = DropOverlaps(kind)
        started = time.perf_counter()
        step.start_bundle()
        outputs = [out for element in elements for out in step.process(element, index)]
        outputs += list(step.finish_bundle())
        seconds = time.perf_counter() - started
        count = len(elements) if label == "dicts" else sum(t.num_rows for t in elements)
        dropped = sum(1 for out in outputs if getattr(out, "tag", None) == "rejected")
        result[label] = {"rows": count, "seconds": seconds, "rows_per_second": count / seconds, "dropped": dropped}
        print(f"  step {kind:<13} {label:<6} {count:>10,} rows  {seconds:>7.2f} s  "
              f"{count / seconds:>10,.0f} rows/s  dropped {dropped:,} (planted {count // PLANT_EVERY:,})", flush=True)
    return result


def measure_builds(names: list[str], work: Path, scale: float, evalset: Path, repeat: int) -> dict:
    from benchmarks import run

    results = {}
    for name in names:
        bench = run.BENCHES[name]
        root = work / name / "input"
        bench.generate(root, scale)
        times = {}
        for label, extra in (("plain", []), ("decontaminate", ["--decontaminate", str(evalset)])):
            out = work / name / label
            measurement = run.fastest(functools.partial(run.run_pipeline, bench, root, out, 1, label, extra), repeat)
            manifest = json.loads((out / "manifest.json").read_text())
            dropped = sum(manifest["datasets"][d]["rejected"]["by_reason"].get("eval_overlap", 0)
                          for d in bench.datasets)
            times[label] = measurement.seconds
            print(f"  build {name:<13} {label:<13} {measurement.rows:>10,} rows  {measurement.seconds:>7.1f} s  "
                  f"peak {measurement.peak_rss_mb:>6,.0f} MB  dropped {dropped:,}", flush=True)
        results[name] = {**times, "ratio": times["decontaminate"] / times["plain"]}
        print(f"  build {name:<13} decontaminate / plain: {results[name]['ratio']:.2f}", flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=50_000, help="queries of the evaluation set")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of each kind through the step")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"among {', '.join(KINDS)}")
    parser.add_argument("--builds", default="", help="sources of benchmarks.run to build with and without")
    parser.add_argument("--scale", type=float, default=1.0, help="input size of the builds")
    parser.add_argument("--repeat", type=int, default=1, help="builds: keep the fastest of this many runs")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    from pipelines.corpus.evalsets import read_evalsets

    language = Language(7)
    with work_folder(args.keep, "corpus-decontaminate-") as work:
        evalset = work / "evalset"
        queries = write_evalset(evalset, args.queries, language)
        started = time.perf_counter()
        index = read_evalsets([str(evalset)]).index.to_bytes()
        built = time.perf_counter() - started
        started = time.perf_counter()
        EvalIndex.from_bytes(index)
        decoded = time.perf_counter() - started
        results = {"index": {"queries": args.queries, "read_and_build_seconds": built, "bytes": len(index),
                             "decode_seconds": decoded}}
        print(f"index: {args.queries:,} queries and {args.queries // 5:,} passages read and indexed in "
              f"{built:.2f} s; {len(index) / 1e6:.1f} MB; decoded in {decoded:.2f} s", flush=True)
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            results[kind] = measure_step(kind, args.rows, language, queries, index)
        if args.builds:
            results["builds"] = measure_builds([s.strip() for s in args.builds.split(",") if s.strip()],
                                               work, args.scale, evalset, max(1, args.repeat))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
