"""The build: sources -> normalise -> shards, then the manifest and the measured mix.

:func:`run_build` is the whole job behind ``corpus build``. The pipeline graph has one
composite transform per step with a stable name (``<source>/...`` for reading and pair
rules, ``<dataset>/Normalize``, ``<dataset>/Write``, ``<dataset>/WriteRejected``), so it
reads well in Dataflow's UI and can be updated in place.

Output layout::

    OUT/<dataset>/<dataset>-SSSSS-of-NNNNN.parquet     the rows
    OUT/_rejected/<dataset>/rejected-SSSSS-of-NNNNN.jsonl.gz   every rejected record
    OUT/_work/                                          per-step summaries of the run
    OUT/data_config.json                                the measured training mix
    OUT/manifest.json                                   written last: the run is complete
"""
from __future__ import annotations

import datetime
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

import pipelines
from pipelines.corpus import accounting, licences, mix, registry
from pipelines.corpus.evalsets import EvalSetError, read_evalsets
from pipelines.corpus.licences import LicenceSelection
from pipelines.corpus.manifest import REJECTED_DIR, assemble_manifest, read_json
from pipelines.corpus.normalize import NormalizeRows
from pipelines.corpus.rejects import REJECTED
from pipelines.corpus.release import fetch_records, fetched_checksums
from pipelines.corpus.source import Source, SourceContext, SourceError
from pipelines.engine import files, progress
from pipelines.engine import options as engine_options
from pipelines.engine.shards import JsonLinesGzipShards, ParquetShards, ShardingConfig
from pipelines.engine.spill import SpillByDataset
from pipelines.engine.write import WriteShards
from pipelines.filters.steps import EVAL_INDEX, add_filters
from pipelines.runtime import filesystems, options as runtime_options, progress_report

MANIFEST = "manifest.json"
DATA_CONFIG = "data_config.json"
WORK_DIR = "_work"
# Under WORK_DIR: the engine's temporary files (--scratch_dir), removed when a build ends.
SCRATCH_DIR = "scratch"


class BuildError(Exception):
    """A problem with the request itself (layout, dataset ids, options): one line for people."""


@dataclass
class BuildRequest:
    """What to build.

    Attributes:
        output: the output folder (local, gs://, s3://).
        input_root: folder holding one folder per source in the upstream layout;
            ignored for a sample build.
        datasets: dataset ids to build; empty means every implemented dataset whose
            source folder exists.
        sample: build from the samples bundled with each source.
        strict: fail on the first unreadable file instead of recording it.
        source_options: per source name, ``{key: value}`` options for its rules.
        sharding: shard and row-group sizes.
        input_checksums: compute SHA-256 of every input file for the manifest.
        force: rebuild even when ``output`` already holds a complete build.
        licences: build only datasets whose licence it accepts (``--licences``); ``None``
            builds every licence.
        decontaminate: evaluation sets (BEIR folders, JSON-lines or TSV files) whose
            queries and relevant passages no row may match (``--decontaminate``).
        dedup: ``""`` (off), ``"exact"`` or ``"near"`` (``--dedup``).
    """

    output: str
    input_root: str | None = None
    datasets: tuple[str, ...] = ()
    sample: bool = False
    strict: bool = False
    source_options: dict = field(default_factory=dict)
    sharding: ShardingConfig = field(default_factory=ShardingConfig)
    input_checksums: bool = True
    force: bool = False
    licences: LicenceSelection | None = None
    decontaminate: tuple[str, ...] = ()
    dedup: str = ""


@dataclass
class _PlannedSource:
    source: Source
    ctx: SourceContext


def plan_sources(request: BuildRequest) -> tuple[list[_PlannedSource], dict[str, str]]:
    """Decide which sources run with which datasets.

    Returns:
        The sources to run, and for every registered dataset that will not be built
        the reason (``not implemented``, ``not selected``, ``no input``).
    Raises:
        BuildError: unknown dataset ids, a requested source folder that is missing, or
            nothing left to build.
    """
    requested = list(request.datasets)
    for dataset_id in requested:
        try:
            registry.get(dataset_id)
        except KeyError as exc:
            raise BuildError(exc.args[0]) from None
    if not request.sample and not request.input_root:
        raise BuildError("give --input-root (a folder with one folder per source) or --sample")
    status: dict[str, str] = {}
    by_source: dict[str, list[str]] = defaultdict(list)
    for spec in registry.DATASETS:
        if requested and spec.id not in requested:
            status[spec.id] = "not selected"
        elif request.licences and request.licences.refusal(licences.get(spec.licence)):
            status[spec.id] = "not selected"
        elif not registry.is_implemented(spec.id):
            status[spec.id] = "not implemented"
        else:
            by_source[spec.source].append(spec.id)
    planned = []
    for source_name, dataset_ids in by_source.items():
        source = registry.load_source(source_name)
        root = source.sample_root() if request.sample else request.input_root.rstrip("/")
        source_dir = files.join(root, source.folder)
        if not files.has_files(source_dir):
            if requested:
                raise BuildError(
                    f"no input for {', '.join(dataset_ids)}: expected the {source.name} files under "
                    f"{source_dir}/ (one folder per source under --input-root, upstream file names)")
            for dataset_id in dataset_ids:
                status[dataset_id] = "no input"
            continue
        ctx = SourceContext(
            input_root=root, source_dir=source_dir, datasets=tuple(dataset_ids),
            options=dict(request.source_options.get(source_name, {})), strict=request.strict,
            source=source_name)
        planned.append(_PlannedSource(source, ctx))
    if not planned and not request.sample:
        folder_name = request.input_root.rstrip("/").rsplit("/", 1)[-1]
        if any(registry.load_source(spec.source) is not None
               and registry.load_source(spec.source).folder == folder_name for spec in registry.DATASETS):
            raise BuildError(
                f"--input-root {request.input_root} looks like the '{folder_name}' source folder "
                "itself; give its parent folder (the one holding one folder per source)")
    if not planned:
        raise BuildError("nothing to build: " + "; ".join(
            f"{d}: {s}" for d, s in status.items() if not requested or d in requested))
    running = {item.source.name for item in planned}
    for source_name in request.source_options:
        if source_name not in running:
            raise BuildError(f"--source-option for {source_name!r}, which this run does not build "
                             f"(sources in this run: {', '.join(sorted(running))})")
    return planned, status


def _write_json(value, path: str) -> str:
    with FileSystems.create(path) as stream:
        stream.write(json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8"))
    return path


def _sha256_of(item) -> dict:
    source_name, path, root = item
    digest = hashlib.sha256()
    size = 0
    with files.open_raw(path) as stream:
        while chunk := stream.read(files.READ_BUFFER):
            digest.update(chunk)
            size += len(chunk)
    return {"source": source_name, "path": files.relative_to(path, root), "bytes": size,
            "sha256": digest.hexdigest()}


def construct_pipeline(pipeline: beam.Pipeline, request: BuildRequest,
                       planned: list[_PlannedSource]) -> None:
    """Add the whole build to ``pipeline``."""
    output = request.output.rstrip("/")
    work = files.join(output, WORK_DIR)
    config = request.sharding
    rejects = []
    built: list[str] = []
    inputs = []
    rows_by_dataset: dict[str, beam.PCollection] = {}
    writers: dict[str, tuple] = {}
    for item in planned:
        source, ctx = item.source, item.ctx
        try:
            result = source.expand(pipeline, ctx)
        except SourceError as exc:
            raise BuildError(str(exc)) from None
        if ctx.unused_options():
            raise BuildError(f"--source-option for {source.name} not used by this run: "
                             f"{', '.join(ctx.unused_options())} (unknown, or not applicable to the "
                             f"inputs found; see python -m pydoc pipelines.sources.{source.name})")
        rejects.extend(result.rejects)
        for path, _size in source.input_files(ctx):
            inputs.append((source.name, path, ctx.input_root))
        for dataset_id in ctx.datasets:
            spec = registry.get(dataset_id)
            rows = result.rows[dataset_id]
            normalize = beam.ParDo(
                NormalizeRows(dataset_id, spec.text_policy, normalized=dataset_id in result.normalized,
                              licence=spec.licence))
            if rows.element_type is pa.Table:  # rows in Arrow tables stay tables
                normalize = normalize.with_output_types(pa.Table)
            normalized = rows | f"{dataset_id}/Normalize" >> normalize.with_outputs(REJECTED, main="rows")
            rejects.append(normalized[REJECTED])
            rows_by_dataset[dataset_id] = normalized.rows
            writers[dataset_id] = (spec, source)
            built.append(dataset_id)

    if request.decontaminate or request.dedup:
        rows_by_dataset, filtered = add_filters(
            pipeline, rows_by_dataset, eval_index=files.join(work, EVAL_INDEX) if request.decontaminate else None,
            dedup=request.dedup)
        rejects.extend(filtered)
    for dataset_id in built:
        spec, source = writers[dataset_id]
        per_subset = spec.mix_per_subset
        (rows_by_dataset[dataset_id]
         | f"{dataset_id}/Write" >> WriteShards(
             files.join(output, dataset_id), dataset_id, ParquetShards(config, spec.repeated_texts), config,
             spill_dir=files.join(work, "spill", dataset_id),
             subset_field="subset" if per_subset else None,
             pool_below=source.pool_below if per_subset else 0,
             pool_name=source.pool_name if per_subset else "")
         | f"{dataset_id}/SaveSummary" >> beam.Map(_write_json, files.join(work, f"{dataset_id}.rows.json")))

    # Rejected records are spilled where they are produced (per dataset), and only the
    # runs' descriptions are gathered: a Flatten of the records themselves would be held in
    # memory whole by a local runner.
    index = {dataset_id: n for n, dataset_id in enumerate(built)}
    spill_dirs = {d: files.join(work, "spill", REJECTED_DIR, d) for d in built}
    runs = [reject_records | f"Rejected/Spill{j}" >> beam.ParDo(
                SpillByDataset(spill_dirs, JsonLinesGzipShards(), config))
            for j, reject_records in enumerate(rejects)]
    parts = (runs | "Rejected/FlattenRuns" >> beam.Flatten()
             | "Rejected/ByDataset" >> beam.Partition(lambda item, _count: index[item[0]], len(built)))
    for dataset_id in built:
        (parts[index[dataset_id]]
         | f"{dataset_id}/RejectedRuns" >> beam.Map(lambda item: item[1])
         | f"{dataset_id}/WriteRejected" >> WriteShards(
             files.join(output, REJECTED_DIR, dataset_id), "rejected", JsonLinesGzipShards(), config,
             spill_dir=spill_dirs[dataset_id], subset_field=None, spilled=True)
         | f"{dataset_id}/SaveRejectedSummary" >> beam.Map(
             _write_json, files.join(work, f"{dataset_id}.rejected.json")))

    if request.input_checksums and inputs:
        # Files a fetch already verified keep its checksum; the others are read once more.
        known, unknown = [], []
        fetched = {root: fetched_checksums(root) for root in {root for _, _, root in inputs}}
        sizes = {path: size for item in planned for path, size in item.source.input_files(item.ctx)}
        for source_name, path, root in inputs:
            relative = files.relative_to(path, root)
            record = fetched[root].get(relative)
            if record and record[0] == sizes.get(path):
                known.append({"source": source_name, "path": relative, "bytes": record[0],
                              "sha256": record[1], "sha256_from": "fetch manifest"})
            else:
                unknown.append((source_name, path, root))
        (pipeline
         | "Inputs/List" >> beam.Create(sorted(unknown))
         | "Inputs/Spread" >> beam.Reshuffle()
         | "Inputs/Checksum" >> beam.Map(_sha256_of)
         | "Inputs/Collect" >> beam.combiners.ToList()
         | "Inputs/Save" >> beam.Map(lambda items: _write_json(
             sorted(items + known, key=lambda i: (i["source"], i["path"])),
             files.join(work, "inputs.json"))))


def build_fingerprint(request: BuildRequest, planned: list[_PlannedSource], evaluation_files=()) -> str:
    """SHA-256 over what decides a build's output: the input files (names and sizes),
    the datasets, the options, the evaluation sets' files (checksums) and the package
    version. The runner does not count."""
    listing = sorted((item.source.name, files.relative_to(path, item.ctx.input_root), size)
                     for item in planned for path, size in item.source.input_files(item.ctx))
    # The fetch's records decide whether an input is the published release (the verdicts).
    fetched = sorted((root, json.dumps(fetch_records(root), sort_keys=True))
                     for root in {item.ctx.input_root for item in planned if item.ctx.input_root})
    decisive = {
        "inputs": listing,
        "fetch_records": [hashlib.sha256(text.encode()).hexdigest() for _root, text in fetched],
        "datasets": sorted(d for item in planned for d in item.ctx.datasets),
        "sample": request.sample,
        "strict": request.strict,
        "source_options": request.source_options,
        "licences": request.licences.describe() if request.licences else "all",
        "dedup": request.dedup,
        "decontaminate": [[f["evalset"], f["path"], f["sha256"]] for f in evaluation_files],
        "sharding": [request.sharding.target_shard_bytes, request.sharding.row_group_bytes,
                     request.sharding.compression],
        "version": pipelines.__version__,
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()


def scratch_folder(output: str, scratch_dir: str = "") -> str:
    """The build's folder for the engine's temporary files: ``OUT/_work/scratch``, or a
    folder of its own below a given ``--scratch_dir``, named after the output, so that
    builds of other outputs sharing that folder neither read nor remove each other's files."""
    if not scratch_dir:
        return files.join(output, WORK_DIR, SCRATCH_DIR)
    return files.join(scratch_dir, "build-" + hashlib.sha256(output.encode()).hexdigest()[:16])


def _clear_scratch(scratch: str) -> None:
    """Remove the engine's temporary files (``--scratch_dir``, by default ``OUT/_work/scratch``):
    the blocks and join runs it writes there, nothing else."""
    doomed = [p for kind in engine_options.SCRATCH_KINDS for p, _ in files.list_files(files.join(scratch, kind, "**"))]
    if doomed:
        FileSystems.delete(doomed)


def _remove_previous_build(output: str, previous: dict) -> None:
    """Delete the files a previous complete build wrote, its manifest first."""
    FileSystems.delete([files.join(output, MANIFEST)])
    folders = [WORK_DIR, REJECTED_DIR] + [d for d, e in previous.get("datasets", {}).items()
                                          if e.get("status") == "built"]
    doomed = [p for folder in folders for p, _ in files.list_files(files.join(output, folder, "**"))]
    if files.exists(files.join(output, DATA_CONFIG)):
        doomed.append(files.join(output, DATA_CONFIG))
    if doomed:
        FileSystems.delete(doomed)


def run_build(request: BuildRequest, beam_args: list[str] | None = None, engine_flags: dict | None = None) -> dict:
    """Run the build and return its manifest (also written to ``OUT/manifest.json``).

    An output folder with a manifest is always the result of one complete run: the
    manifest is written last. Running again on a complete output with the same inputs and
    options does nothing (the manifest returned has ``"up_to_date": true``); with other
    inputs or options it is refused unless ``request.force``, which first removes the
    previous build. A run that died midway left no manifest; running it again rewrites
    the same shards byte for byte and removes whatever the dead run left behind.
    """
    beam_args = list(beam_args or [])
    try:  # the runner named is resolved first: an unknown one is refused, its options known
        unknown = runtime_options.unknown_flags(beam_args)
        if unknown:
            raise BuildError(f"unknown option {' '.join(unknown)}: neither a corpus build option "
                             "nor a Beam pipeline option (see corpus build --help)")
        options = runtime_options.pipeline_options(beam_args, **(engine_flags or {}))
    except runtime_options.RunnerError as exc:
        raise BuildError(str(exc)) from None
    # Planning lists the input before the pipeline exists: gs:// and s3:// need the options now.
    filesystems.prepare(options)
    planned, status = plan_sources(request)
    output = request.output.rstrip("/")
    manifest_path = files.join(output, MANIFEST)
    try:  # small (queries and their relevant passages): read before the pipeline exists
        evaluation = read_evalsets(request.decontaminate) if request.decontaminate else None
    except EvalSetError as exc:
        raise BuildError(str(exc)) from None
    fingerprint = build_fingerprint(request, planned, evaluation.files if evaluation else [])
    if files.exists(manifest_path):
        previous = read_json(manifest_path)
        if previous.get("fingerprint") == fingerprint and not request.force:
            return {**previous, "up_to_date": True}
        if not request.force:
            raise BuildError(
                f"{output} already holds a complete build of other inputs or options; "
                "use --force to replace it, or choose another --output")
        _remove_previous_build(output, previous)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    inputs = [progress_report.InputFile(path, item.source.name, size)
              for item in planned for path, size in item.source.input_files(item.ctx)]
    reporting = progress.is_local_runner(options.view_as(StandardOptions).runner)
    with progress_report.ProgressReporter(inputs, enabled=reporting) as reporter:
        engine = options.view_as(engine_options.CorpusOptions)
        engine.progress_dir = reporter.spool
        # The engine's temporary files (blocks of shared-out files, join runs), removed below.
        engine.scratch_dir = scratch_folder(output, engine.scratch_dir)
        engine_options.use(engine_options.settings_of(options))  # for steps run in this process
        if evaluation:
            with FileSystems.create(files.join(output, WORK_DIR, EVAL_INDEX)) as stream:
                stream.write(evaluation.index.to_bytes())
        pipeline = beam.Pipeline(options=options)
        construct_pipeline(pipeline, request, planned)
        _clear_scratch(engine.scratch_dir)  # what a killed run left
        result = pipeline.run()
        result.wait_until_finish()
    _clear_scratch(engine.scratch_dir)
    filtered = {"dedup": request.dedup, "duplicates": accounting.collect_named(result, "dedup."),
                "overlap": accounting.collect_named(result, "overlap."),
                "decontaminate": [{"name": name, **counts, "files": [
                    {k: f[k] for k in ("path", "bytes", "sha256")} for f in evaluation.files if f["evalset"] == name]}
                    for name, counts in evaluation.counts.items()] if evaluation else []}
    manifest = assemble_manifest(request, planned, files.join(output, WORK_DIR), status, beam_args, started,
                                 accounting.collect(result), filtered, accounting.input_rows(result))
    manifest["fingerprint"] = fingerprint
    _write_json(mix.measured_mix(manifest), files.join(output, DATA_CONFIG))
    _write_json(manifest, manifest_path)
    return manifest


def read_manifest(output: str) -> dict:
    """The manifest of a complete build; raises BuildError when there is none."""
    filesystems.prepare(PipelineOptions([]))
    path = files.join(output.rstrip("/"), MANIFEST)
    if not files.exists(path):
        raise BuildError(f"{path} not found: the folder is not the output of a complete build")
    return read_json(path)
