"""Benchmark the build against the floor, in one run, on generated upstream-format inputs.

    python -m benchmarks.run                       # default size: about a minute a source on 2 cores
    python -m benchmarks.run --scale 8             # 8x the inputs (multi-GB at --scale 30)
    python -m benchmarks.run --sources stackexchange --keep /tmp/bench
    python -m benchmarks.run --repeat 3            # each measurement the fastest of 3 runs

For each source it generates inputs in the upstream format, then measures, each in a
process of its own (wall time, peak RSS from ``wait4``, rows and output bytes):

* ``floor``      the same parsing, pair rule and Parquet writing in a plain single-process
                 script (lxml, pyarrow, no Beam): :mod:`benchmarks.floor`; it borrows the
                 package's rule functions, whose modules import Beam, so the time of that
                 import is measured in its process and left out;
* ``1 worker``   ``corpus build`` on the local runner (the FnApiRunner), in memory, one worker;
* ``2 workers``  the same with ``--direct_running_mode=multi_processing --direct_num_workers=2``
                 (on the 4x input, where starting the worker processes weighs less);
* ``start-up``   one and two workers on an input of ``MIN_ITEMS`` items: the fixed cost of a
                 build (Beam's start, the worker processes, every stage once), so that the
                 speed-up of the rest of the 4x build can be told apart from it.

Floor and one worker run on the default input (1x) and on one four times as large (4x): the
throughput ratio at both sizes, the growth of peak memory from 1x to 4x, and the speed-up of
two workers over one at 4x are printed, and the rate of the rows the 4x input adds to the
1x one (extra rows over extra seconds), which leaves out what a build costs whatever its
size and is the rate a full-scale build runs at. On a shared machine a run's time moves by
10-20% (other tenants, the kernel's page cache); ``--repeat N`` keeps the fastest of N runs
of each measurement (and the largest peak memory of them), for floor and pipeline alike.

The builds use ``--target-shard-mb 32``: the writing step holds at most one shard and one
spill buffer (32 MB of text) in memory, so memory stops growing with the input once the
input is larger than a shard. With the default 384 MB shards that point lies beyond the
benchmark's default input size; the small shards make the bound visible here.

It prints rows/s per core and CPU time (user plus system, every process, with the system
part) for each, the pipeline/floor throughput ratio, the speed-up of two workers over one,
and the peak-memory growth from 1x to 4x input. Nothing is asserted: the figures are what
this machine measured in this run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks import synthetic

REPO = Path(__file__).resolve().parent.parent
SHARD_MB = 32
# The fewest items (questions, queries, clusters, rows) an input is generated with; an
# input of that size measures a build's fixed cost (see measure_startup).
MIN_ITEMS = 100


@dataclass
class Measurement:
    label: str
    rows: int
    seconds: float
    peak_rss_mb: float
    output_bytes: int
    cores: int
    cpu_seconds: float = 0.0
    system_seconds: float = 0.0
    # Time of the process left out of ``seconds`` (the floor's import of Beam).
    not_counted_seconds: float = 0.0

    @property
    def rows_per_core_second(self) -> float:
        return self.rows / self.seconds / self.cores if self.seconds else 0.0


_MEASURE = """
import json, os, resource, subprocess, sys, time
started = time.perf_counter()
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": seconds, "peak_kb": usage.ru_maxrss, "user": usage.ru_utime,
                  "system": usage.ru_stime, "code": result.returncode,
                  "stdout": result.stdout[-4000:], "stderr": result.stderr[-4000:]}))
"""


def measure(command: list[str]) -> tuple[float, float, float, float, str]:
    """Run ``command`` under a small wrapper process; return (wall s, peak RSS MB, CPU s,
    system s, stdout). CPU time is user plus system time of every process the command ran;
    system time is the kernel's part of it (page faults, the page cache), which is what
    varies most from run to run on this machine.

    Peak RSS is the largest resident size of any process the command ran (for
    multi-processing runs, the largest single worker or the runner, not their sum). Dirty
    pages are written out first (``sync``), so that the kernel's writeback of what came
    before (the generated inputs, the previous command's output) does not run during this
    command.
    """
    os.sync()
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True,
                         text=True, cwd=REPO, check=True)
    result = json.loads(out.stdout)
    if result["code"] != 0:
        raise RuntimeError(f"{' '.join(command[:6])} failed:\n{result['stderr']}")
    return (result["seconds"], result["peak_kb"] / 1024, result["user"] + result["system"],
            result["system"], result["stdout"])


def _tree_bytes(folder: Path, suffix: str = ".parquet") -> int:
    return sum(p.stat().st_size for p in folder.rglob(f"*{suffix}"))


# -- sources -------------------------------------------------------------------------------

@dataclass
class Bench:
    name: str
    datasets: tuple[str, ...]
    floor_function: str

    def generate(self, root: Path, scale: float) -> None:
        raise NotImplementedError

    def floor_args(self, root: Path, out: Path) -> list[str]:
        raise NotImplementedError


class StackExchangeBench(Bench):
    SITES = 4
    QUESTIONS_PER_SITE = 25_000

    def generate(self, root: Path, scale: float) -> None:
        folder = root / "stackexchange"
        folder.mkdir(parents=True, exist_ok=True)
        questions = max(MIN_ITEMS, int(self.QUESTIONS_PER_SITE * scale))
        for n in range(self.SITES):
            site = f"site{n}.stackexchange.com"
            staging = root / "_staging" / site
            staging.mkdir(parents=True, exist_ok=True)
            synthetic.write_stackexchange_posts(staging / "Posts.xml", questions, seed=n)
            synthetic.write_stackexchange_postlinks(staging / "PostLinks.xml", questions,
                                                    questions // 5, seed=n)
            synthetic.pack_7z(staging, folder / f"{site}.7z")
        shutil.rmtree(root / "_staging")

    def floor_args(self, root: Path, out: Path) -> list[str]:
        return [str(root / "stackexchange"), str(out)]


class MsMarcoBench(Bench):
    QUERIES = 10_000

    def generate(self, root: Path, scale: float) -> None:
        synthetic.write_msmarco(root / "msmarco", max(MIN_ITEMS, int(self.QUERIES * scale)))

    def floor_args(self, root: Path, out: Path) -> list[str]:
        return [str(root / "msmarco"), str(out)]


class WikiAnswersBench(Bench):
    CLUSTERS = 60_000

    def generate(self, root: Path, scale: float) -> None:
        folder = root / "wikianswers"
        folder.mkdir(parents=True, exist_ok=True)
        synthetic.write_wikianswers_part(folder / "part-00000.gz", max(MIN_ITEMS, int(self.CLUSTERS * scale)))

    def floor_args(self, root: Path, out: Path) -> list[str]:
        return [str(root / "wikianswers"), str(out)]


class YahooBench(Bench):
    ROWS = 100_000

    def generate(self, root: Path, scale: float) -> None:
        folder = root / "yahoo_answers" / "yahoo_answers_csv"
        folder.mkdir(parents=True, exist_ok=True)
        synthetic.write_yahoo_csv(folder / "train.csv", max(MIN_ITEMS, int(self.ROWS * scale)))

    def floor_args(self, root: Path, out: Path) -> list[str]:
        return [str(root / "yahoo_answers"), str(out)]


class PaqBench(Bench):
    QUESTIONS = 150_000

    def generate(self, root: Path, scale: float) -> None:
        synthetic.write_paq(root / "paq", max(MIN_ITEMS, int(self.QUESTIONS * scale)))

    def floor_args(self, root: Path, out: Path) -> list[str]:
        return [str(root / "paq"), str(out)]


BENCHES = {
    "stackexchange": StackExchangeBench("stackexchange", ("stackexchange_title_body",),
                                        "floor_stackexchange_sites"),
    "msmarco": MsMarcoBench("msmarco", ("msmarco_triplets",), "floor_msmarco_qidpidtriples"),
    "wikianswers": WikiAnswersBench("wikianswers", ("wikianswers",), "floor_wikianswers"),
    "yahoo_answers": YahooBench("yahoo_answers", ("yahoo_answers_title_answer",
                                                  "yahoo_answers_question_answer",
                                                  "yahoo_answers_title_question"),
                                "floor_yahoo_answers"),
    "paq": PaqBench("paq", ("paq",), "floor_paq"),
}

# The floor borrows its parsers and pair rules from the package, whose modules import Beam
# (0.7-1.0 s on the development machine, a quarter to two fifths of the floor's own time at
# 1x). A plain script would not, so that import is timed on its own and left out of the
# floor's time; the script's own imports (lxml, numpy, pyarrow) come first and are counted.
_FLOOR = """
import json, sys, time
from pathlib import Path
import lxml.etree, numpy, pyarrow, pyarrow.compute, pyarrow.parquet
started, cpu_started = time.perf_counter(), time.process_time()
import apache_beam, pipelines.corpus.registry
from benchmarks import floor
imports = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu_started}
rows = getattr(floor, sys.argv[1])(*map(Path, sys.argv[2:]))
print(json.dumps({"rows": rows, "package_import": imports}))
"""


def run_floor(bench: Bench, root: Path, out: Path) -> Measurement:
    """The floor's measurement: wall and CPU time of its process without the import of Beam
    and the package (see ``_FLOOR``)."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / "floor.parquet"
    seconds, peak, cpu, system, stdout = measure([sys.executable, "-c", _FLOOR, bench.floor_function,
                                                  *bench.floor_args(root, target)])
    result = json.loads(stdout.strip().splitlines()[-1])
    imports = result["package_import"]
    return Measurement("floor", result["rows"], seconds - imports["seconds"], peak,
                       target.stat().st_size, 1, cpu - imports["cpu"], system,
                       not_counted_seconds=imports["seconds"])


def run_pipeline(bench: Bench, root: Path, out: Path, workers: int, label: str,
                 extra: list[str] = ()) -> Measurement:
    mode = (["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
            if workers > 1 else ["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "pipelines", "build", "--input-root", str(root),
               "--output", str(out), "--datasets", ",".join(bench.datasets), "--no-input-checksums",
               "--target-shard-mb", str(SHARD_MB),
               "--runner=DirectRunner", *mode, *extra]
    seconds, peak, cpu, system, _ = measure(command)
    manifest = json.loads((out / "manifest.json").read_text())
    rows = sum(manifest["datasets"][dataset]["rows"] for dataset in bench.datasets)
    output_bytes = sum(_tree_bytes(out / dataset) for dataset in bench.datasets)
    return Measurement(label, rows, seconds, peak, output_bytes, workers, cpu, system)


def _line(m: Measurement) -> str:
    return (f"  {m.label:<12} {m.rows:>10,} rows  {m.seconds:>7.1f} s  "
            f"{m.rows_per_core_second:>9,.0f} rows/s/core  cpu {m.cpu_seconds:>5.1f} s "
            f"(system {m.system_seconds:>4.1f})  "
            f"peak {m.peak_rss_mb:>7,.0f} MB  "
            f"output {m.output_bytes / 1e6:>8.1f} MB"
            + (f"  (+{m.not_counted_seconds:.1f} s importing Beam, not counted)" if m.not_counted_seconds else ""))


def fastest(measure_once, repeat: int) -> Measurement:
    """The fastest of ``repeat`` runs of ``measure_once()``, with the largest peak memory of
    them all (on a shared machine a run is only ever slowed down by others, never sped up)."""
    runs = [measure_once() for _ in range(repeat)]
    best = min(runs, key=lambda m: m.seconds)
    best.peak_rss_mb = max(m.peak_rss_mb for m in runs)
    return best


def benchmark(bench: Bench, work: Path, scale: float, memory: bool, parallel: bool,
              repeat: int = 1) -> dict:
    """Measure one source at 1x and (for memory and parallelism) 4x its default input, each
    measurement the fastest of ``repeat`` runs."""
    sizes = {"1x": scale} | ({"4x": scale * 4} if memory or parallel else {})
    results: dict[str, Measurement] = {}
    summary: dict = {}
    for size, factor in sizes.items():
        root = work / f"{bench.name}-{size}"
        print(f"{bench.name} {size}: generating inputs (scale {factor:g})...", flush=True)
        bench.generate(root, factor)
        input_bytes = sum(p.stat().st_size for p in (root / bench.name).rglob("*") if p.is_file())
        summary[f"input_mb_{size}"] = input_bytes / 1e6
        print(f"{bench.name} {size}: {input_bytes / 1e6:.0f} MB of input", flush=True)
        runs = [("floor", None), ("1 worker", 1)] + ([("2 workers", 2)] if parallel and size != "1x" else [])
        for label, workers in runs:
            key = f"{label} {size}"
            try:
                if workers is None:
                    measurement = fastest(lambda: run_floor(bench, root, work / f"{bench.name}-{size}-floor"),
                                          repeat)
                else:
                    measurement = fastest(lambda: run_pipeline(
                        bench, root, work / f"{bench.name}-{size}-out{workers}", workers, label), repeat)
            except RuntimeError as exc:  # reported, and the other measurements go on
                last_line = str(exc).strip().splitlines()[-1]
                print(f"  {key:<12} FAILED: {last_line}", flush=True)
                summary.setdefault("failures", {})[key] = last_line
                continue
            measurement.label = key
            results[key] = measurement
            print(_line(measurement), flush=True)
        if f"1 worker {size}" in results and f"floor {size}" in results:
            ratio = results[f"1 worker {size}"].rows_per_core_second / results[f"floor {size}"].rows_per_core_second
            summary[f"throughput_ratio_{size}"] = ratio
            print(f"  pipeline / floor throughput per core at {size}: {ratio:.2f}")
    marginal = marginal_rates(results)
    if marginal:
        summary.update(marginal)
        print(f"  beyond fixed costs (what the 4x input adds to the 1x one): floor "
              f"{marginal['marginal_floor_rows_per_core_second']:,.0f}, 1 worker "
              f"{marginal['marginal_pipeline_rows_per_core_second']:,.0f} rows/s/core, "
              f"ratio {marginal['marginal_throughput_ratio']:.2f}")
    if parallel and "2 workers 4x" in results and "1 worker 4x" in results:
        one, two = results["1 worker 4x"].seconds, results["2 workers 4x"].seconds
        summary["speedup_2_workers_4x"] = one / two
        print(f"  2 workers / 1 worker speed-up at 4x: {summary['speedup_2_workers_4x']:.2f}x")
        startup = measure_startup(bench, work, repeat)
        if startup:
            summary.update(startup)
            beyond = (one - startup["startup_1_worker_s"]) / max(1e-9, two - startup["startup_2_workers_s"])
            summary["speedup_2_workers_4x_beyond_startup"] = beyond
            print(f"  start-up (an input of {MIN_ITEMS} items): 1 worker {startup['startup_1_worker_s']:.1f} s, "
                  f"2 workers {startup['startup_2_workers_s']:.1f} s; speed-up of the rest at 4x: {beyond:.2f}x")
    if memory and "1 worker 4x" in results and "1 worker 1x" in results:
        summary["peak_rss_growth_4x"] = results["1 worker 4x"].peak_rss_mb / results["1 worker 1x"].peak_rss_mb - 1
        print(f"  peak memory growth from 1x to 4x input (1 worker): {summary['peak_rss_growth_4x']:+.0%}")
    summary["measurements"] = {k: vars(v) for k, v in results.items()}
    return summary




def marginal_rates(results: dict[str, Measurement]) -> dict:
    """Rows per second per core of the rows the 4x input adds to the 1x one, for the floor
    and one worker, and their ratio: the rate a long build runs at once its fixed costs
    (Beam's start, building the graph, each stage's first bundle) are paid, which is the
    rate a full-scale build is made of. Empty when a measurement is missing or the two
    sizes took the same time."""
    try:
        floor = _marginal(results["floor 1x"], results["floor 4x"])
        pipeline = _marginal(results["1 worker 1x"], results["1 worker 4x"])
    except (KeyError, ZeroDivisionError):
        return {}
    return {"marginal_floor_rows_per_core_second": floor,
            "marginal_pipeline_rows_per_core_second": pipeline,
            "marginal_throughput_ratio": pipeline / floor}


def _marginal(small: Measurement, large: Measurement) -> float:
    seconds = large.seconds - small.seconds
    if seconds <= 0:
        raise ZeroDivisionError
    return (large.rows - small.rows) / seconds / large.cores


def measure_startup(bench: Bench, work: Path, repeat: int) -> dict:
    """Wall time of one- and two-worker builds of a tiny input: what a build costs whatever
    its size (starting Beam, its worker processes, every stage once), so that the speed-up
    of two workers can be told apart from the fixed cost only they pay."""
    root = work / f"{bench.name}-startup"
    bench.generate(root, 0.0)  # MIN_ITEMS items
    try:
        return {f"startup_{label}_s": fastest(lambda: run_pipeline(
                    bench, root, work / f"{bench.name}-startup-out{workers}", workers, label), repeat).seconds
                for label, workers in (("1_worker", 1), ("2_workers", 2))}
    except RuntimeError as exc:
        print(f"  start-up FAILED: {str(exc).strip().splitlines()[-1]}", flush=True)
        return {}


@contextlib.contextmanager
def work_folder(keep: str | Path | None, prefix: str):
    """A benchmark's work folder: ``keep`` (made if absent, left in place), or a temporary
    folder removed when the benchmark ends, however it ends."""
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="input size multiplier")
    parser.add_argument("--sources", default=",".join(BENCHES), help="comma-separated sources")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 4x memory run")
    parser.add_argument("--no-parallel", action="store_true", help="skip the 2-worker run")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each measurement this many times and keep the fastest")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = {}
    with work_folder(args.keep, "corpus-bench-") as work:
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; work folder {work}")
        for name in [s.strip() for s in args.sources.split(",") if s.strip()]:
            results[name] = benchmark(BENCHES[name], work, args.scale, memory=not args.no_memory,
                                      parallel=not args.no_parallel, repeat=max(1, args.repeat))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
