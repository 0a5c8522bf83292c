"""Count verification: measured counts against documented (or sample) counts.

Verdicts, per dataset (and per subset where the dataset has them):

``match``            within the dataset's tolerance of the expected count
``drift``            outside it, for a source whose upstream release keeps changing (warning)
``mismatch``         outside it, for a closed release (failure)
``partial input``    the input is not the source's published release
                     (:mod:`pipelines.corpus.release`); only what can be compared is: the
                     StackExchange site groups, against the reference mix
``not implemented``  the dataset has no reader yet
``not selected``     the dataset was not part of this run

A ``--sample`` run compares with the bundled sample's ``expected_counts.json`` exactly
(rows, subsets and rejects by reason) and says so.
"""
from __future__ import annotations

import posixpath

import pyarrow.parquet as pq

from pipelines.engine import files

FAILING_VERDICTS = frozenset({"mismatch"})
PARTIAL_INPUT = "partial input"


def judge(measured: int, expected: int | None, tolerance: float, drifts: bool) -> dict:
    """Compare ``measured`` with ``expected``.

    Returns a dict with ``difference`` (measured - expected), ``relative_difference``
    (difference / expected) and ``verdict`` (``match``, ``drift`` or ``mismatch``).
    """
    if expected is None:
        return {"difference": None, "relative_difference": None, "verdict": "no expected count"}
    difference = measured - expected
    relative = difference / expected if expected else (0.0 if measured == 0 else float("inf"))
    if abs(relative) <= tolerance + 1e-12:
        verdict = "match"
    else:
        verdict = "drift" if drifts else "mismatch"
    return {"difference": difference, "relative_difference": relative, "verdict": verdict}


def judge_partial_input(groups: dict | None, not_comparable: tuple[str, ...] = ()) -> dict:
    """The count check of a dataset built from part of its source's release.

    Its documented total describes the whole release, so it is not compared. Site groups
    with a reference count (``groups`` of the manifest entry, each with ``rows`` and
    ``documented``) are, but those of ``not_comparable`` (the pool of small sites):
    ``expected`` is the sum of their reference counts, ``difference`` that of their rows
    minus it. Without such groups nothing is compared.
    """
    compared = {name: g for name, g in (groups or {}).items()
                if g.get("documented") is not None and name not in not_comparable}
    result = {"expected": None, "difference": None, "relative_difference": None, "verdict": PARTIAL_INPUT}
    if compared:
        expected = sum(g["documented"] for g in compared.values())
        difference = sum(g["rows"] for g in compared.values()) - expected
        result.update(expected=expected, difference=difference,
                      relative_difference=difference / expected if expected else 0.0)
    left_out = sorted(set(groups or {}) - set(compared))
    if left_out and compared:
        result["groups_not_compared"] = left_out
    return result


def judge_sample(measured: dict, expected: dict) -> dict:
    """Exact comparison of a sample run with the sample's hand-worked counts.

    Args:
        measured: ``{"rows": n, "subsets": {..}, "rejected": {reason: n}, "skipped": {reason: n}}``
            (``subsets`` left out when the build's filters dropped rows).
        expected: the same shape, from ``expected_counts.json`` (``subsets``, ``rejected`` and
            ``skipped`` are compared when the file gives them).
    """
    problems = []
    if measured["rows"] != expected["rows"]:
        problems.append(f"rows {measured['rows']} != expected {expected['rows']}")
    for counts in ("subsets", "rejected", "skipped"):
        # A filtered build does not count its drops per subset: ``measured`` has none then.
        if counts in expected and counts in measured and measured[counts] != expected[counts]:
            problems.append(f"{counts} {measured.get(counts)} != expected {expected[counts]}")
    verdict = "match" if not problems else "mismatch"
    difference = measured["rows"] - expected["rows"]
    return {"difference": difference,
            "relative_difference": difference / expected["rows"] if expected["rows"] else 0.0,
            "verdict": verdict, "problems": problems}


def _fmt_int(value) -> str:
    return "-" if value is None else f"{value:,}"


def _fmt_rel(value) -> str:
    return "-" if value is None else f"{value:+.2%}"


def format_table(manifest: dict) -> str:
    """The count table people read at the end of a build and from ``corpus verify``."""
    sample = manifest["run"].get("sample", False)
    # A sample run has one count to compare with; a full run shows the documented total
    # and, beside it, the count the rows are compared with (they differ for a partial input).
    counts = ("expected(sample)",) if sample else ("documented", "expected")
    header = ("dataset", "rows", *counts, "diff", "rel", "tol", "verdict", "rejected", "accounted",
              "licence", "commercial")
    lines = [header]
    # A dataset the licence selection left out says why on a line of its own under its row:
    # as a column the reason would make every row twice as wide.
    reasons = {}
    for dataset_id, entry in manifest["datasets"].items():
        licence = entry.get("licence") or {}
        if entry.get("reason"):
            reasons[len(lines)] = entry["reason"]
        lines.append((
            dataset_id,
            _fmt_int(entry.get("rows")),
            *((_fmt_int(entry.get("expected")),) if sample
              else (_fmt_int(entry.get("documented")), _fmt_int(entry.get("expected")))),
            _fmt_int(entry.get("difference")),
            _fmt_rel(entry.get("relative_difference")),
            "-" if entry.get("tolerance") is None else f"{entry['tolerance']:.0%}",
            entry["verdict"],
            _fmt_int(entry.get("rejected", {}).get("total")) if entry.get("rejected") else "-",
            _accounted(entry.get("accounting")),
            licence.get("id", "-"),
            licence.get("commercial", "-"),
        ))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    left = (0, header.index("verdict"), header.index("licence"), header.index("commercial"))
    out = []
    for n, row in enumerate(lines):
        out.append("  ".join(str(cell).ljust(widths[i]) if i in left else str(cell).rjust(widths[i])
                             for i, cell in enumerate(row)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
        if n in reasons:
            out.append(f"    reason: {reasons[n]}")
    if sample:
        out.append("This is a --sample run: counts are checked against the bundled sample's "
                   "hand-worked expected counts, not the documented totals.")
    elif any(e["verdict"] == PARTIAL_INPUT for e in manifest["datasets"].values()):
        out.append("documented: the model card's total; expected: what the rows are compared with.")
        out.append(f"A {PARTIAL_INPUT} is compared per StackExchange site group (expected: the "
                   "groups' reference counts); other datasets of a partial input have none (-).")
    by_note: dict[str, list[str]] = {}
    for dataset_id, entry in manifest["datasets"].items():
        if entry["status"] == "built":
            for reason in (entry.get("input") or {}).get("reasons", []):
                by_note.setdefault(f"{PARTIAL_INPUT}: {reason}", []).append(dataset_id)
            if entry.get("groups_not_compared"):
                by_note.setdefault("site groups not in expected (no reference count, or the pool of "
                                   "small sites, whose reference is the whole release's): "
                                   + ", ".join(entry["groups_not_compared"]), []).append(dataset_id)
            for note in entry.get("notes", []):
                by_note.setdefault(note, []).append(dataset_id)
            if entry.get("filtered"):
                before = entry["filtered"]["rows_before"]
                dropped = entry["filtered"]["dropped"]
                by_note.setdefault(
                    f"{sum(dropped.values()):,} of {before:,} rows "
                    f"({sum(dropped.values()) / before:.1%}) dropped by the build's filters ("
                    + ", ".join(f"{reason} {n:,}" for reason, n in dropped.items())
                    + "); the verdict judges the rows before them", []).append(dataset_id)
    notes = [f"  {', '.join(ids)}: {note}" for note, ids in by_note.items()]
    for dataset_id, entry in manifest["datasets"].items():
        for problem in entry.get("problems", []):
            notes.append(f"  {dataset_id}: {problem}")
    if notes:
        out.append("Notes:")
        out.extend(notes)
    lines_of_accounting = accounting_lines(manifest)
    if lines_of_accounting:
        out.append("Accounting (records: read = paired + rejected + skipped; rows: from rules = written + dropped):")
        out.extend(lines_of_accounting)
    for source, tables in manifest.get("input_rows", {}).items():
        out.append(f"Input rows of {source} (taken into a record, or skipped by reason):")
        out.extend(f"  {table}: {entry['taken']:,} taken, {sum(entry['skipped'].values()):,} skipped"
                   + (f" ({', '.join(f'{r} {n:,}' for r, n in sorted(entry['skipped'].items()))})"
                      if entry["skipped"] else "")
                   for table, entry in tables.items())
    card = manifest.get("card")
    if card:
        out.append(f"Model card: {card['explanation']}.")
    selection = manifest["run"].get("licences", "all")
    if selection != "all":
        out.append(f"Licences: --licences {selection}; a licence whose commercial use is unknown "
                   "counts as not allowing it.")
    totals = manifest.get("totals")
    if totals:
        out.append(f"Total rows written: {totals['rows']:,}; rejected: {totals['rejected']:,}; "
                   f"verdicts: {', '.join(f'{k} {v}' for k, v in sorted(totals['verdicts'].items()))}.")
    return "\n".join(out)


def _accounted(equations: dict | None) -> str:
    if not equations:
        return "-"
    if equations["rows"]["holds"] is False or equations["records"]["holds"] is False:
        return "NO"
    return "yes" if equations["records"]["holds"] else "rows only"


def accounting_lines(manifest: dict) -> list[str]:
    """One line per built dataset with both conservation equations and their check marks."""
    out = []
    for dataset_id, entry in manifest["datasets"].items():
        equations = entry.get("accounting")
        if not equations:
            continue
        records, rows = equations["records"], equations["rows"]
        skipped = sum(records["skipped"].values())
        if records["holds"] is None:
            record_text = "records not counted by the source"
        else:
            record_text = (f"read {records['read']:,} = paired {records['paired']:,} + rejected "
                           f"{records['rejected']:,} + skipped {skipped:,} "
                           f"{'holds' if records['holds'] else 'DOES NOT HOLD'}")
        row_text = (f"rows {rows['from_rules']:,} = written {rows['written']:,} + dropped "
                    f"{rows['dropped']:,} {'holds' if rows['holds'] else 'DOES NOT HOLD'}")
        out.append(f"  {dataset_id}: {record_text}; {row_text}")
    return out


def conservation_failures(manifest: dict) -> list[str]:
    """Datasets whose records or rows equation does not hold."""
    return [dataset_id for dataset_id, entry in manifest["datasets"].items()
            if entry.get("accounting") and (entry["accounting"]["rows"]["holds"] is False
                                            or entry["accounting"]["records"]["holds"] is False)]


def recount_shards(output: str, manifest: dict) -> list[str]:
    """Re-read every shard the manifest lists and compare row and subset counts.

    Returns the list of problems found (empty when the output is intact).
    """
    problems = []
    for dataset_id, entry in manifest["datasets"].items():
        if entry["status"] != "built":
            continue
        total, subsets = 0, {}
        for shard in entry["shards"]:
            path = files.join(output, dataset_id, shard["file"])
            try:
                with files.open_raw(path) as stream:
                    # Without pyarrow's thread pool: with it, pyarrow 25 makes a short-lived
                    # process abort at exit about half the time ("terminate called without
                    # an active exception").
                    table = pq.read_table(stream, columns=["subset"], use_threads=False)
            except Exception as exc:  # a missing or corrupt shard is reported, not raised
                problems.append(f"{dataset_id}: cannot read {posixpath.basename(path)} ({exc})")
                continue
            if table.num_rows != shard["rows"]:
                problems.append(f"{dataset_id}: {shard['file']} has {table.num_rows} rows, "
                                f"manifest says {shard['rows']}")
            total += table.num_rows
            for subset in table.column("subset").to_pylist():
                subsets[subset] = subsets.get(subset, 0) + 1
        if total != entry["rows"]:
            problems.append(f"{dataset_id}: shards hold {total} rows, manifest says {entry['rows']}")
        listed = {name: info["rows"] for name, info in entry.get("subsets", {}).items()}
        if listed and listed != dict(sorted(subsets.items())):
            problems.append(f"{dataset_id}: per-subset counts in the shards differ from the manifest")
    return problems
