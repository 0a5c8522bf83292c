"""Stress the build: repeated two-worker builds of every benchmark source and of the bundled
sample, each checked against a reference build, under CPU load and with workers killed.

    python -m benchmarks.stress                                # defaults: about 10 minutes on 2 cores
    python -m benchmarks.stress --rounds 5 --load 2            # five rounds, two busy processes
    python -m benchmarks.stress --sources msmarco --scale 4 --rounds 20 --split-mb 0
    python -m benchmarks.stress --kill --rounds 1              # also kill workers and builds mid-bundle

For each source of :mod:`benchmarks.run` (StackExchange, MS MARCO, WikiAnswers, Yahoo
Answers, PAQ: its generators, at ``--scale``) and for ``corpus build --sample``
(``sample``), it makes a *reference* build: one worker, every file read whole. Then, for
``--rounds`` rounds, while ``--load`` busy-loop processes take CPU, it builds each again
with two worker processes (``--direct_running_mode=multi_processing
--direct_num_workers=2``), in byte ranges of ``--split-mb`` and blocks of ``--block-kb``
(the sample's: 1 KB), so that many range and block boundaries are crossed. Each build
must exit 0 with a manifest, hold both accounting equations of every dataset it built
(the manifest's ``accounting``), and write shards and dead-letter files (``.parquet``,
``.jsonl.gz``) byte-identical to the reference's.

``--kill`` (``worker``, ``portable``, ``build``; bare: all three) also kills a build
mid-bundle in each round, once its workers are up and busy, then runs the same command
again in the same folder: the rerun must be complete, byte-identical to the reference,
without scratch files left. No local runner retries a bundle whose worker died, so no
kill may leave a manifest:

* ``worker``: SIGKILL the busiest FnApiRunner worker (as the OOM killer would). Beam logs
  the worker's exit in a thread and, depending on the moment, fails the build (``Channel
  closed prematurely``) or waits for the bundle forever; a stall is Beam's behaviour,
  reported, and the build is ended after ``--stall-seconds``.
* ``portable``: the same on the portable path (``PortableRunner``, a job service and an
  EXTERNAL worker pool started here): the job service must fail the build, not stall.
* ``build``: SIGKILL the build's whole session (a lost machine).

One line is printed per build, then a summary; the exit status is 1 when any check
failed. Builds run in sessions of their own, each within ``--timeout``; ``--keep DIR``
keeps inputs, outputs and logs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.run import BENCHES, REPO, SHARD_MB, work_folder

SAMPLE = "sample"
SOURCES = (*BENCHES, SAMPLE)
TWO_WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
ONE_WORKER = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
# Sources whose big plain files are read in byte ranges (their option of the range size).
SPLIT_OPTION = {"msmarco": "msmarco.split_mb", "stackexchange": "stackexchange.split_mb"}
# The sample's files are a few KB: ranges and blocks of 1 KB (as tests/test_parallel_build.py)
# cut them into several.
SAMPLE_SPLIT_MB, SAMPLE_BLOCK_KB = 1 / 1024, 1
# The reference reads every file whole: ranges larger than any generated file.
WHOLE_FILES_MB = 1 << 20
# What --kill kills mid-bundle, each round (see kill_mid_bundle).
KILL_MODES = {"off": (), "worker": ("worker",), "portable": ("portable",), "build": ("build",),
              "all": ("worker", "portable", "build")}
# Files a build writes whose bytes must not depend on the workers.
OUTPUT_SUFFIXES = (".parquet", ".jsonl.gz")


@dataclass
class Outcome:
    """One build: what ran and what the checks found (``problems`` empty when it passed)."""

    source: str
    label: str
    seconds: float
    exit_code: int | None
    rows: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def build_command(source: str, root: Path, out: Path, workers: int, split_mb: float,
                  block_kb: int, runner: list[str] | None = None) -> list[str]:
    """The ``corpus build`` of ``source`` (the benchmark's way, or ``--sample``).

    One worker reads every file whole; two workers read in ``split_mb`` ranges (0: the
    sources' defaults) and ``block_kb`` blocks (0: the engine's default). ``runner``: the
    flags of a runner to use instead of the FnApiRunner's two worker processes (the
    portable path), which then reads as they would."""
    command = [sys.executable, "-m", "pipelines", "build", "--output", str(out),
               "--target-shard-mb", str(SHARD_MB)]
    if source == SAMPLE:
        command.append("--sample")
        split_mb, block_kb = SAMPLE_SPLIT_MB, SAMPLE_BLOCK_KB
    else:
        command += ["--input-root", str(root), "--datasets", ",".join(BENCHES[source].datasets),
                    "--no-input-checksums"]
    if workers == 1:
        split = WHOLE_FILES_MB
        command += ["--runner=DirectRunner", *ONE_WORKER]
    else:
        split = split_mb
        command += (runner or ["--runner=DirectRunner", *TWO_WORKERS])
        command += [f"--block_bytes={block_kb * 1024}"] if block_kb else []
    for name in SPLIT_OPTION.values() if source == SAMPLE else [SPLIT_OPTION.get(source)]:
        if name and split:
            command += ["--source-option", f"{name}={split}"]
    return command


def output_hashes(out: Path) -> dict[str, str]:
    """SHA-256 of every shard and dead-letter file of a build, by path below ``out``."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*"))
            if p.is_file() and p.name.endswith(OUTPUT_SUFFIXES) and "_work" not in p.relative_to(out).parts}


def check_build(out: Path, reference: dict[str, str] | None) -> tuple[list[str], int, int]:
    """``(problems, rows written, output files)`` of a finished build in ``out``: a missing
    manifest, an accounting equation that does not hold, files unlike ``reference``'s."""
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        return ["no manifest.json"], 0, 0
    manifest = json.loads(manifest_path.read_text())
    problems, rows = [], 0
    for dataset, entry in manifest["datasets"].items():
        if "accounting" not in entry:
            continue  # not built in this run
        rows += entry.get("rows", 0)
        records, row_counts = entry["accounting"]["records"], entry["accounting"]["rows"]
        if records["holds"] is False:
            skipped = sum(records["skipped"].values())
            problems.append(f"{dataset}: records read {records['read']:,} != paired {records['paired']:,} "
                            f"+ rejected {records['rejected']:,} + skipped {skipped:,} "
                            f"(off by {records['read'] - records['paired'] - records['rejected'] - skipped:+,})")
        if not row_counts["holds"]:
            problems.append(f"{dataset}: rows from the rules {row_counts['from_rules']:,} != written "
                            f"{row_counts['written']:,} + dropped {row_counts['dropped']:,}")
    hashes = output_hashes(out)
    if reference is not None:
        missing = sorted(reference.keys() - hashes.keys())
        extra = sorted(hashes.keys() - reference.keys())
        differ = sorted(p for p in reference.keys() & hashes.keys() if reference[p] != hashes[p])
        for what, paths in (("missing", missing), ("not in the reference", extra), ("differs", differ)):
            if paths:
                problems.append(f"{len(paths)} file(s) {what}: {', '.join(paths[:3])}"
                                + (" ..." if len(paths) > 3 else ""))
    return problems, rows, len(hashes)


def sdk_workers(parent: int) -> list[psutil.Process]:
    """The live Python SDK worker processes below process ``parent`` (not their shells)."""
    try:
        children = psutil.Process(parent).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:  # the pool starts its workers as ``python -c ...``
            cmdline = [] if child.status() == psutil.STATUS_ZOMBIE else child.cmdline()
        except psutil.Error:
            continue
        if cmdline and "python" in os.path.basename(cmdline[0]) and (
                cmdline[1:2] == ["-c"] or any("sdk_worker" in part for part in cmdline[1:])):
            found.append(child)
    return found


class PortableService:
    """A job service and an EXTERNAL worker pool, each in a process of its own: the portable
    path that runs offline (``../shared/docs/platform-notes.md``). Its one SDK worker is a
    process of the pool, so that it can be killed while the build goes on."""

    def __init__(self, work: Path):
        self.job_port, self.pool_port = _free_port(), _free_port()
        # The pool starts its workers as a bare ``python``: this environment's must come first.
        env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
        with open(work / "job-service.log", "wb") as service_log, open(work / "worker-pool.log", "wb") as pool_log:
            self.processes = [
                subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                  "--port", str(self.job_port)], stdout=service_log, stderr=subprocess.STDOUT,
                                 start_new_session=True),
                subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                                  "--service_port", str(self.pool_port)], stdout=pool_log, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True),
            ]
        for port in (self.job_port, self.pool_port):
            _wait_for_port(port, 60.0)

    def flags(self) -> list[str]:
        return ["--runner=PortableRunner", f"--job_endpoint=localhost:{self.job_port}",
                "--environment_type=EXTERNAL", f"--environment_config=localhost:{self.pool_port}"]

    def workers(self, since: float = 0.0) -> list[psutil.Process]:
        """The pool's SDK workers started at ``since`` (a ``time.time()``) or later."""
        return [w for w in sdk_workers(self.processes[1].pid) if _probe(w.create_time) >= since]

    def stop(self) -> None:
        for process in self.processes:
            _end_session(process)


def _end_session(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and every process of its session (it was started in one)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("localhost", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port} after {seconds:.0f} s")
        time.sleep(0.3)


class Build:
    """One ``corpus build`` in a session of its own, its output in a log file."""

    def __init__(self, command: list[str], log: Path):
        self.started, self.started_at = time.perf_counter(), time.time()
        with open(log, "wb") as stream:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def wait(self, timeout: float, end: bool = True) -> int | None:
        """The exit status, or ``None`` when the build still runs after ``timeout`` seconds
        (it is then ended, with every process of its session, unless ``end`` is false)."""
        try:
            return self.process.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            if end:
                self.end()
            return None

    def end(self) -> None:
        _end_session(self.process)

    def workers(self) -> list[psutil.Process]:
        return sdk_workers(self.process.pid)


def run_build(source: str, command: list[str], out: Path, log: Path, label: str, timeout: float,
              reference: dict[str, str] | None) -> Outcome:
    """Run one build to its end and check it."""
    build = Build(command, log)
    code = build.wait(timeout)
    outcome = Outcome(source, label, build.elapsed(), code)
    if code is None:
        outcome.problems.append(f"still running after {timeout:.0f} s (ended)")
    elif code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-6:]
        outcome.problems.append(f"exit status {code}:\n" + "\n".join("      " + line[:200] for line in tail))
    else:
        outcome.problems, outcome.rows, outcome.files = check_build(out, reference)
        left = [p for p in (out / "_work" / "scratch").rglob("*") if p.is_file()]
        if left:
            outcome.problems.append(f"{len(left)} scratch file(s) left under _work/scratch")
    return outcome


def kill_mid_bundle(mode: str, source: str, command: list[str], out: Path, log: Path, build_seconds: float,
                    fraction: float, stall_seconds: float, timeout: float, reference: dict[str, str],
                    portable: PortableService | None = None) -> Outcome:
    """Start a build and kill it (``mode``: see the module doc) once its SDK workers are up,
    after ``fraction`` of the time a build like it (``build_seconds`` long) ran on from
    there; then check that it does not claim success. The worker killed is the one that
    used CPU in the 0.3 s before; a build that finishes after the kill (its bundle
    retried) is checked like any other."""
    build = Build(command, log)
    label = f"kill a {mode}"
    # The pool's workers of earlier jobs may still be there: only this build's count.
    workers_of = (lambda: portable.workers(since=build.started_at)) if mode == "portable" else build.workers
    workers = []
    while not workers and build.process.poll() is None and build.elapsed() < timeout:
        time.sleep(0.2)
        workers = workers_of()
    up = build.elapsed()
    code = build.wait(fraction * max(1.0, build_seconds - up), end=False)
    if code is not None or not workers:
        outcome = Outcome(source, label, build.elapsed(), code)
        outcome.note = f"ended (status {code}) before the kill"
        outcome.problems, outcome.rows, outcome.files = check_build(out, reference)
        return outcome
    workers = workers_of()
    before = {w.pid: _cpu(w) for w in workers}
    time.sleep(0.3)
    busy = sorted(((_cpu(w) - before[w.pid], w) for w in workers), key=lambda item: -item[0])
    if not busy:
        build.end()
        return Outcome(source, label, build.elapsed(), None, problems=["no SDK worker process left to kill"])
    cpu, victim = busy[0]
    killed_at = build.elapsed()
    busy_note = f"workers up at {up:.1f} s; {cpu:.2f} s CPU in the 0.3 s before"
    if mode == "build":
        build.end()
        code = build.process.returncode
        what = f"build killed at {killed_at:.1f} s ({busy_note})"
    else:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
        code = build.wait(stall_seconds)
        what = f"worker {victim.pid} killed at {killed_at:.1f} s ({busy_note})"
    outcome = Outcome(source, label, build.elapsed(), code)
    if code is None:
        outcome.note = f"stalled: {what}; ended {stall_seconds:.0f} s later"
        if mode != "worker":
            outcome.problems.append("stalled instead of failing")
    elif code != 0:
        outcome.note = f"failed: {what}; exit status {code} after {outcome.seconds - killed_at:.1f} s"
    else:  # the runner retried the bundle: the build must then be complete and identical
        outcome.note = f"retried: {what}; exit status 0"
        outcome.problems, outcome.rows, outcome.files = check_build(out, reference)
        return outcome
    if (out / "manifest.json").exists():
        outcome.problems.append("a manifest claims success after the kill")
    return outcome


def _cpu(process: psutil.Process) -> float:
    return _probe(lambda: sum(process.cpu_times()[:2]))


def _probe(read) -> float:
    """``read()`` of a process (its start or CPU time), or 0 once it is gone."""
    try:
        return read()
    except psutil.Error:
        return 0.0


def start_load(count: int) -> list[subprocess.Popen]:
    """``count`` busy-loop processes, one core's worth of work each."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(count)]


def stop_load(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _end_session(process)


def _line(outcome: Outcome, round_label: str) -> str:
    status = "OK  " if outcome.ok else "FAIL"
    text = (f"{status} {outcome.source:<14} {round_label:<11} {outcome.label:<18} {outcome.seconds:>6.1f} s  "
            f"{outcome.rows:>10,} rows  {outcome.files:>3} files")
    if outcome.note:
        text += f"  {outcome.note}"
    if outcome.problems:
        text += "\n" + "\n".join(f"     - {problem}" for problem in outcome.problems)
    return text


def summary(outcomes: list[Outcome]) -> list[str]:
    """One line per source (builds, failures, two-worker times) and the kills' outcomes."""
    lines = []
    for source in dict.fromkeys(o.source for o in outcomes):
        mine = [o for o in outcomes if o.source == source]
        times = [o.seconds for o in mine if o.label == "2 workers" and o.ok]
        failed = [o for o in mine if not o.ok]
        kills = [f"{o.label[7:]} {o.note.split(':', 1)[0]}" for o in mine if o.label.startswith("kill a ")]
        text = f"{source:<14} {len(mine):>3} builds, {len(failed)} failed"
        if times:
            text += (f"; 2 workers {min(times):.1f} / {statistics.median(times):.1f} / "
                     f"{max(times):.1f} s (min / median / max)")
        lines.append(text + ("; kills: " + ", ".join(f"{kills.count(k)} {k}" for k in sorted(set(kills)))
                             if kills else ""))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default=",".join(SOURCES),
                        help=f"comma-separated, of {', '.join(SOURCES)} (default: all)")
    parser.add_argument("--rounds", type=int, default=2, help="two-worker builds of each source (default 2)")
    parser.add_argument("--load", type=int, default=1,
                        help="busy-loop processes kept running during the rounds (default 1)")
    parser.add_argument("--kill", nargs="?", const="all", default="off", choices=sorted(KILL_MODES),
                        help="each round, also kill a build mid-bundle, then run it again: a worker of the "
                             "local runner, the worker of the portable path, the whole build, or all three "
                             "(a bare --kill)")
    parser.add_argument("--scale", type=float, default=0.5, help="input size, as benchmarks.run's (default 0.5)")
    parser.add_argument("--split-mb", type=float, default=1.0,
                        help="byte ranges of the two-worker builds, MB (0: the sources' defaults; default 1)")
    parser.add_argument("--block-kb", type=int, default=1024,
                        help="blocks of the two-worker builds, KB (0: the engine's default; default 1024)")
    parser.add_argument("--stall-seconds", type=float, default=60.0,
                        help="how long a build with a killed worker may run on before it is ended (default 60)")
    parser.add_argument("--timeout", type=float, default=900.0, help="longest build, seconds (default 900)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or args.rounds < 1 or args.load < 0:
        parser.error(f"unknown source(s) {', '.join(unknown)}" if unknown else "--rounds >= 1, --load >= 0")
    with work_folder(args.keep, "corpus-stress-") as work:
        print(f"machine: {os.cpu_count()} cores; work folder {work}; sources {', '.join(sources)}; "
              f"scale {args.scale:g}; rounds {args.rounds}; load {args.load}; kill {args.kill}; "
              f"ranges {args.split_mb:g} MB, blocks {args.block_kb} KB", flush=True)
        rng = random.Random(args.seed)
        outcomes: list[Outcome] = []
        references: dict[str, dict[str, str]] = {}
        last_time: dict[str, float] = {}
        load: list[subprocess.Popen] = []
        portable: PortableService | None = None

        def record(outcome: Outcome, round_label: str) -> None:
            outcomes.append(outcome)
            print(_line(outcome, round_label), flush=True)

        def command(source: str, out: Path, workers: int, runner: list[str] | None = None) -> list[str]:
            return build_command(source, work / f"{source}-in", out, workers, args.split_mb, args.block_kb, runner)

        try:
            for source in sources:
                if source != SAMPLE:
                    BENCHES[source].generate(work / f"{source}-in", args.scale)
                out = work / f"{source}-reference"
                shutil.rmtree(out, ignore_errors=True)
                outcome = run_build(source, command(source, out, 1), out, work / f"{source}-reference.log",
                                    "reference, 1 worker", args.timeout, None)
                record(outcome, "")
                if outcome.ok:
                    references[source] = output_hashes(out)
                    last_time[source] = outcome.seconds
            load = start_load(args.load)
            for round_number in range(1, args.rounds + 1):
                round_label = f"round {round_number}/{args.rounds}"
                for source, reference in references.items():
                    out = work / f"{source}-2workers"
                    shutil.rmtree(out, ignore_errors=True)
                    outcome = run_build(source, command(source, out, 2), out, work / f"{source}-2workers.log",
                                        "2 workers", args.timeout, reference)
                    record(outcome, round_label)
                    if outcome.ok:
                        last_time[source] = outcome.seconds
                    for mode in KILL_MODES[args.kill]:
                        out = work / f"{source}-killed-{mode}"
                        shutil.rmtree(out, ignore_errors=True)
                        if mode == "portable" and portable is None:
                            portable = PortableService(work)
                        runner = portable.flags() if mode == "portable" else None
                        record(kill_mid_bundle(mode, source, command(source, out, 2, runner), out,
                                               work / f"{source}-killed-{mode}.log", last_time[source],
                                               rng.uniform(0.05, 0.35), args.stall_seconds, args.timeout,
                                               reference, portable), round_label)
                        record(run_build(source, command(source, out, 2, runner), out,
                                         work / f"{source}-rerun-{mode}.log", "rerun after kill", args.timeout,
                                         reference), round_label)
        finally:
            stop_load(load)
            if portable is not None:
                portable.stop()
    print("summary:")
    for line in summary(outcomes):
        print(f"  {line}")
    failed = [o for o in outcomes if not o.ok]
    missing = [s for s in sources if s not in references]
    print(f"{len(outcomes)} builds, {len(failed)} failed" + (f"; no reference for {', '.join(missing)}" if missing else ""))
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
