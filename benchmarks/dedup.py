"""Measure what exact deduplication adds to a build: its rows/s, and its time against the
time of writing the same rows (the build's last step), each variant in its own process.

    python -m benchmarks.dedup                     # 2,000,000 rows, one local worker
    python -m benchmarks.dedup --rows 500000 --variants generate,write,dedup,near --repeat 3
    python -m benchmarks.dedup --builds msmarco,wikianswers   # whole builds with and without --dedup exact

Rows are generated inside each pipeline (``beam.Create`` of small seeds, then a ``Map``
building Arrow tables of ``TABLE_ROWS`` rows in the row schema), as three datasets of
realistic shape: MS MARCO-like triplets (a query, its relevant passage, one of 35
negatives: query and passage repeat with every negative), PAQ-like pairs (a generated
question, a 100-word passage) and GooAQ-like pairs (a search query, a snippet). One row
in fifty is a copy of another of its table, spelled differently (case, punctuation), and
one pair in 250 is shared by the two pair datasets (copies across datasets). The texts
are slices of a stream of words from a small vocabulary, so short anchors overlap far
more than real ones: the near-duplicate search drops far more here than it would in a
build. The variants:

* ``generate``  the generation alone (Beam's start and the inputs), to subtract;
* ``write``     generation, then :class:`~pipelines.engine.write.WriteShards` per dataset;
* ``dedup``     generation, :class:`~pipelines.filters.dedup.DropDuplicates` over all
                datasets, then the same writing (the dropped rows' rejects are counted,
                not written);
* ``near``      (only when asked for) generation, then
                :class:`~pipelines.filters.near_dedup.DropNearDuplicates` per dataset,
                then the same writing.

With ``--builds``, it also runs ``corpus build`` on the named sources' benchmark inputs
(:mod:`benchmarks.run`, at ``--scale``, 4 by default: the 4x input) without and with
``--dedup exact``, and prints what the dedup adds to each build: the target is 25%.
MS MARCO's build is the fastest per row of text, so the dedup weighs most there.

Printed: wall, CPU and peak memory per variant; the time of writing (``write`` less
``generate``), of the dedup (``dedup`` less ``write``), the dedup's rows/s and its time
as a share of the writing's (and the same of the near-duplicate search, when run).
Nothing is asserted; a shared machine moves the figures by 10-20% or more (``--repeat``
keeps each variant's fastest run), so compare within a run.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

TABLE_ROWS = 50_000
VARIANTS = ("generate", "write", "dedup")
DATASETS = ("msmarco_triplets", "paq", "gooaq")
NEGATIVES = 35
COPY_EVERY = 50


@functools.cache
def _pool(seed: int):
    """A seeded pool of words (the benchmarks' vocabulary) and where each word starts."""
    import numpy as np

    from benchmarks.synthetic import _WORDS
    rng = np.random.default_rng(seed)
    words = [_WORDS[i] for i in rng.integers(0, len(_WORDS), 400_000).tolist()]
    text = " ".join(words)
    starts = np.concatenate(([0], np.cumsum([len(w) + 1 for w in words])))
    return text, starts


def make_table(seed: tuple[str, int, int]):
    """The Arrow table of chunk ``seed = (dataset, index, seed)``, the same on every run."""
    import numpy as np
    import pyarrow as pa

    from pipelines.corpus.schema import row_arrow_schema
    dataset, index, base_seed = seed
    text, starts = _pool(base_seed)
    rng = np.random.default_rng([base_seed, index, DATASETS.index(dataset)])
    n = TABLE_ROWS

    def texts(count, low, high, suffix="", rng=rng):
        first = rng.integers(0, len(starts) - high - 1, count)
        last = first + rng.integers(low, high + 1, count)
        return [text[starts[a]:starts[b] - 1].capitalize() + suffix
                for a, b in zip(first.tolist(), last.tolist())]

    negative = None
    if dataset == "msmarco_triplets":
        queries = n // NEGATIVES + 1
        anchor = np.repeat(texts(queries, 3, 9), NEGATIVES)[:n].tolist()
        positive = np.repeat(texts(queries, 40, 90, "."), NEGATIVES)[:n].tolist()
        negative = texts(n, 40, 90, ".")
    elif dataset == "paq":
        anchor, positive = texts(n, 5, 12, "?"), texts(n, 90, 110, ".")
    else:
        anchor, positive = texts(n, 3, 8), texts(n, 20, 60, ".")
    if negative is None:
        # Every fifth copy is of the other pair dataset's table of the same group (the same
        # texts in PAQ-like and GooAQ-like rows): copies across datasets.
        shared = np.random.default_rng([base_seed, index // len(DATASETS)])
        across = range(0, n, 5 * COPY_EVERY)
        anchor_shared, positive_shared = texts(len(across), 5, 10, "?", shared), texts(len(across), 20, 60, ".", shared)
        for k, row in enumerate(across):
            anchor[row] = anchor_shared[k] if dataset == "paq" else anchor_shared[k].lower()
            positive[row] = positive_shared[k]
    # One row in COPY_EVERY repeats an earlier one, upper-cased and with its full stops
    # dropped (the same match forms).
    for row in range(COPY_EVERY - 1, n, COPY_EVERY):
        source = int(rng.integers(0, row))
        anchor[row] = anchor[source].upper()
        positive[row] = positive[source].replace(".", "")
        if negative is not None:
            negative[row] = negative[source].upper()
    record_ids = [f"{index}-{row}" for row in range(n)]
    table = {"anchor": anchor, "positive": positive, "negative": negative or [None] * n,
             "dataset": [dataset] * n, "subset": [""] * n, "source_file": ["train.jsonl"] * n,
             "record_id": record_ids}
    schema = row_arrow_schema()
    columns = [table[name] if name in table else ["cc-by-sa-4.0"] * n if not field.nullable else [None] * n
               for name, field in zip(schema.names, schema)]
    return pa.table(columns, schema=schema)


def seeds(rows: int, seed: int) -> dict[str, list]:
    tables = max(1, -(-rows // TABLE_ROWS))
    return {d: [(d, i, seed) for i in range(j, tables, len(DATASETS))] for j, d in enumerate(DATASETS)}


def run_variant(variant: str, rows: int, seed: int, work: str, beam_args: list[str]) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.corpus import registry
    from pipelines.engine import tables
    from pipelines.engine.shards import ParquetShards, ShardingConfig
    from pipelines.engine.write import WriteShards
    from pipelines.filters.dedup import DropDuplicates
    from pipelines.filters.near_dedup import DropNearDuplicates

    config = ShardingConfig()
    options = PipelineOptions([*beam_args, f"--scratch_dir={work}/scratch"])
    with beam.Pipeline(options=options) as pipeline:
        by_dataset = {d: pipeline | f"Seeds{d}" >> beam.Create(chunks) | f"Make{d}" >> tables(beam.Map(make_table))
                      for d, chunks in seeds(rows, seed).items() if chunks}
        if variant == "generate":  # (a Flatten of the tables would hold them all in memory)
            ([tables_of | f"Rows{d}" >> beam.Map(lambda t: t.num_rows) for d, tables_of in by_dataset.items()]
             | beam.Flatten() | beam.CombineGlobally(sum) | beam.Map(_save, f"{work}/out.json"))
            return
        if variant == "dedup":
            deduped = by_dataset | DropDuplicates(list(by_dataset))
            deduped.rejects | "CountRejects" >> beam.combiners.Count.Globally()
            by_dataset = deduped.rows
        if variant == "near":
            near = {d: rows_of | f"Near{d}" >> DropNearDuplicates(d) for d, rows_of in by_dataset.items()}
            for d, result in near.items():
                result.rejects | f"CountRejects{d}" >> beam.combiners.Count.Globally()
            by_dataset = {d: result.rows for d, result in near.items()}
        summaries = [
            rows_of | f"Write{d}" >> WriteShards(
                f"{work}/out/{d}", d, ParquetShards(config, registry.get(d).repeated_texts), config,
                spill_dir=f"{work}/spill/{d}", subset_field=None)
            for d, rows_of in by_dataset.items()]
        (summaries | "Summaries" >> beam.Flatten()
         | beam.Map(lambda s: sum(shard["rows"] for shard in s["shards"]))
         | "Total" >> beam.CombineGlobally(sum) | beam.Map(_save, f"{work}/out.json"))


def _save(rows: int, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        json.dump({"rows": rows}, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--work", help="folder for the outputs (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each variant this many times and keep the fastest (by wall time)")
    parser.add_argument("--builds", default="", help="sources whose builds to time without and with --dedup exact")
    parser.add_argument("--scale", type=float, default=4.0, help="input size of --builds (benchmarks.run's scale)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # the child process
    args, beam_args = parser.parse_known_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="dedup-bench-")
    if args.variant:
        run_variant(args.variant, args.rows, args.seed, work, beam_args)
        return 0

    from benchmarks.run import measure
    options = beam_args or ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    variants = [v for v in args.variants.split(",") if v]
    if variants:
        print(f"{args.rows:,} rows in tables of {TABLE_ROWS:,} ({', '.join(DATASETS)}), one in {COPY_EVERY} "
              f"a copy; work folder {work}", flush=True)
    results = {}
    try:
        for variant in variants:
            folder = f"{work}/{variant}"
            command = [sys.executable, "-m", "benchmarks.dedup", "--variant", variant, "--rows", str(args.rows),
                       "--seed", str(args.seed), "--work", folder, *options]
            # On a shared machine a run is only ever slowed down by others: keep the fastest.
            for _ in range(max(1, args.repeat)):
                seconds, peak, cpu, _, _ = measure(command)
                with open(f"{folder}/out.json") as f:
                    written = json.load(f)["rows"]
                shutil.rmtree(folder, ignore_errors=True)
                if variant not in results or seconds < results[variant]["seconds"]:
                    results[variant] = {"seconds": seconds, "peak": peak, "cpu": cpu, "rows": written}
            best = results[variant]
            print(f"  {variant:<8} {best['seconds']:7.1f} s wall {best['cpu']:7.1f} s CPU {best['peak']:7,.0f} MB "
                  f"peak {best['rows']:>11,} rows out", flush=True)
        report(results, args.rows)
        if args.builds:
            measure_builds([b.strip() for b in args.builds.split(",") if b.strip()], args.scale,
                           max(1, args.repeat), Path(work))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def measure_builds(sources: list[str], scale: float, repeat: int, work: Path) -> None:
    """Time each source's build without and with ``--dedup exact`` (fastest of ``repeat``)."""
    from benchmarks.run import BENCHES, fastest, run_pipeline

    print(f"\nbuilds at scale {scale:g}, one worker:")
    for name in sources:
        bench = BENCHES[name]
        root = work / f"{name}-input"
        bench.generate(root, scale)
        plain, exact = (fastest(partial(run_pipeline, bench, root, work / f"{name}-{label}", 1, label, extra), repeat)
                        for label, extra in (("plain", []), ("exact", ["--dedup", "exact"])))
        print(f"  {name}: {plain.rows:,} rows; build {plain.seconds:.1f} s wall {plain.cpu_seconds:.1f} s CPU, "
              f"with --dedup exact {exact.seconds:.1f} s wall {exact.cpu_seconds:.1f} s CPU: "
              f"+{exact.seconds / plain.seconds - 1:.0%} wall, +{exact.cpu_seconds / plain.cpu_seconds - 1:.0%} CPU",
              flush=True)
        shutil.rmtree(root, ignore_errors=True)


def report(results: dict, rows: int) -> None:
    """The writing's time, and each dedup's beyond it (wall and CPU seconds)."""
    if not {"generate", "write"} <= set(results):
        return
    write = {t: results["write"][t] - results["generate"][t] for t in ("seconds", "cpu")}
    print(f"\nwriting {rows:,} rows: {write['seconds']:.1f} s wall, {write['cpu']:.1f} s CPU "
          f"({rows / write['seconds']:,.0f} rows/s)")
    for variant, what in (("dedup", "exact dedup"), ("near", "near-duplicate search")):
        if variant not in results:
            continue
        cost = {t: results[variant][t] - results["write"][t] for t in ("seconds", "cpu")}
        dropped = results["write"]["rows"] - results[variant]["rows"]
        print(f"{what} of {rows:,} rows: {cost['seconds']:.1f} s wall, {cost['cpu']:.1f} s CPU "
              f"({rows / cost['seconds']:,.0f} rows/s), {dropped:,} rows dropped; / writing: "
              f"{cost['seconds'] / write['seconds']:.2f} wall, {cost['cpu'] / write['cpu']:.2f} CPU")


if __name__ == "__main__":
    sys.exit(main())
