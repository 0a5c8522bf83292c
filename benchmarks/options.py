"""The cost of the build's options, in one run, on generated upstream-format inputs.

    python -m benchmarks.options                      # every benchmark source at the default size
    python -m benchmarks.options --sources msmarco,paq --scale 2 --queries 50000

For each source it generates the inputs of :mod:`benchmarks.run` once, and an evaluation
set in the BEIR layout (``--queries`` queries, a relevant passage for one query in five),
then times ``corpus build`` of that source, each in a process of its own and on one
worker: plain, with ``--decontaminate`` against the evaluation set, with ``--dedup
exact``, and with ``--dedup near``. It prints each build's wall time and peak memory, the
rows each option dropped, and the ratio of its time to the plain build's (the cost the
options are judged by: at most 1.25 for decontamination and exact dedup). Start-up is
part of every build alike, so at the default size a ratio understates the cost a big
build sees; ``--scale`` moves it towards that. Nothing is asserted: the figures are what
this machine measured in this run, and a shared machine moves them by 10-20%.

The evaluation texts are made of the generated inputs' common words and of rarer words
(a Zipf-like draw from 20,000 made-up words), as real queries are; a query of common
words only would match many generated rows, which real queries do not.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

from benchmarks import run, synthetic

OPTIONS = {
    "plain": [],
    "decontaminate": ["--decontaminate", "{evalset}"],
    "dedup exact": ["--dedup", "exact"],
    "dedup near": ["--dedup", "near"],
}
RARE_WORDS = 20_000


def _rare_words(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "qu", "ar", "en", "ol", "is"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) + str(n % 97)
            for n in range(RARE_WORDS)]


def write_evalset(folder: Path, queries: int, seed: int = 7) -> None:
    """A BEIR-layout evaluation set: ``queries.jsonl``, ``corpus.jsonl`` (a passage for one
    query in five) and ``qrels/test.tsv``."""
    rng = random.Random(seed)
    rare = _rare_words(rng)
    common = synthetic._WORDS

    def text(low: int, high: int) -> str:
        words = [rng.choice(common) if rng.random() < 0.6
                 else rare[min(int(rng.paretovariate(1.1)) - 1, RARE_WORDS - 1) if rng.random() < 0.3
                           else rng.randrange(RARE_WORDS)]
                 for _ in range(rng.randint(low, high))]
        return " ".join(words).capitalize()

    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "queries.jsonl", "w") as q, open(folder / "corpus.jsonl", "w") as c, \
            open(folder / "qrels" / "test.tsv", "w") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for n in range(queries):
            q.write(json.dumps({"_id": f"q{n}", "text": text(4, 12) + "?"}) + "\n")
            if n % 5 == 0:
                c.write(json.dumps({"_id": f"d{n}", "title": "", "text": text(40, 120) + "."}) + "\n")
                r.write(f"q{n}\td{n}\t1\n")


def _dropped(out: Path, datasets) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    dropped: dict[str, int] = {}
    for dataset in datasets:
        for reason, n in manifest["datasets"][dataset]["rejected"]["by_reason"].items():
            if reason in ("eval_overlap", "duplicate"):
                dropped[reason] = dropped.get(reason, 0) + n
    return dropped


def benchmark(bench: run.Bench, work: Path, scale: float, evalset: Path, options, repeat: int) -> dict:
    root = work / bench.name / "input"
    shutil.rmtree(root, ignore_errors=True)
    bench.generate(root, scale)
    print(f"{bench.name} (scale {scale:g})")
    results = {}
    for label in options:
        extra = [arg.format(evalset=evalset) for arg in OPTIONS[label]]
        out = work / bench.name / label.replace(" ", "-")
        m = run.fastest(lambda: run.run_pipeline(bench, root, out, 1, label, extra), repeat)
        results[label] = {"seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "rows": m.rows,
                          "dropped": _dropped(out, bench.datasets)}
        plain = results.get("plain", {}).get("seconds")
        ratio = f"{m.seconds / plain:5.2f}x plain" if plain else ""
        dropped = ", ".join(f"{k} {v:,}" for k, v in results[label]["dropped"].items()) or "none dropped"
        print(f"  {label:<14} {m.rows:>10,} rows  {m.seconds:>7.1f} s  peak {m.peak_rss_mb:>6,.0f} MB  "
              f"{ratio:<12}  {dropped}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="input size multiplier")
    parser.add_argument("--sources", default=",".join(run.BENCHES), help="comma-separated sources")
    parser.add_argument("--options", default=",".join(OPTIONS),
                        help=f"comma-separated, among: {', '.join(OPTIONS)} (plain is always run)")
    parser.add_argument("--queries", type=int, default=50_000, help="queries of the evaluation set")
    parser.add_argument("--repeat", type=int, default=1, help="keep the fastest of this many runs")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    options = ["plain"] + [o.strip() for o in args.options.split(",") if o.strip() and o.strip() != "plain"]
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        parser.error(f"unknown option {', '.join(unknown)}")
    results = {}
    with run.work_folder(args.keep, "corpus-options-") as work:
        evalset = work / "evalset"
        write_evalset(evalset, args.queries)
        print(f"evaluation set: {args.queries:,} queries (BEIR layout) in {evalset}")
        for name in [s.strip() for s in args.sources.split(",") if s.strip()]:
            results[name] = benchmark(run.BENCHES[name], work, args.scale, evalset, options, max(1, args.repeat))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
