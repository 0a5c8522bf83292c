"""Measure three ways of joining two sides by id on a Beam runner, each in its own process.

    python -m benchmarks.joins                    # 2,000,000 triplets, 1 and 2 local workers
    python -m benchmarks.joins --rows 1000000 --partitions 64
    python -m benchmarks.joins --runner-args "--runner=DataflowRunner ..." --work gs://bucket/tmp

Two synthetic, seeded sides are generated inside each pipeline (``beam.Create`` of small
seeds, then a ``FlatMap`` building Arrow tables of ``TABLE_ROWS`` rows, so no data is
pickled into the graph): "triplets", ``--rows`` rows of an int64 ``pid`` (about rows/10
distinct ids) and a short ``query`` string; "passages", one row per distinct pid with a
250-350 byte ``text``. Every triplet has its passage. Each variant joins them on ``pid``:

* ``hashjoin``  :class:`pipelines.engine.join.HashJoin`: sides spilled as sorted runs to a
                folder, only run descriptions through Beam, one vectorised join per hash range;
* ``cogbk``     the textbook Beam join: per-row ``(pid, value)`` elements, ``beam.CoGroupByKey``,
                the cross product of each key's values;
* ``gbk``       the runner's shuffle carrying Arrow tables: each table cut into ``--partitions``
                hash ranges, ``(partition, (side, table))`` through ``beam.GroupByKey``, one
                vectorised join per partition;
* ``generate``  a baseline, not a join: the same generation and a row count, so the cost of
                starting Beam and building the inputs can be subtracted from the others.

Each pipeline reduces the joined rows to a checksum (rows, sum of pids, query bytes, and the
sum of query bytes x text bytes, which changes if a query meets the wrong text) written to a
JSON file; the driver checks that the three joins agree. Each variant runs on the local
runner (FnApiRunner) in memory with one worker and with
``--direct_running_mode=multi_processing --direct_num_workers=2``.

How to read the table: ``wall s`` is the whole process (Python and Beam start, generation,
join, checksum); ``CPU s`` is user + system time of all its processes (workers included);
``peak MB`` is the largest resident size of any single process; ``rows/s`` is joined rows
over wall time; ``x hashjoin`` is the variant's wall time over HashJoin's with the same
workers (above 1: slower than HashJoin). Subtract the ``generate`` row's time for the cost
of the join alone. Nothing is asserted beyond the checksums agreeing; the figures are what
this machine measured in this run (a shared machine moves them by 10-20%).
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile

TABLE_ROWS = 50_000
VARIANTS = ("hashjoin", "cogbk", "gbk", "generate")
JOINS = VARIANTS[:3]
LOCAL_MODES = {1: ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
               2: ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]}


# -- the pipelines (run in the child process) ----------------------------------------------

def _schemas():
    import pyarrow as pa
    return {"triplets": pa.schema([("pid", pa.int64()), ("query", pa.string())]),
            "passages": pa.schema([("pid", pa.int64()), ("text", pa.string())])}


def make_table(seed: tuple[str, int, int], rows: int):
    """The Arrow table of chunk ``seed = (side, index, seed)``, the same on every run."""
    import numpy as np
    import pyarrow as pa
    side, index, base_seed = seed
    distinct = max(1, rows // 10)
    rng = np.random.default_rng([base_seed, index, side == "passages"])
    if side == "triplets":
        n = min(TABLE_ROWS, rows - index * TABLE_ROWS)
        pids = rng.integers(0, distinct, n)
        numbers = rng.integers(0, 1 << 40, n) >> rng.integers(0, 36, n)  # 1-10 hex digits
        return pa.table([pa.array(pids, pa.int64()), pa.array([f"q{x:x}" for x in numbers.tolist()])],
                        schema=_schemas()["triplets"])
    pids = np.arange(index * TABLE_ROWS, min((index + 1) * TABLE_ROWS, distinct))
    letters = np.random.default_rng(base_seed).integers(97, 123, 4096, dtype=np.uint8).tobytes().decode()
    offsets, lengths = rng.integers(0, 3700, len(pids)), rng.integers(250, 351, len(pids))
    texts = [f"{p} {letters[o:o + n]}" for p, o, n in zip(pids.tolist(), offsets.tolist(), lengths.tolist())]
    return pa.table([pa.array(pids, pa.int64()), pa.array(texts)], schema=_schemas()["passages"])


def seeds(rows: int, seed: int) -> dict[str, list]:
    distinct = max(1, rows // 10)
    return {"triplets": [("triplets", i, seed) for i in range(-(-rows // TABLE_ROWS))],
            "passages": [("passages", i, seed) for i in range(-(-distinct // TABLE_ROWS))]}


def join_tables(tables: dict):
    """The vectorised join every Arrow variant uses (inner join on pid)."""
    yield tables["triplets"].join(tables["passages"], keys="pid", join_type="inner", use_threads=False)


def checksum(table) -> tuple[int, int, int, int]:
    import pyarrow.compute as pc
    query, text = pc.binary_length(table["query"]), pc.binary_length(table["text"])
    total = lambda array: int(pc.sum(array).as_py() or 0)
    return (table.num_rows, total(table["pid"]), total(query),
            total(pc.multiply(query.cast("int64"), text.cast("int64"))))


def row_checksum(pid: int, query: str, text: str) -> tuple[int, int, int, int]:
    q = len(query.encode())
    return 1, pid, q, q * len(text.encode())


def partitions(side: str, table, parts: int, key: str = "pid"):
    """``(partition, (side, slice))`` of ``table`` cut by :func:`id_hash` range, as
    :func:`pipelines.engine.join.hash_range` cuts the hash space into ``parts``."""
    import numpy as np

    from pipelines.engine.join import id_hash
    part = ((id_hash(table[key]) >> np.uint64(32)) * np.uint64(parts)) >> np.uint64(32)
    order = np.argsort(part, kind="stable")
    table, counts = table.take(order), np.bincount(part.astype(np.int64), minlength=parts)
    start = 0
    for p, count in enumerate(counts.tolist()):
        if count:
            yield p, (side, table.slice(start, count))
        start += count


def build(pipeline, variant: str, rows: int, seed: int, parts: int):
    """The variant's graph; returns a PCollection of checksum tuples."""
    import apache_beam as beam
    import pyarrow as pa

    from pipelines.engine.join import HashJoin, tables
    schemas = _schemas()
    sides = {side: pipeline | f"Seeds{side}" >> beam.Create(chunks)
             | f"Make{side}" >> tables(beam.Map(make_table, rows))
             for side, chunks in seeds(rows, seed).items()}
    if variant == "generate":
        return (sides["triplets"], sides["passages"]) | beam.Flatten() | beam.Map(lambda t: (t.num_rows, 0, 0, 0))
    if variant == "hashjoin":
        joined = sides | HashJoin(join_tables, keys={"triplets": "pid", "passages": "pid"},
                                  schemas=schemas)
        return joined.main | beam.Map(checksum)
    if variant == "gbk":
        hint = tuple[int, tuple[str, pa.Table]]
        cut = [sides[side] | f"Cut{side}" >> beam.FlatMap(lambda t, s=side: partitions(s, t, parts))
               .with_output_types(hint) for side in schemas]

        def join_partition(item):
            by_side = {side: [t for s, t in item[1] if s == side] for side in schemas}
            yield from join_tables({side: pa.concat_tables(by_side[side], promote_options="none")
                                    if by_side[side] else schemas[side].empty_table() for side in schemas})
        return cut | beam.Flatten() | beam.GroupByKey() | beam.FlatMap(join_partition) | beam.Map(checksum)
    # cogbk: one element per row
    keyed = {side: sides[side] | f"Rows{side}" >> beam.FlatMap(
                 lambda t, c=column: zip(t["pid"].to_pylist(), t[c].to_pylist()))
             for side, column in (("triplets", "query"), ("passages", "text"))}
    return (keyed | beam.CoGroupByKey()
            | beam.FlatMap(lambda kv: ((kv[0], q, t) for q in kv[1]["triplets"] for t in kv[1]["passages"]))
            | beam.MapTuple(row_checksum))


def run_variant(variant: str, rows: int, seed: int, parts: int, out: str, spill_dir: str, beam_args: list[str]):
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    def write(total):
        with FileSystems.create(out) as f:
            f.write(json.dumps(dict(zip(("rows", "pid_sum", "query_bytes", "pair_product"), total))).encode())

    # HashJoin's runs go to the engine's scratch folder.
    with beam.Pipeline(options=PipelineOptions([*beam_args, f"--scratch_dir={spill_dir}"])) as pipeline:
        (build(pipeline, variant, rows, seed, parts)
         | beam.CombineGlobally(lambda sums: tuple(map(sum, zip(*sums))) or (0, 0, 0, 0))
         | beam.Map(write))


# -- the driver -----------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the triplets side")
    parser.add_argument("--partitions", type=int, default=64, help="hash ranges of the gbk variant")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--workers", default="1,2", help="local runs: 1 (in memory) and/or 2 (processes)")
    parser.add_argument("--runner-args", default="",
                        help="pipeline options of one run instead of the local ones (e.g. Dataflow's)")
    parser.add_argument("--work", help="folder for results and runs (default: a temporary one)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a variant may take")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args, beam_args = parser.parse_known_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="join-bench-")
    if args.variant:
        run_variant(args.variant, args.rows, args.seed, args.partitions, args.out,
                    f"{work}/spill-{args.variant}", beam_args)
        return 0

    from benchmarks.run import measure
    runs = ({"custom": shlex.split(args.runner_args)} if args.runner_args else
            {w: ["--runner=FnApiRunner", *LOCAL_MODES[w]] for w in map(int, args.workers.split(","))})
    results: dict = {}
    print(f"{args.rows:,} triplets, {max(1, args.rows // 10):,} passages, tables of {TABLE_ROWS:,} rows, "
          f"gbk with {args.partitions} partitions; work folder {work}", flush=True)
    try:
        for workers, options in runs.items():
            for variant in args.variants.split(","):
                out = f"{work}/{variant}-{workers}.json"
                command = ["timeout", str(args.timeout), sys.executable, "-m", "benchmarks.joins",
                           "--variant", variant, "--rows", str(args.rows), "--seed", str(args.seed),
                           "--partitions", str(args.partitions), "--work", f"{work}/{variant}-{workers}",
                           "--out", out, *options]
                try:
                    seconds, peak, cpu, _, _ = measure(command)
                    from apache_beam.io.filesystems import FileSystems
                    with FileSystems.open(out) as f:
                        total = json.loads(f.read())
                except RuntimeError as exc:  # timed out (124), killed (out of memory) or failed
                    lines = str(exc).strip().splitlines()
                    print(f"  {variant} {workers}: FAILED {lines[-1] if len(lines) > 1 else lines[0]}", flush=True)
                    continue
                results[variant, workers] = {"seconds": seconds, "peak": peak, "cpu": cpu, "total": total}
                print(f"  {variant:<9} {workers}: {seconds:.1f} s", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report(results, args.rows)
    return 0 if agree(results) else 1


def agree(results: dict) -> bool:
    totals = {json.dumps(r["total"], sort_keys=True) for (v, _), r in results.items() if v in JOINS}
    print("checksums agree: " + ("yes" if len(totals) == 1 else f"NO: {sorted(totals)}"))
    return len(totals) == 1


def report(results: dict, rows: int) -> None:
    print(f"\n{'variant':<9} {'workers':>7} {'rows joined':>12} {'wall s':>7} {'CPU s':>7} "
          f"{'peak MB':>8} {'rows/s':>9} {'x hashjoin':>10}")
    for (variant, workers), r in results.items():
        joined = r["total"]["rows"] if variant in JOINS else 0
        base = results.get(("hashjoin", workers))
        ratio = f"{r['seconds'] / base['seconds']:.2f}" if base else "-"
        rate = f"{joined / r['seconds']:,.0f}" if joined else "-"
        print(f"{variant:<9} {workers!s:>7} {joined:>12,} {r['seconds']:>7.1f} {r['cpu']:>7.1f} "
              f"{r['peak']:>8,.0f} {rate:>9} {ratio:>10}")


if __name__ == "__main__":
    sys.exit(main())
