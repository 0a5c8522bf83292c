"""``corpus report OUT``: one self-contained HTML page that shows a build to people.

The page holds everything it shows (CSS inline, charts as base64 PNG, no script; its only
external addresses are links to the licences' terms, from which nothing is loaded), so it
can be mailed, attached to a ticket or opened offline. It
reads the build's ``manifest.json`` and, for the text lengths, a sample of each
dataset's shards (streamed, at most :data:`LENGTH_SAMPLE_ROWS` rows per dataset).

Sections: the summary; counts against the documented totals per dataset and per
StackExchange site; verdicts and the known discrepancies of the documented numbers;
rejected records by reason; text lengths of anchors and positives; shard sizes; the
licences of the datasets and the selection the run used; and the run's inputs and options.
"""
from __future__ import annotations

import statistics

import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines import build
from pipelines.corpus import licences, registry
from pipelines.engine import files
from pipelines.report import charts
from pipelines.report.html import Page

REPORT_NAME = "report.html"
# Rows per dataset whose text lengths are measured (read in shard order, streamed).
LENGTH_SAMPLE_ROWS = 20_000
# Largest number of StackExchange sites drawn in the per-site chart (the table has all).
SITES_IN_CHART = 40


def built_datasets(manifest: dict) -> dict[str, dict]:
    """The manifest entries of the datasets the run built, in registry order."""
    return {name: entry for name, entry in manifest["datasets"].items() if entry["status"] == "built"}


def text_lengths(output: str, dataset: str, entry: dict, max_rows: int = LENGTH_SAMPLE_ROWS) -> dict:
    """Character lengths of the anchors and positives of up to ``max_rows`` rows of a dataset.

    Args:
        output: the build's output folder.
        dataset: the dataset id (its folder under ``output``).
        entry: its manifest entry (for the shard list).
        max_rows: rows to measure at most; shards are read in order, a record batch at
            a time, and reading stops there.
    Returns:
        ``{"anchor": [lengths], "positive": [lengths]}``.
    """
    lengths: dict[str, list[int]] = {"anchor": [], "positive": []}
    for shard in entry["shards"]:
        with files.open_raw(files.join(output, dataset, shard["file"])) as stream:
            for batch in pq.ParquetFile(stream).iter_batches(batch_size=4096, columns=["anchor", "positive"],
                                                                use_threads=False):
                room = max_rows - len(lengths["anchor"])
                if room <= 0:
                    return lengths
                batch = batch.slice(0, room)
                for column in ("anchor", "positive"):
                    lengths[column].extend(pc.utf8_length(batch.column(column)).to_pylist())
    return lengths


def _percentile(values: list[int], share: float) -> int | str:
    if not values:
        return "-"
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _reference_label(manifest: dict) -> str:
    return "expected (sample)" if manifest["run"].get("sample") else "expected"


def _summary(page: Page, manifest: dict) -> None:
    totals = manifest.get("totals", {})
    sample = manifest["run"].get("sample")
    page.heading("Summary", "summary")
    if sample:
        page.note("This is a --sample build: counts are checked against the bundled sample's "
                  "hand-worked expected counts, not the documented totals.")
    page.cards([
        ("rows written", f"{totals.get('rows', 0):,}"),
        ("rejected records", f"{totals.get('rejected', 0):,}"),
        ("datasets built", str(len(built_datasets(manifest)))),
        ("verdicts", ", ".join(f"{n} {v}" for v, n in sorted(totals.get("verdicts", {}).items()))),
    ])
    page.table(("", ""), [
        ("started", manifest.get("started", "-")),
        ("finished", manifest.get("finished", "-")),
        ("package version", manifest.get("package_version", "-")),
        ("manifest format", manifest.get("format", "-")),
    ], header=False)


def _counts(page: Page, manifest: dict) -> None:
    datasets = built_datasets(manifest)
    label = _reference_label(manifest)
    page.heading("Counts against the documented totals", "counts")
    page.paragraph(f"Bars: rows written, coloured by verdict. Black marks: the {label} count. "
                   "The scale is logarithmic, so a bar ending at its mark is a match.")
    names = list(datasets)
    page.image(charts.counts_chart(
        names, [e["rows"] for e in datasets.values()], [e.get("expected") for e in datasets.values()],
        [e["verdict"] for e in datasets.values()], label), "Rows written per dataset against the reference count")
    rows = []
    for name, entry in manifest["datasets"].items():
        rows.append((name, entry.get("pair", ""), _int(entry.get("rows")), _int(entry.get("expected")),
                     _int(entry.get("documented")), _int(entry.get("difference")),
                     "-" if entry.get("relative_difference") is None else f"{entry['relative_difference']:+.2%}",
                     "-" if entry.get("tolerance") is None else f"{entry['tolerance']:.0%}",
                     page.verdict(entry["verdict"])))
    page.table(("dataset", "pair", "rows", label, "documented", "difference", "relative", "tolerance",
                "verdict"), rows, numeric=(2, 3, 4, 5, 6, 7))


def _int(value) -> str:
    return "-" if value is None else f"{value:,}"


def _sites(page: Page, manifest: dict) -> None:
    per_site = {name: entry for name, entry in built_datasets(manifest).items() if entry.get("subsets")}
    if not per_site:
        return
    page.heading("StackExchange sites", "sites")
    page.paragraph("Sites with at least 10,000 rows in a dataset have shards and a mix entry of their "
                   "own; smaller sites are pooled as small_stackexchanges. Groups are judged against "
                   "the reference mix's per-site counts (not for a sample build: '-').")
    for dataset, entry in per_site.items():
        groups = entry.get("groups", {})
        if groups:
            ordered = sorted(groups.items(), key=lambda item: -(item[1].get("documented") or item[1]["rows"]))
            shown = ordered[:SITES_IN_CHART]
            page.subheading(f"{dataset}: groups against the reference mix")
            page.image(charts.counts_chart(
                [name for name, _ in shown], [g["rows"] for _, g in shown],
                [g.get("documented") for _, g in shown], [g.get("verdict", "-") for _, g in shown],
                "documented (reference mix)"), f"{dataset}: rows per site group against the reference mix")
            page.table(("group", "rows", "documented", "shards", "verdict"),
                       [(name, _int(g["rows"]), _int(g.get("documented")), str(len(g.get("shards", []))),
                         page.verdict(g.get("verdict", "-"))) for name, g in ordered], numeric=(1, 2, 3))
        page.details(f"{dataset}: rows per site ({len(entry['subsets'])} sites)",
                     ("site", "rows", "group"),
                     [(site, _int(info["rows"]), info.get("group", "")) for site, info in entry["subsets"].items()],
                     numeric=(1,))


def _verdicts(page: Page, manifest: dict) -> None:
    page.heading("Verdicts and known discrepancies", "verdicts")
    page.table(("verdict", "meaning", "datasets"), [
        (page.verdict(verdict), meaning,
         ", ".join(n for n, e in manifest["datasets"].items() if e["verdict"] == verdict) or "-")
        for verdict, meaning in (
            ("match", "within the tolerance"),
            ("drift", "outside it, for a source whose releases keep changing (a warning)"),
            ("mismatch", "outside it, for a closed release (a failure)"),
            ("partial input", ("the input is not the published release (files missing, cut or not "
                               "verified): not judged against the documented total; StackExchange "
                               "compared per site group")),
            ("not implemented", "the dataset has no reader"),
            ("not selected", "not part of this run"),
            ("no input", "its source folder was missing"))
        if any(e["verdict"] == verdict for e in manifest["datasets"].values()) or verdict == "match"])
    problems = [(name, problem) for name, entry in manifest["datasets"].items()
                for problem in entry.get("problems", [])]
    if problems:
        page.subheading("Problems found by the count check")
        page.table(("dataset", "problem"), problems)
    by_reason: dict[str, list[str]] = {}
    for name, entry in manifest["datasets"].items():
        for reason in (entry.get("input") or {}).get("reasons", []):
            by_reason.setdefault(reason, []).append(name)
    if by_reason:
        page.subheading("Why an input is partial")
        page.table(("datasets", "reason"), [(", ".join(names), reason) for reason, names in by_reason.items()])
    by_note: dict[str, list[str]] = {}
    for name, entry in manifest["datasets"].items():
        for note in entry.get("notes", []):
            by_note.setdefault(note, []).append(name)
    page.subheading("Known discrepancies of the documented numbers")
    page.table(("datasets", "note"), [(", ".join(names), note) for note, names in by_note.items()])
    card = manifest.get("card")
    if card:
        page.paragraph(f"Model card: {card['explanation']}.")


def _rejected(page: Page, manifest: dict) -> None:
    datasets = built_datasets(manifest)
    reasons: dict[str, int] = {}
    for entry in datasets.values():
        for reason, count in entry["rejected"]["by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    page.heading("Rejected records by reason", "rejected")
    if not reasons:
        page.paragraph("No record was rejected.")
        return
    page.paragraph(f"{sum(reasons.values()):,} records did not become rows; each is kept with its "
                   "reason under _rejected/<dataset>/.")
    page.image(charts.rejects_chart(reasons), "Rejected records by reason, all datasets")
    page.table(("dataset", "rejected", "by reason"), [
        (name, _int(entry["rejected"]["total"]),
         ", ".join(f"{reason} {count:,}" for reason, count in
                   sorted(entry["rejected"]["by_reason"].items(), key=lambda item: -item[1])) or "-")
        for name, entry in datasets.items()], numeric=(1,))


def _filters(page: Page, manifest: dict) -> None:
    """What --decontaminate and --dedup dropped, per dataset (and evaluation set)."""
    run = manifest["run"]
    evalsets = [item["name"] for item in run.get("decontaminate", [])]
    dedup = run.get("dedup", "off")
    if not evalsets and dedup in ("off", "", None):
        return
    datasets = built_datasets(manifest)
    page.heading("Evaluation overlap and duplicates", "filters")
    if evalsets:
        page.paragraph(f"--decontaminate against {', '.join(evalsets)}: rows whose anchor or positive "
                       "matches an evaluation query or relevant passage are dropped (reason eval_overlap; "
                       "see docs/decontamination.md).")
        page.table(("dataset", *evalsets, "all"), [
            (name, *(_int(entry.get("overlap", {}).get(s, 0)) for s in evalsets),
             _int(sum(entry.get("overlap", {}).values())))
            for name, entry in datasets.items()], numeric=tuple(range(1, len(evalsets) + 2)))
    if dedup not in ("off", "", None):
        page.paragraph(f"--dedup {dedup}: rows dropped as copies (exact: of a row in the same or another "
                       "dataset; near: an anchor nearly repeating another's), reason duplicate; see "
                       "docs/dedup.md.")
        page.table(("dataset", "exact", "near", "kept copy elsewhere"), [
            (name, _int(entry.get("duplicates", {}).get("exact", 0)),
             _int(entry.get("duplicates", {}).get("near", 0)),
             ", ".join(f"{key.removeprefix('exact_of:')} {n:,}" for key, n in entry.get("duplicates", {}).items()
                       if key.startswith("exact_of:")) or "-")
            for name, entry in datasets.items()], numeric=(1, 2))


def _accounting(page: Page, manifest: dict) -> None:
    page.heading("Every record accounted for", "accounting")
    page.paragraph("Records: read = paired + rejected + skipped (each source names its record "
                   "unit). Rows: rows from the pair rules = rows written + rows dropped by "
                   "normalisation.")
    rows = []
    for name, entry in built_datasets(manifest).items():
        equations = entry.get("accounting")
        if not equations:
            continue
        records, row_counts = equations["records"], equations["rows"]
        counted = records["holds"] is not None
        rows.append((
            name,
            _int(records["read"]) if counted else "not counted",
            _int(records["paired"]) if counted else "-",
            _int(records["rejected"]),
            _int(sum(records["skipped"].values())) if counted else "-",
            {True: "holds", False: "DOES NOT HOLD", None: "-"}[records["holds"]],
            _int(row_counts["from_rules"]), _int(row_counts["written"]), _int(row_counts["dropped"]),
            "holds" if row_counts["holds"] else "DOES NOT HOLD",
        ))
    page.table(("dataset", "records read", "paired", "rejected", "skipped", "records",
                "rows from rules", "written", "dropped", "rows"), rows, numeric=(1, 2, 3, 4, 6, 7, 8))


def _lengths(page: Page, manifest: dict, output: str) -> None:
    datasets = built_datasets(manifest)
    measured = {name: text_lengths(output, name, entry) for name, entry in datasets.items()}
    page.heading("Text lengths of anchors and positives", "lengths")
    page.paragraph(f"Characters per text, over the first {LENGTH_SAMPLE_ROWS:,} rows of each dataset "
                   "(all rows when it has fewer).")
    names = list(measured)
    page.image(charts.lengths_chart(names, [measured[n]["anchor"] for n in names],
                                    [measured[n]["positive"] for n in names]),
               "Text length distributions of anchors and positives per dataset")
    rows = []
    for name in names:
        anchors, positives = measured[name]["anchor"], measured[name]["positive"]
        rows.append((name, _int(len(anchors)),
                     str(int(statistics.median(anchors))) if anchors else "-", str(_percentile(anchors, 0.9)),
                     str(int(statistics.median(positives))) if positives else "-",
                     str(_percentile(positives, 0.9))))
    page.table(("dataset", "rows measured", "anchor median", "anchor p90", "positive median", "positive p90"),
               rows, numeric=(1, 2, 3, 4, 5))


def _shards(page: Page, manifest: dict) -> None:
    datasets = built_datasets(manifest)
    page.heading("Shard sizes", "shards")
    names = list(datasets)
    sizes = [[shard["bytes"] for shard in datasets[name]["shards"]] for name in names]
    page.image(charts.shards_chart(names, sizes), "Size of every shard, per dataset")
    page.table(("dataset", "shards", "rows", "total", "smallest", "median", "largest"), [
        (name, str(len(s)), _int(datasets[name]["rows"]), _bytes(sum(s)), _bytes(min(s)),
         _bytes(int(statistics.median(s))), _bytes(max(s)))
        for name, s in zip(names, sizes) if s], numeric=(1, 2, 3, 4, 5, 6))


def _bytes(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _licence_of(name: str, entry: dict) -> licences.Licence | None:
    """The terms of a dataset: those its manifest entry names, else (a manifest written
    before entries named them) those of the registry."""
    licence_id = (entry.get("licence") or {}).get("id")
    try:
        return licences.get(licence_id or registry.get(name).licence)
    except KeyError:
        return None


def _licences(page: Page, manifest: dict) -> None:
    selection = manifest["run"].get("licences", "all")
    page.heading("Licences", "licences")
    if selection == "all":
        page.paragraph("The run built datasets of every licence (no --licences).")
    else:
        page.paragraph(f"The run built only datasets whose licence --licences {selection} accepts. "
                       "A licence that does not state whether commercial use is allowed counts as not "
                       "allowing it.")
    rows = []
    for name, entry in manifest["datasets"].items():
        licence = _licence_of(name, entry)
        if licence is None:
            rows.append((name, entry["status"], (entry.get("licence") or {}).get("id", "-"), "-", "-", "-"))
            continue
        rows.append((name, entry["status"], page.link(licence.name, licence.url), licence.commercial,
                     "yes" if licence.attribution else "no", licence.note or "-"))
    page.table(("dataset", "status", "licence", "commercial use", "attribution required", "note"), rows)
    left_out = [(name, entry["reason"]) for name, entry in manifest["datasets"].items() if entry.get("reason")]
    if left_out:
        page.subheading("Left out by the licence selection")
        page.table(("dataset", "reason"), left_out)


def _inputs(page: Page, manifest: dict) -> None:
    run = manifest["run"]
    page.heading("The run's inputs", "inputs")
    page.table(("option", "value"), [
        ("sample build", "yes" if run.get("sample") else "no"),
        ("input root", run.get("input_root") or "(the bundled samples)"),
        ("datasets requested", ", ".join(run.get("datasets_requested") or []) or "(all with input)"),
        ("strict", "yes" if run.get("strict") else "no"),
        ("licences", run.get("licences", "all")),
        ("source options", ", ".join(f"{s}.{k}={v}" for s, o in (run.get("source_options") or {}).items()
                                     for k, v in o.items()) or "-"),
        ("Beam flags", " ".join(run.get("beam_args") or []) or "-"),
        ("fingerprint", manifest.get("fingerprint", "-")),
    ], header=False)
    by_source: dict[str, list[dict]] = {}
    for item in manifest.get("inputs", []):
        by_source.setdefault(item["source"], []).append(item)
    page.table(("source", "files", "bytes"), [
        (source, str(len(items)), _bytes(sum(i["bytes"] for i in items)))
        for source, items in sorted(by_source.items())], numeric=(1, 2))
    page.details(f"Every input file ({len(manifest.get('inputs', []))})", ("file", "bytes", "SHA-256"),
                 [(i["path"], f"{i['bytes']:,}", i.get("sha256", "-")) for i in manifest.get("inputs", [])],
                 numeric=(1,))


def render(output: str) -> str:
    """The HTML report of the build in ``output`` (local, gs://, s3://).

    Raises:
        pipelines.build.BuildError: ``output`` holds no complete build.
    """
    output = output.rstrip("/")
    manifest = build.read_manifest(output)
    page = Page(f"Corpus build report: {output}")
    _summary(page, manifest)
    _counts(page, manifest)
    _sites(page, manifest)
    _verdicts(page, manifest)
    _rejected(page, manifest)
    _filters(page, manifest)
    _accounting(page, manifest)
    _lengths(page, manifest, output)
    _shards(page, manifest)
    _licences(page, manifest)
    _inputs(page, manifest)
    return page.html()


def write(output: str, to: str | None = None) -> str:
    """Render the report of ``output`` and write it to ``to`` (default ``OUT/report.html``);
    returns the path written."""
    target = to or files.join(output.rstrip("/"), REPORT_NAME)
    html = render(output)
    with FileSystems.create(target) as stream:
        stream.write(html.encode("utf-8"))
    return target
