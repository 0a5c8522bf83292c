"""One big StackExchange file on one and on two workers: is it shared by both?

    python -m benchmarks.single_file                    # 1 GB of Posts.xml, unpacked and .7z
    python -m benchmarks.single_file --gb 4 --kinds 7z  # 4 GB, the solid archive only
    python -m benchmarks.single_file --keep /tmp/one    # keep the generated files

A site's whole dump in one ``Posts.xml`` (``--gb`` of XML, questions and answers as
:func:`benchmarks.synthetic.write_stackexchange_posts` writes them), built as
stackexchange_title_body (as :mod:`benchmarks.run` does) from the file as it is (``unpacked``)
and from one solid ``.7z`` holding it (``7z``, as StackOverflow's ``Posts.xml`` comes). For
each kind it measures, each in a process of its own (wall time, peak RSS, CPU time):

* ``floor``      :mod:`benchmarks.floor`'s plain script (one process, no Beam) on the
                 ``.7z``, the same rows;
* ``1 worker``   ``corpus build``, the FnApiRunner in one process;
* ``2 workers``  the same with two worker processes: the file is read in byte ranges
                 (unpacked) or inflated once and cut into blocks that both parse (``.7z``);
* ``start-up``   both on a site of 100 questions, the fixed cost of any build;

and prints the speed-up of two workers over one as measured and beyond start-up
(``(t1 - s1) / (t2 - s2)``), and the bound the inflating puts on it for the ``.7z``: one
worker inflates the whole member before both parse, so two workers take at least the
inflating time plus half of the rest. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from benchmarks import synthetic
from benchmarks.run import Bench, measure, run_floor, run_pipeline, work_folder

SITE = "big.stackexchange.com"
# Questions of write_stackexchange_posts per GB of Posts.xml (with 1.5 answers each).
QUESTIONS_PER_GB = 623_000


class OneSiteBench(Bench):
    """One site, its ``Posts.xml`` unpacked or in one solid ``.7z``."""

    name = "stackexchange"
    datasets = ("stackexchange_title_body",)
    floor_function = "floor_stackexchange_sites"

    def __init__(self, kind: str, questions: int):
        self.kind = kind
        self.questions = questions

    def generate(self, root: Path, scale: float) -> None:
        questions = max(100, int(self.questions * scale))
        folder = root / "stackexchange"
        staging = root / "_staging"
        staging.mkdir(parents=True, exist_ok=True)
        synthetic.write_stackexchange_posts(staging / "Posts.xml", questions, seed=5)
        if self.kind == "7z":
            folder.mkdir(parents=True, exist_ok=True)
            synthetic.pack_7z(staging, folder / f"{SITE}.7z")
            shutil.rmtree(staging)
        else:
            (folder / SITE).mkdir(parents=True, exist_ok=True)
            (staging / "Posts.xml").rename(folder / SITE / "Posts.xml")
            shutil.rmtree(staging)

    def floor_args(self, root: Path, out: Path) -> list[str]:
        return [str(root / "stackexchange"), str(out)]


def inflate_seconds(archive: Path) -> float:
    """Wall time of inflating the archive's ``Posts.xml`` alone (libarchive, as the build)."""
    code = ("import sys, time; from pipelines.engine import files; t = time.perf_counter()\n"
            "for _name, stream in files.iter_archive_members(sys.argv[1]):\n"
            "    while stream.read(1 << 20): pass\n"
            "print(time.perf_counter() - t)")
    seconds, _peak, _cpu, _system, stdout = measure([sys.executable, "-c", code, str(archive)])
    return float(stdout.strip().splitlines()[-1])


def benchmark(kind: str, gb: float, work: Path) -> dict:
    bench = OneSiteBench(kind, int(QUESTIONS_PER_GB * gb))
    root, tiny = work / f"{kind}-in", work / f"{kind}-tiny"
    started = time.perf_counter()
    bench.generate(root, 1.0)
    bench.generate(tiny, 0.0)
    size = sum(p.stat().st_size for p in (root / "stackexchange").rglob("*") if p.is_file())
    print(f"{kind}: {size / 1e9:.2f} GB on disk, generated in {time.perf_counter() - started:.0f} s", flush=True)
    results = {"kind": kind, "input_bytes": size}
    runs = {"1 worker": (root, 1), "2 workers": (root, 2), "start-up 1": (tiny, 1), "start-up 2": (tiny, 2)}
    for label, (folder, workers) in runs.items():
        m = run_pipeline(bench, folder, work / f"{kind}-out", workers, label)
        results[label] = m
        print(f"  {label:10s} {m.seconds:7.1f} s  {m.rows:>10,} rows  peak {m.peak_rss_mb:6.0f} MB  "
              f"cpu {m.cpu_seconds:6.1f} s", flush=True)
    if kind == "7z":
        floor = run_floor(bench, root, work / f"{kind}-floor")
        results["floor"] = floor
        print(f"  {'floor':10s} {floor.seconds:7.1f} s  {floor.rows:>10,} rows  peak {floor.peak_rss_mb:6.0f} MB "
              f"({results['1 worker'].seconds / floor.seconds:.2f}x its time for one worker)", flush=True)
        results["inflate_s"] = inflate_seconds(next((root / "stackexchange").glob("*.7z")))
    one, two = results["1 worker"].seconds, results["2 workers"].seconds
    s1, s2 = results["start-up 1"].seconds, results["start-up 2"].seconds
    results["speedup"] = one / two
    results["speedup_beyond_startup"] = (one - s1) / (two - s2) if two > s2 and one > s1 else None
    beyond = results["speedup_beyond_startup"]
    line = (f"  two workers vs one: {results['speedup']:.2f}x as measured, "
            + (f"{beyond:.2f}x beyond start-up" if beyond else "start-up took longer than the build"))
    if kind == "7z":
        inflate = results["inflate_s"]
        bound = (one - s1) / (inflate + (one - s1 - inflate) / 2)
        line += f"; inflating alone {inflate:.1f} s, which bounds two workers at {bound:.2f}x"
    print(line, flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="GB of Posts.xml (default 1)")
    parser.add_argument("--kinds", default="unpacked,7z", help="unpacked, 7z or both (default)")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if not kinds or set(kinds) - {"unpacked", "7z"}:
        parser.error("--kinds takes unpacked, 7z or both")
    with work_folder(args.keep, "single-file-") as work:
        for kind in kinds:
            benchmark(kind, args.gb, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
