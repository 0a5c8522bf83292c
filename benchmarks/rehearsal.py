"""Full-shape rehearsal: every source at a fraction of its real size, built as a user builds it.

    python -m benchmarks.rehearsal --fraction 0.0005                  # a quick check (a few minutes)
    python -m benchmarks.rehearsal --fraction 0.02 --work /tmp/rh --json rh.json   # 0.9 GB of input; also F/4
    python -m benchmarks.rehearsal --fraction 0.005 --work /tmp/rh --no-quarter --no-builds --per-source
    python -m benchmarks.rehearsal --from-json rh.json                # the tables again

For fraction F it writes, under ``WORK/in-F``, every source's input in its published layout
(the file kinds and names that ``corpus build --input-root`` reads, see ``UPSTREAM``
below): StackExchange site ``.7z`` archives and Stack Overflow's per-table
``stackoverflow.com-Posts.7z`` / ``-PostLinks.7z``, MS MARCO's tarballs, qrels and BM25
triples, PAQ's three files, 40 WikiAnswers gzip parts, and the JSON, JSON lines, CSV,
gzip, tar and zip files of the other sources, each with F times the real number of
records. Generation is seeded (``--seed``), so the same F gives the same bytes.

Then it runs one ``corpus build --input-root ROOT --output OUT
--direct_running_mode=multi_processing --direct_num_workers=2`` (as a user would: input
checksums on, default shard size) and measures wall time, CPU time and peak memory: the
largest single process (``wait4``'s ``ru_maxrss``, as :func:`benchmarks.run.measure`
reports it) and the largest sum over the build's process tree, sampled every half second
from ``/proc``. The same is done at F/4 (unless ``--no-quarter``). ``--per-source`` also
builds each source alone (``--datasets``) on the same input, for per-source rates, and
Stack Overflow's archives alone. Two single-process measurements give the one-file terms:
inflating Stack Overflow's ``Posts.7z`` alone, and inflating and parsing it as
:func:`benchmarks.floor.floor_stackexchange_sites` does.

It checks each build's verdicts (rows / (F x documented total)) and the accounting of
the manifest, and prints the projection to the full corpus with its arithmetic
(:func:`project`): wall time on N local cores and on Dataflow, with cost. ``--from-json``
prints the tables of an earlier run again. docs/scale.md has the latest results.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks import synthetic

REPO = Path(__file__).resolve().parent.parent
SEED = 7

# The real releases, as the rehearsal scales them: records (the count F multiplies) and
# published bytes. "v" = verified in ../shared/docs/upstream-formats.md, the registry or
# the source's docstring; "~" = approximate or unverified (a listing, a recollection or
# derived, as the note says).
#
# | source | files read | records (real) | bytes as published |
# |---|---|---:|---:|
# | stackexchange | stackoverflow.com-Posts.7z | 23.5M questions + 34.5M answers (~58M posts, ~) | 103.9 GB Posts.xml (v); ~20 GB .7z (~) |
# | stackexchange | stackoverflow.com-PostLinks.7z | 6.5M links (~) | ~0.1 GB (~) |
# | stackexchange | ~360 other <site>.7z | 7.9M questions (6.75M documented title/body rows / 0.85, ~), 11.3M answers, 1.5M links (~) | ~25 GB (all 8 tables, ~) |
# | msmarco | collection.tar.gz, queries.tar.gz, qrels.train.tsv, qidpidtriples.train.full.2.tsv.gz | 8,841,823 passages, 808,731 train queries (502,939 judged), 269,919,004 triples (v) | ~1.0 + 0.02 + 0.01 + ~1.8 GB (~) |
# | paq | PAQ.tar.gz, PAQ.metadata.jsonl.gz, psgs_w100.tsv.gz | 64,875,601 questions, 21,015,324 passages (v) | 1.45 (v) + ~16 + ~4.4 GB |
# | wikianswers | 40 gzip parts | 30,370,994 clusters (v) | 8 GB (v) |
# | gooaq | gooaq.jsonl, split.json | ~5.0M rows (~), 3.1M train entries | ~2.1 GB (~) |
# | amazon_qa | 21 qa_<Category>.json.gz | 2,448,839 answers (the documented total, ~) | ~0.3 GB (~) |
# | yahoo_answers | yahoo_answers_csv.tgz | 1,400,000 train + 60,000 test rows (v) | 319,476,345 B (v) |
# | searchqa | data_json/{train,val,test}.zip | 151,295 / 21,613 / 43,228 clues (v) | ~3.1 GB (~) |
# | eli5 | eli5-train-kilt.jsonl, hub/eli5-category-train.jsonl.gz | 272,634 + 91,772 questions (v), 20% shared (~) | ~1.0 + 0.07 GB (~) |
# | quora | quora_duplicate_questions.tsv | 404,290 pairs (v) | 58,176,133 B (v) |
# | natural_questions | v1.0-simplified_simplified-nq-train.jsonl.gz | 307,373 examples (v) | ~4.5 GB (17 GB raw, ~) |
# | squad | train-v1.1.json, train-v2.0.json | 87,599 / 130,319 questions (v) | ~30 + 40 MB (v) |
# | trivia_qa | triviaqa-rc/ unpacked: qa/*.json, evidence/ | ~83k questions (76,496 web, 61,888 Wikipedia, v) | 2.67 GB .tar.gz (v) |
UPSTREAM = {
    # source: (real records the fraction multiplies, real published bytes)
    "stackexchange": (23_500_000 + 7_900_000, 20.1e9 + 25e9),
    "msmarco": (8_841_823, 2.83e9),
    "paq": (64_875_601, 21.85e9),
    "wikianswers": (30_370_994, 8.0e9),
    "gooaq": (5_000_000, 2.1e9),
    "amazon_qa": (2_448_839, 0.3e9),
    "yahoo_answers": (1_400_000, 319_476_345),
    "searchqa": (216_136, 3.1e9),
    "eli5": (272_634, 1.07e9),
    "quora": (404_290, 58_176_133),
    "natural_questions": (307_373, 4.5e9),
    "squad": (87_599, 70e6),
    "trivia_qa": (83_000, 2.67e9),
}
FULL_ROWS = 215_669_406
FULL_INPUT_BYTES = 150e9        # the round figure for the whole input
SO_POSTS_XML_BYTES = 103_933_385_042

SO_QUESTIONS, SO_ANSWERS_PER_QUESTION, SO_LINKS = 23_500_000, 34.5 / 23.5, 6_500_000
OTHER_SITES_LINKS, DUPLICATE_SHARE = 1_500_000, 0.045
QUALIFYING = 0.85               # documented title/body rows per question (a guess at the rule's pass rate)
BIG_SITES = 8                   # sites with an archive of their own; the rest are spread over REST_SITES
REST_SITES = 4


def _count(real: float, fraction: float) -> int:
    return max(10, round(real * fraction))


def _tar_gz(target: Path, members: dict[str, Path]) -> None:
    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        for name, path in members.items():
            archive.add(path, arcname=name)


def _gzip(source: Path, target: Path) -> None:
    with open(source, "rb") as raw, gzip.open(target, "wb", compresslevel=6) as out:
        shutil.copyfileobj(raw, out, 1 << 20)


def _other_sites() -> list[tuple[str, int]]:
    """The documented title/body rows of the sites other than Stack Overflow: the biggest
    ones by name, the rest (about 350 archives) as REST_SITES sites of equal size."""
    reference = json.loads((REPO / "pipelines/sources/stackexchange/reference_sites.json").read_text())
    lines = sorted(((site, entry["lines"]) for site, entry in reference["stackexchange_title_body"].items()
                    if not site.startswith("stackoverflow.com") and site != reference["pool_name"]),
                   key=lambda item: -item[1])
    rest = sum(n for _, n in lines[BIG_SITES:]) + reference["stackexchange_title_body"][reference["pool_name"]]["lines"]
    return lines[:BIG_SITES] + [(f"rest{k}.stackexchange.com", rest // REST_SITES) for k in range(REST_SITES)]


def _stage(root: Path, name: str) -> Path:
    folder = root / "_staging" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def write_stackoverflow(root: Path, fraction: float, seed: int) -> None:
    """Stack Overflow as published since 2021: one archive per table."""
    so = _stage(root, "stackoverflow")
    synthetic.write_stackexchange_dump(so, _count(SO_QUESTIONS, fraction), SO_ANSWERS_PER_QUESTION,
                                       _count(SO_LINKS, fraction), DUPLICATE_SHARE, seed=seed)
    for table in ("Posts", "PostLinks"):
        (so / table).mkdir()
        (so / f"{table}.xml").rename(so / table / f"{table}.xml")
        synthetic.pack_7z(so / table, root / f"stackexchange/stackoverflow.com-{table}.7z")
    shutil.rmtree(so)


def write_stackexchange_sites(root: Path, fraction: float, seed: int) -> None:
    """The other sites, one ``<site>.7z`` each holding ``Posts.xml`` and ``PostLinks.xml``."""
    sites = _other_sites()
    total_lines = sum(n for _, n in sites)
    for k, (site, lines) in enumerate(sites):
        folder = _stage(root, site)
        synthetic.write_stackexchange_dump(folder, _count(lines / QUALIFYING, fraction), 1.43,
                                           _count(OTHER_SITES_LINKS * lines / total_lines, fraction),
                                           DUPLICATE_SHARE, seed=seed + 100 + k)
        synthetic.pack_7z(folder, root / f"stackexchange/{site}.7z")
        shutil.rmtree(folder)


def write_msmarco(root: Path, fraction: float, seed: int) -> None:
    """collection.tar.gz, queries.tar.gz (train, dev, eval), qrels.train.tsv and the BM25
    triples gzipped, with the release's passages per query and triples per judged query."""
    marco = _stage(root, "msmarco")
    synthetic.write_msmarco_tables(marco, _count(808_731, fraction), _count(502_939, fraction),
                                   _count(8_841_823, fraction), round(269_919_004 / 502_939), seed=seed)
    _tar_gz(root / "msmarco/collection.tar.gz", {"collection.tsv": marco / "collection.tsv"})
    _tar_gz(root / "msmarco/queries.tar.gz", {f"queries.{s}.tsv": marco / f"queries.{s}.tsv"
                                              for s in ("dev", "eval", "train")})
    shutil.copy(marco / "qrels.train.tsv", root / "msmarco/qrels.train.tsv")
    _gzip(marco / "qidpidtriples.train.full.2.tsv", root / "msmarco/qidpidtriples.train.full.2.tsv.gz")
    shutil.rmtree(marco)


def write_paq(root: Path, fraction: float, seed: int) -> None:
    """PAQ.tar.gz (PAQ/PAQ.filtered.jsonl, PAQ/LICENSE), the metadata and DPR's passages."""
    paq = _stage(root, "paq")
    questions = _count(64_875_601 * 50 / 49, fraction)  # write_paq leaves every 50th out of the list
    synthetic.write_paq(paq, questions, passages_per_question=21_015_324 / (64_875_601 * 50 / 49), seed=seed)
    (paq / "LICENSE").write_text("CC BY-SA 3.0\n")
    _tar_gz(root / "paq/PAQ.tar.gz", {"PAQ/LICENSE": paq / "LICENSE",
                                      "PAQ/PAQ.filtered.jsonl": paq / "PAQ.filtered.jsonl"})
    for name in ("PAQ.metadata.jsonl.gz", "psgs_w100.tsv.gz"):
        shutil.move(paq / name, root / "paq" / name)
    shutil.rmtree(paq)


def write_wikianswers(root: Path, fraction: float, seed: int) -> None:
    for part in range(40):
        synthetic.write_wikianswers_part(root / f"wikianswers/part-{part:05d}.gz",
                                         _count(30_370_994 / 40, fraction), seed=seed + part)


def write_yahoo(root: Path, fraction: float, seed: int) -> None:
    yahoo = _stage(root, "yahoo")
    synthetic.write_yahoo_csv(yahoo / "train.csv", _count(1_400_000, fraction), seed=seed)
    synthetic.write_yahoo_csv(yahoo / "test.csv", _count(60_000, fraction), seed=seed + 1)
    (yahoo / "classes.txt").write_text("Society & Culture\nScience & Mathematics\nHealth")
    (yahoo / "readme.txt").write_text("Yahoo! Answers Topic Classification Dataset\n")
    _tar_gz(root / "yahoo_answers/yahoo_answers_csv.tgz",
            {f"yahoo_answers_csv/{n}": yahoo / n for n in ("classes.txt", "readme.txt", "test.csv", "train.csv")})
    shutil.rmtree(yahoo)


def write_searchqa(root: Path, fraction: float, seed: int) -> None:
    """data_json/{train,val,test}.zip: one pretty-printed JSON file per clue."""
    import random

    rng = random.Random(seed)
    clue = 0
    for split, real in (("train", 151_295), ("val", 21_613), ("test", 43_228)):
        with zipfile.ZipFile(root / f"searchqa/data_json/{split}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for _ in range(_count(real, fraction)):
                name, text = synthetic.write_searchqa_clue(rng, clue, rng.randint(30, 60))
                archive.writestr(f"{split}/{name}", text)
                clue += 1


def write_small_sources(root: Path, fraction: float, seed: int) -> None:
    """GooAQ, Amazon-QA, ELI5, Quora, Natural Questions, SQuAD and TriviaQA."""
    synthetic.write_gooaq(root / "gooaq", _count(5_000_000, fraction), seed=seed)
    synthetic.write_amazon_qa(root / "amazon_qa", _count(2_448_839, fraction), seed=seed)
    kilt = _count(272_634, fraction)
    synthetic.write_eli5_kilt(root / "eli5/eli5-train-kilt.jsonl", kilt, seed=seed)
    # ELI5-Category starts inside KILT's id range: a fifth of its questions are KILT's too.
    synthetic.write_eli5_category(root / "eli5/hub/eli5-category-train.jsonl.gz", _count(91_772, fraction),
                                  seed=seed, first_id=kilt - _count(91_772 * 0.2, fraction))
    synthetic.write_quora(root / "quora/quora_duplicate_questions.tsv", _count(404_290, fraction), seed=seed)
    synthetic.write_nq_simplified(root / "natural_questions/v1.0-simplified_simplified-nq-train.jsonl.gz",
                                  _count(307_373, fraction), seed=seed)
    synthetic.write_squad(root / "squad_v2/train-v1.1.json", _count(87_599, fraction), "1.1", seed=seed)
    synthetic.write_squad(root / "squad_v2/train-v2.0.json", _count(130_319, fraction), "2.0", seed=seed)
    synthetic.write_triviaqa_rc(root / "triviaqa/triviaqa-rc", _count(83_000, fraction), seed=seed)


# Largest first, so that a pool of two finishes them together.
WRITERS = (write_stackoverflow, write_paq, write_stackexchange_sites, write_wikianswers, write_small_sources,
           write_msmarco, write_searchqa, write_yahoo)
FOLDERS = ("stackexchange", "msmarco", "paq", "wikianswers", "gooaq", "amazon_qa", "yahoo_answers",
           "searchqa/data_json", "eli5", "quora", "natural_questions", "squad_v2", "triviaqa")


def generate(root: Path, fraction: float, seed: int = SEED, jobs: int = 2) -> dict:
    """Write every source's input for ``fraction`` under ``root`` (``jobs`` writers at a
    time); return the bytes written per source folder."""
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for writer, result in [(w, pool.submit(w, root, fraction, seed)) for w in WRITERS]:
            result.result()
            print(f"  {writer.__name__}: done at {time.perf_counter() - started:.0f} s", flush=True)
    shutil.rmtree(root / "_staging", ignore_errors=True)
    sizes = {folder.name: sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
             for folder in sorted(root.iterdir()) if folder.is_dir()}
    (root / ".generated.json").write_text(json.dumps({"fraction": fraction, "seed": seed, "bytes": sizes}))
    print(f"  every source written: {sum(sizes.values()) / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s",
          flush=True)
    return sizes


# -- measuring a build -----------------------------------------------------------------------

@dataclass
class Build:
    label: str
    seconds: float
    cpu_seconds: float
    peak_process_mb: float      # wait4's ru_maxrss: the largest single process of the tree
    peak_tree_mb: float         # the largest sum of resident memory over the tree, sampled
    rows: dict[str, int]
    input_bytes: dict[str, int]  # per source, the files the build read (manifest inputs)
    output_bytes: int
    verdicts: dict[str, str]
    accounting_holds: bool
    log: str
    idle_cpu_seconds: float = 0.0   # CPU time the machine left idle during the build
    others_cpu_seconds: float = 0.0  # CPU time of other processes (this machine is shared)

    @property
    def efficiency(self) -> float:
        """The share of the CPU time other processes left over that the build used: idle
        cores are the build's own loss, cores taken by others are not."""
        return self.cpu_seconds / max(1e-9, self.cpu_seconds + self.idle_cpu_seconds)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and every process below it, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        todo.extend(children.get(pid, ()))
    return total


def _cpu_times() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / ticks, idle / ticks


def measure_build(root: Path, out: Path, label: str, datasets: list[str] | None = None,
                  shard_mb: int | None = None) -> Build:
    """Run ``corpus build`` on ``root`` with two worker processes, as a user would; return
    its measurements. Dirty pages are written out first, so that the writeback of the
    generated input does not run during the build."""
    corpus = Path(sys.executable).parent / "corpus"
    command = [str(corpus) if corpus.exists() else sys.executable, *([] if corpus.exists() else ["-m", "pipelines"]),
               "build", "--input-root", str(root), "--output", str(out),
               "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    if datasets:
        command += ["--datasets", ",".join(datasets)]
    if shard_mb:
        command += ["--target-shard-mb", str(shard_mb)]
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    log = out.parent / f"{out.name}.log"
    peak_tree = 0
    with open(log, "w") as stream:
        started, (busy_before, idle_before) = time.perf_counter(), _cpu_times()
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak_tree
            while not done.wait(0.5):
                peak_tree = max(peak_tree, _tree_rss_bytes(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        busy_after, idle_after = _cpu_times()
        process.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{label}: corpus build exited with {process.returncode}; see {log}")
    manifest = json.loads((out / "manifest.json").read_text())
    built = {k: d for k, d in manifest["datasets"].items() if d.get("status") == "built"}
    input_bytes: dict[str, int] = {}
    for entry in manifest["inputs"]:
        input_bytes[entry["source"]] = input_bytes.get(entry["source"], 0) + entry["bytes"]
    return Build(label, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, peak_tree / 2**20,
                 {k: d["rows"] for k, d in built.items()}, input_bytes,
                 sum(p.stat().st_size for p in out.rglob("*.parquet")),
                 {k: d["verdict"] for k, d in built.items()},
                 all(d["accounting"]["records"]["holds"] and d["accounting"]["rows"]["holds"] for d in built.values()),
                 str(log), idle_after - idle_before,
                 max(0.0, busy_after - busy_before - usage.ru_utime - usage.ru_stime))


def check(build: Build, fraction: float) -> list[str]:
    """One line per dataset: rows against F x documented total, the verdict, and whether
    the manifest's accounting holds."""
    from pipelines.corpus import registry

    lines = [f"  {'dataset':<34} {'rows':>10} {'F x documented':>15} {'ratio':>6}  verdict"]
    for dataset, rows in build.rows.items():
        expected = fraction * registry.get(dataset).documented_total
        lines.append(f"  {dataset:<34} {rows:>10,} {expected:>15,.0f} {rows / expected:>6.2f}  {build.verdicts[dataset]}")
    lines.append(f"  accounting (manifest): {'holds for every dataset' if build.accounting_holds else 'DOES NOT HOLD'}")
    return lines


def describe(build: Build) -> str:
    return (f"  {build.label}: {build.seconds:,.0f} s wall, {build.cpu_seconds:,.0f} s CPU "
            f"(other processes {build.others_cpu_seconds:,.0f} s, idle {build.idle_cpu_seconds:,.0f} s), "
            f"peak {build.peak_process_mb:,.0f} MB (largest process) / {build.peak_tree_mb:,.0f} MB (process tree), "
            f"{build.total_rows:,} rows, input read {sum(build.input_bytes.values()) / 1e9:.2f} GB, "
            f"output {build.output_bytes / 1e9:.2f} GB")


def source_datasets() -> dict[str, list[str]]:
    from pipelines.corpus import registry

    by_source: dict[str, list[str]] = {}
    for spec in registry.DATASETS:
        if registry.is_implemented(spec.id):
            by_source.setdefault(spec.source, []).append(spec.id)
    return by_source


def per_source(root: Path, work: Path, tag: str) -> dict[str, Build]:
    """Each source built alone on the same input (``--datasets``), and Stack Overflow's
    two archives alone (an input root holding only them)."""
    builds = {}
    for source, datasets in source_datasets().items():
        builds[source] = measure_build(root, work / f"out-{tag}-{source}", source, datasets)
        print(describe(builds[source]), flush=True)
    alone = work / f"in-{tag}-stackoverflow"
    shutil.rmtree(alone, ignore_errors=True)
    (alone / "stackexchange").mkdir(parents=True)
    for table in ("Posts", "PostLinks"):
        (alone / f"stackexchange/stackoverflow.com-{table}.7z").symlink_to(
            (root / f"stackexchange/stackoverflow.com-{table}.7z").resolve())
    builds["stackoverflow.com"] = measure_build(alone, work / f"out-{tag}-stackoverflow", "stackoverflow.com",
                                                source_datasets()["stackexchange"])
    print(describe(builds["stackoverflow.com"]), flush=True)
    return builds


_ONE_FILE = """
import json, sys, time
from pathlib import Path
from pipelines.engine import files
archive = sys.argv[1]
started, cpu = time.perf_counter(), time.process_time()
inflated = 0
for _name, stream in files.iter_archive_members(archive, wanted=lambda n: n == "Posts.xml"):
    while block := stream.read(1 << 20):
        inflated += len(block)
inflate = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "bytes": inflated}
from benchmarks import floor
folder = Path(sys.argv[2])
started, cpu = time.perf_counter(), time.process_time()
rows = floor.floor_stackexchange_sites(folder, folder / "floor.parquet")
parse = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "rows": rows}
print(json.dumps({"inflate": inflate, "inflate_and_parse": parse}))
"""


def one_file_terms(root: Path, work: Path) -> dict:
    """What one worker spends on Stack Overflow's ``Posts.7z``, in one process: inflating it
    (libarchive, as the build reads archives), and inflating and parsing it into
    title/body rows (the floor's single-process reader, :mod:`benchmarks.floor`)."""
    folder = work / "so-posts-only"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = root / "stackexchange/stackoverflow.com-Posts.7z"
    (folder / archive.name).symlink_to(archive.resolve())
    os.sync()
    result = subprocess.run([sys.executable, "-c", _ONE_FILE, str(archive), str(folder)], cwd=REPO,
                            capture_output=True, text=True, check=True)
    terms = json.loads(result.stdout.strip().splitlines()[-1])
    terms["archive_bytes"] = archive.stat().st_size
    shutil.rmtree(folder)
    return terms


# -- projection --------------------------------------------------------------------------------

VCPU_HOUR, GB_HOUR, SHUFFLE_GB, PD_GB_HOUR = 0.056, 0.003557, 0.011, 0.000054   # list prices, assumed
N1_STANDARD_4 = (4, 15.0)        # vCPUs, GB of memory
WORKER_DISK_GB = 25              # batch worker disk with the Shuffle service (assumed)
DATAFLOW_START_S = 300           # job submission, VM start and package install (assumed)
SHUFFLED_GB = 30                 # the shuffle service's share: the small joins (Quora, ELI5, TriviaQA,
                                 # NQ outcomes, StackExchange's titled duplicate links), assumed
# Other single files one worker decompresses (uncompressed bytes, approximate), for the
# per-file terms: gzip is inflated at GZIP_INFLATE_BPS (ISA-L, docs/running.md).
GZIP_INFLATE_BPS = 1.5e9
BIG_GZIP_FILES = {"paq/PAQ.metadata.jsonl.gz (~16 GB gzip)": 64e9,
                  "natural_questions/...simplified-nq-train.jsonl.gz": 17e9,
                  "paq/psgs_w100.tsv.gz": 13e9, "msmarco/qidpidtriples.train.full.2.tsv.gz": 5.4e9}


def project(full: Build, quarter: Build, fraction: float, terms: dict, say=print) -> dict:
    """Full-corpus wall time and cost from the builds at ``fraction`` and ``fraction / 4``
    and the one-file terms; every step is printed with its numbers."""
    result: dict = {}
    say("Projection to the full corpus (fraction 1), from the builds at F and F/4:")
    per_fraction = (full.cpu_seconds - quarter.cpu_seconds) / (fraction - fraction / 4)
    fixed = max(0.0, quarter.cpu_seconds - per_fraction * fraction / 4)
    cpu_full = fixed + per_fraction
    say(f"  CPU per unit of fraction = ({full.cpu_seconds:,.0f} - {quarter.cpu_seconds:,.0f}) s / "
        f"({fraction:g} - {fraction / 4:g}) = {per_fraction:,.0f} core-s; fixed cost {fixed:,.0f} core-s")
    say(f"  full-corpus CPU work = {fixed:,.0f} + {per_fraction:,.0f} = {cpu_full:,.0f} core-s "
        f"= {cpu_full / 3600:.1f} core-hours")
    use = full.efficiency
    say(f"  busy share at F: the build used {full.cpu_seconds:,.0f} CPU s and left {full.idle_cpu_seconds:,.0f} s idle "
        f"(others took {full.others_cpu_seconds:,.0f} s): {use:.0%}, assumed to hold at N cores")
    # One worker's time on one file is CPU time here: on a shared machine the wall time
    # also holds the other processes' turns.
    inflate = terms["inflate"]["bytes"] / terms["inflate"]["cpu"]
    parse = terms["inflate"]["bytes"] / terms["inflate_and_parse"]["cpu"]
    archive = SO_POSTS_XML_BYTES / inflate
    say(f"  one-file term, Stack Overflow's Posts.7z: its {SO_POSTS_XML_BYTES / 1e9:.1f} GB of XML inflated and cut into "
        f"blocks by one worker at {inflate / 1e6:.1f} MB/s = {archive:,.0f} s ({archive / 3600:.1f} h); every worker "
        f"parses the blocks (one worker inflating and parsing: {parse / 1e6:.1f} MB/s, "
        f"{SO_POSTS_XML_BYTES / parse / 3600:.1f} h)")
    others = 0.0
    for name, raw in BIG_GZIP_FILES.items():
        others = max(others, raw / GZIP_INFLATE_BPS)
        say(f"  other one-file terms: {name}: {raw / 1e9:.0f} GB / {GZIP_INFLATE_BPS / 1e9:.1f} GB/s = {raw / GZIP_INFLATE_BPS:,.0f} s")
    say(f"  one-file term with Posts.xml unpacked once into the bucket (byte ranges from the start): {others:,.0f} s")
    critical = {"7z": archive, "unpacked": others}
    result.update(cpu_full_core_s=cpu_full, fixed_core_s=fixed, busy=use, one_file_7z_s=archive,
                  one_file_unpacked_s=others, inflate_bps=inflate, inflate_parse_bps=parse, local={}, dataflow={})
    say("  local, N cores: T = max(CPU / (N x busy), one-file term)")
    for cores in (2, 8, 32):
        spread = cpu_full / (cores * use)
        for case, term in critical.items():
            wall = max(spread, term)
            result["local"][f"{cores}/{case}"] = wall
            say(f"    N={cores:<2} {case:<8}: max({cpu_full:,.0f} / ({cores} x {use:.2f}) = {spread:,.0f}, {term:,.0f}) "
                f"= {wall:,.0f} s = {wall / 3600:.1f} h")
    vcpus, memory = N1_STANDARD_4
    hourly = vcpus * VCPU_HOUR + memory * GB_HOUR + WORKER_DISK_GB * PD_GB_HOUR
    say(f"  Dataflow, n1-standard-4 at ${hourly:.4f}/worker-hour ({vcpus} x ${VCPU_HOUR} + {memory:g} GB x ${GB_HOUR} "
        f"+ {WORKER_DISK_GB} GB PD x ${PD_GB_HOUR}), shuffle {SHUFFLED_GB} GB x ${SHUFFLE_GB} = "
        f"${SHUFFLED_GB * SHUFFLE_GB:.2f}; T = {DATAFLOW_START_S} s start + max(CPU / (4W x busy), one-file term)")
    for workers in (10, 50):
        spread = cpu_full / (vcpus * workers * use)
        for case, term in critical.items():
            wall = DATAFLOW_START_S + max(spread, term)
            kept = workers * wall / 3600 * hourly + SHUFFLED_GB * SHUFFLE_GB
            busy_only = (cpu_full / use / vcpus / 3600) * hourly + SHUFFLED_GB * SHUFFLE_GB
            result["dataflow"][f"{workers}/{case}"] = {"wall_s": wall, "cost": kept, "cost_if_scaled_down": busy_only}
            say(f"    W={workers:<2} {case:<8}: {DATAFLOW_START_S} + max({cpu_full:,.0f} / ({vcpus * workers} x {use:.2f}) = "
                f"{spread:,.0f}, {term:,.0f}) = {wall:,.0f} s = {wall / 3600:.2f} h; "
                f"cost {workers} x {wall / 3600:.2f} h x ${hourly:.4f} + ${SHUFFLED_GB * SHUFFLE_GB:.2f} = ${kept:.2f} "
                f"(${busy_only:.2f} if idle workers are released)")
    return result


def rates(builds: dict[str, Build]) -> list[str]:
    """Per-source rates of the builds of one source each. Each build pays one start-up;
    the cheapest of them (SQuAD's 0.1 MB) is taken as that fixed cost and left out of the
    rates per CPU second beyond start-up."""
    startup = min(b.cpu_seconds for b in builds.values())
    lines = [f"  start-up (the least CPU of these builds): {startup:.1f} CPU s",
             (f"  {'source':<18} {'rows':>10} {'input MB':>9} {'wall s':>7} {'CPU s':>7} {'rows/s':>8} {'MB/s':>6} "
              f"{'rows/CPU-s*':>11} {'MB/CPU-s*':>9} {'peak MB':>8} {'tree MB':>8}   (* beyond start-up)")]
    for source, b in builds.items():
        read = sum(b.input_bytes.values())
        beyond = b.cpu_seconds - startup
        # Below a second beyond start-up the rate is noise (and the start-up build's own is undefined).
        per_cpu = (f"{b.total_rows / beyond:>11,.0f} {read / 1e6 / beyond:>9,.2f}" if beyond >= 1
                   else f"{'-':>11} {'-':>9}")
        lines.append(f"  {source:<18} {b.total_rows:>10,} {read / 1e6:>9,.1f} {b.seconds:>7,.1f} {b.cpu_seconds:>7,.1f} "
                     f"{b.total_rows / b.seconds:>8,.0f} {read / 1e6 / b.seconds:>6,.2f} {per_cpu} "
                     f"{b.peak_process_mb:>8,.0f} {b.peak_tree_mb:>8,.0f}")
    return lines


def inputs(work: Path, fraction: float, seed: int, jobs: int) -> Path:
    """The input root of ``fraction``, generated unless a complete one with the same seed is there."""
    root = work / f"in-{fraction:g}"
    marker = root / ".generated.json"
    if marker.exists() and json.loads(marker.read_text()).get("seed") == seed:
        print(f"input at F={fraction:g}: reusing {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
        print(f"input at F={fraction:g}: generating into {root}", flush=True)
        generate(root, fraction, seed, jobs)
    return root


def reprint(path: Path) -> None:
    """Print the tables and the projection again from a ``--json`` file."""
    report = json.loads(path.read_text())
    builds = {float(f): Build(**b) for f, b in report.get("builds", {}).items()}
    for f, build in sorted(builds.items()):
        print(describe(build))
        print("\n".join(check(build, f)))
    if report.get("per_source"):
        print("\n".join(rates({k: Build(**v) for k, v in report["per_source"].items()})))
    if len(builds) == 2 and "one_file_terms" in report:
        quarter, full = sorted(builds)
        project(builds[full], builds[quarter], full, report["one_file_terms"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, help="share of every source's real records")
    parser.add_argument("--from-json", help="print the tables of an earlier run's --json file, and stop")
    parser.add_argument("--work", default="/tmp/corpus-rehearsal", help="folder for inputs and outputs")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--jobs", type=int, default=2, help="generator processes")
    parser.add_argument("--no-quarter", action="store_true", help="do not build F/4 (and print no projection)")
    parser.add_argument("--per-source", action="store_true", help="also build each source alone at F")
    parser.add_argument("--no-builds", action="store_true",
                        help="skip the builds of every source (with --per-source: only those)")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--clean", action="store_true", help="remove inputs and outputs at the end")
    parser.add_argument("--target-shard-mb", type=int,
                        help="the builds' shard size (default: the build's); a shard is held in memory while written")
    parser.add_argument("--json", help="write every measurement to this file")
    args = parser.parse_args(argv)
    if args.from_json:
        reprint(Path(args.from_json))
        return 0
    if args.fraction is None:
        parser.error("--fraction is required")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    fractions = [args.fraction] + ([] if args.no_quarter else [args.fraction / 4])
    roots = {f: inputs(work, f, args.seed, args.jobs) for f in fractions}
    if args.generate_only:
        return 0
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    report: dict = {"fraction": args.fraction, "generated": {}, "builds": {}}
    builds = {}
    for f in sorted(fractions) if not args.no_builds else ():
        report["generated"][f] = json.loads((roots[f] / ".generated.json").read_text())["bytes"]
        builds[f] = measure_build(roots[f], work / f"out-{f:g}", f"all sources, F={f:g}",
                                  shard_mb=args.target_shard_mb)
        print(describe(builds[f]), flush=True)
        print("\n".join(check(builds[f], f)), flush=True)
        report["builds"][f] = vars(builds[f])
    if len(builds) == 2:
        full, quarter = builds[args.fraction], builds[args.fraction / 4]
        growth = full.peak_tree_mb / quarter.peak_tree_mb - 1
        print(f"peak memory F vs F/4: process tree {quarter.peak_tree_mb:,.0f} -> {full.peak_tree_mb:,.0f} MB "
              f"({growth:+.0%}); largest process {quarter.peak_process_mb:,.0f} -> {full.peak_process_mb:,.0f} MB "
              f"({full.peak_process_mb / quarter.peak_process_mb - 1:+.0%}); target within +20%", flush=True)
    if args.per_source:
        alone = per_source(roots[args.fraction], work, f"{args.fraction:g}")
        print(f"Each source alone at F={args.fraction:g} (two workers; each build includes one start-up):")
        print("\n".join(rates(alone)), flush=True)
        report["per_source"] = {k: vars(v) for k, v in alone.items()}
    terms = one_file_terms(roots[args.fraction], work)
    report["one_file_terms"] = terms
    print(f"Stack Overflow's Posts.7z in one process: inflated {terms['inflate']['bytes'] / 1e6:,.0f} MB in "
          f"{terms['inflate']['seconds']:.1f} s ({terms['inflate']['cpu']:.1f} CPU s); inflated and parsed into "
          f"{terms['inflate_and_parse']['rows']:,} rows in {terms['inflate_and_parse']['seconds']:.1f} s "
          f"({terms['inflate_and_parse']['cpu']:.1f} CPU s)", flush=True)
    if len(builds) == 2:
        report["projection"] = project(builds[args.fraction], builds[args.fraction / 4], args.fraction, terms)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    if args.clean:
        for path in work.glob("*"):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
