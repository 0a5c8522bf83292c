"""The manifest of a build: per dataset its rows, shards, rejects by reason, verdict and
accounting, the run's inputs and options, and the corpus totals.

Assembled after the run from the summaries its steps wrote (``OUT/_work``) and the
accounting counters (:mod:`pipelines.corpus.accounting`); the verdicts are those of
:mod:`pipelines.corpus.verify`, against the documented total when the input is the source's
published release (:mod:`pipelines.corpus.release`). It is written last
(``OUT/manifest.json``), so a folder with a manifest holds one complete build.
"""
from __future__ import annotations

import datetime
import json
import re
from collections import defaultdict

import pipelines
from pipelines.corpus import accounting, licences, registry, release, verify
from pipelines.engine import files

REJECTED_DIR = "_rejected"
# Reasons of the rows --decontaminate and --dedup drop (pipelines.filters).
FILTER_REASONS = ("eval_overlap", "duplicate")
_SECRET_FLAG = re.compile(r"(secret|token|password|credential|access_key|key_id|api_key)", re.I)


def read_json(path: str):
    """A JSON document from any filesystem."""
    with files.open_raw(path) as stream:
        return json.loads(stream.read().decode("utf-8"))


def scrub_args(args: list[str]) -> list[str]:
    """Beam flags for the manifest, with the values of secret-looking flags hidden."""
    out, hide_next = [], False
    for arg in args:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name.startswith("--") and _SECRET_FLAG.search(name):
            if eq:
                out.append(f"{name}=***")
            else:
                out.append(name)
                hide_next = True
        else:
            out.append(arg)
    return out


def _dataset_entry(request, source, spec: registry.DatasetSpec,
                   rows_summary: dict, rejected_summary: dict, sample_expected: dict | None,
                   skipped: dict | None = None, input_status: dict | None = None) -> dict:
    shards = rows_summary["shards"]
    plan = rows_summary["plan"]
    subsets: dict[str, int] = defaultdict(int)
    for shard in shards:
        for subset, count in shard["subsets"].items():
            subsets[subset] += count
    reasons: dict[str, int] = defaultdict(int)
    for shard in rejected_summary["shards"]:
        for reason, count in shard["reasons"].items():
            reasons[reason] += count
    rows = sum(s["rows"] for s in shards)
    # Rows the optional filters dropped: the verdicts judge the rows before them.
    filtered = {reason: reasons[reason] for reason in FILTER_REASONS if reasons.get(reason)}
    judged_rows = rows + sum(filtered.values())
    entry = {
        "status": "built",
        "pair": spec.pair,
        "licence": _licence_entry(spec),
        "columns": spec.columns,
        "rows": rows,
        "documented": spec.documented_total,
        "tolerance": spec.tolerance,
        "notes": list(spec.notes),
        "shards": [{k: s[k] for k in ("file", "rows", "bytes", "group")} for s in shards],
        "rejected": {
            "total": sum(reasons.values()),
            "by_reason": dict(sorted(reasons.items())),
            "files": [f"{REJECTED_DIR}/{spec.id}/{s['file']}" for s in rejected_summary["shards"]],
        },
    }
    if filtered:
        entry["filtered"] = {"rows_before": judged_rows, "dropped": filtered}
    if spec.subsets:
        entry["subsets"] = {name: {"rows": count, "group": plan["subset_group"].get(name, "")}
                            for name, count in sorted(subsets.items())}
    if spec.mix_per_subset:
        reference = source.subset_reference(spec.id)
        groups = {}
        for group, rows_in_group in sorted(plan["group_rows"].items()):
            ref = reference.get(group)
            groups[group] = {
                "rows": rows_in_group,
                "shards": [s["file"] for s in shards if s["group"] == group],
                "documented": ref["lines"] if ref else None,
                "verdict": (verify.judge(rows_in_group, ref["lines"], spec.tolerance, spec.drifts)["verdict"]
                            if ref and not request.sample else "-"),
            }
        entry["groups"] = groups
    if request.sample:
        measured = {"rows": judged_rows,
                    "rejected": {r: n for r, n in entry["rejected"]["by_reason"].items() if r not in filtered},
                    "skipped": dict(sorted((skipped or {}).items()))}
        if spec.subsets and not filtered:  # per-subset drops are not counted
            measured["subsets"] = {name: info["rows"] for name, info in entry["subsets"].items()}
        expected = (sample_expected or {}).get(spec.id)
        if expected is None:
            entry.update({"expected": None, "verdict": "no expected count"})
        else:
            entry.update({"expected": expected["rows"], **verify.judge_sample(measured, expected)})
    else:
        entry["input"] = input_status or {"published": False, "reasons": ["the input was not checked"]}
        if entry["input"]["published"]:
            entry.update({"expected": spec.documented_total,
                          **verify.judge(judged_rows, spec.documented_total, spec.tolerance, spec.drifts)})
        else:
            # The pool's reference count is that of every small site of the release: with
            # part of the input there is no telling which of them it should hold.
            pooled = (source.pool_name,) if spec.mix_per_subset and source.pool_name else ()
            for name in pooled:
                if name in entry.get("groups", {}):
                    entry["groups"][name]["verdict"] = "-"
            entry.update(verify.judge_partial_input(entry.get("groups"), not_comparable=pooled))
    return entry


def _licence_entry(spec: registry.DatasetSpec) -> dict:
    """The manifest's record of the terms ``spec`` is published under."""
    licence = licences.get(spec.licence)
    return {"id": licence.id, "name": licence.name, "url": licence.url, "commercial": licence.commercial}


def _not_built_entry(request, spec: registry.DatasetSpec, status: str) -> dict:
    entry = {"status": status, "verdict": status, "pair": spec.pair, "licence": _licence_entry(spec),
             "documented": spec.documented_total, "notes": list(spec.notes)}
    # Planning refuses a licence only for datasets --datasets asked for (or all, without it).
    selection = getattr(request, "licences", None)
    if status == "not selected" and selection and (not request.datasets or spec.id in request.datasets):
        refusal = selection.refusal(licences.get(spec.licence))
        if refusal:
            entry["reason"] = refusal
    return entry


def _input_statuses(planned: list, inputs: list[dict]) -> dict[str, dict]:
    """Per source of the run, whether its input is the published release
    (:func:`pipelines.corpus.release.source_input_status`); ``inputs`` are the files read,
    with the checksums the run took."""
    records = {root: release.fetch_records(root) for root in {item.ctx.input_root for item in planned}}
    return {item.source.name: release.source_input_status(
                item.source.name, item.ctx.input_root, item.ctx.source_dir,
                [i for i in inputs if i["source"] == item.source.name], records[item.ctx.input_root])
            for item in planned}


def assemble_manifest(request, planned: list, work: str, status: dict[str, str],
                      beam_args: list[str], started: str, counts: dict | None = None,
                      filters: dict | None = None, input_rows: dict | None = None) -> dict:
    """Read the run's summaries (in ``work``, the build's ``OUT/_work``) and build the
    manifest dict; ``counts`` are the accounting counters of the run
    (:func:`pipelines.corpus.accounting.collect`); ``filters`` what the filters asked for
    and found: ``{"decontaminate": [evaluation sets], "overlap": {dataset: {set: rows}},
    "dedup": mode, "duplicates": {dataset: {name: rows}}}``; ``input_rows`` the input rows
    that are no dataset's records (:func:`pipelines.corpus.accounting.input_rows`)."""
    inputs_path = files.join(work, "inputs.json")
    if files.exists(inputs_path):
        inputs = read_json(inputs_path)
    else:
        inputs = [{"source": item.source.name, "path": files.relative_to(p, item.ctx.input_root),
                   "bytes": size} for item in planned for p, size in item.source.input_files(item.ctx)]
    statuses = {} if request.sample else _input_statuses(planned, inputs)
    by_dataset = {}
    for item in planned:
        expected = item.source.sample_expected_counts() if request.sample else None
        for dataset_id in item.ctx.datasets:
            dataset_counts = (counts or {}).get(dataset_id, {})
            by_dataset[dataset_id] = _dataset_entry(
                request, item.source, registry.get(dataset_id),
                read_json(files.join(work, f"{dataset_id}.rows.json")),
                read_json(files.join(work, f"{dataset_id}.rejected.json")), expected,
                dataset_counts.get("skipped", {}), statuses.get(item.source.name))
            entry = by_dataset[dataset_id]
            entry["accounting"] = accounting.equations(
                dataset_counts, entry["rows"], entry["rejected"]["total"], item.source.counts_records)
            if filters and filters.get("decontaminate"):
                entry["overlap"] = filters.get("overlap", {}).get(dataset_id, {})
            if filters and filters.get("dedup"):
                entry["duplicates"] = filters.get("duplicates", {}).get(dataset_id, {})
    datasets = {}
    for spec in registry.DATASETS:
        if spec.id in by_dataset:
            datasets[spec.id] = by_dataset[spec.id]
        else:
            datasets[spec.id] = _not_built_entry(request, spec, status[spec.id])
    verdicts: dict[str, int] = defaultdict(int)
    for entry in datasets.values():
        verdicts[entry["verdict"]] += 1
    return {
        "format": "multiqa-corpus-manifest/1",
        "package_version": pipelines.__version__,
        "status": "complete",
        "started": started,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": {
            "sample": request.sample,
            "input_root": None if request.sample else request.input_root,
            "datasets_requested": list(request.datasets),
            "strict": request.strict,
            "source_options": request.source_options,
            "licences": request.licences.describe() if getattr(request, "licences", None) else "all",
            "decontaminate": (filters or {}).get("decontaminate", []),
            "dedup": (filters or {}).get("dedup") or "off",
            "beam_args": scrub_args(beam_args),
        },
        "inputs": inputs,
        "input_rows": input_rows or {},
        "datasets": datasets,
        "card": registry.reconcile_card_total(),
        "totals": {
            "rows": sum(e.get("rows", 0) for e in datasets.values()),
            "rejected": sum(e.get("rejected", {}).get("total", 0) for e in datasets.values()),
            "verdicts": dict(verdicts),
        },
    }


