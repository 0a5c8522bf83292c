"""The report's charts: matplotlib figures rendered to PNG bytes (Agg backend, no screen).

Every function takes plain numbers from :mod:`pipelines.report.data` and returns PNG
bytes. Colours say the same thing everywhere: the verdict colours of the count table,
one blue for anchors and one orange for positives.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

VERDICT_COLOURS = {
    "match": "#2e7d32",
    "drift": "#ef6c00",
    "mismatch": "#c62828",
    "partial input": "#6a1b9a",
    "no expected count": "#757575",
    "-": "#1565c0",
}
ANCHOR_COLOUR = "#1f77b4"
POSITIVE_COLOUR = "#ff7f0e"
DPI = 110
# Inches of figure height per bar row, so that labels never overlap.
ROW_INCHES = 0.32
# Reasons drawn one bar each in the rejects chart; the rest share one "other" bar.
REASONS_IN_CHART = 15


def verdict_colour(verdict: str) -> str:
    """The colour of ``verdict`` (grey for verdicts without one)."""
    return VERDICT_COLOURS.get(verdict, "#757575")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _height(rows: int) -> float:
    return max(2.2, 1.2 + ROW_INCHES * rows)


def _plain_log_axis(axes) -> None:
    """A logarithmic x axis labelled with plain numbers (1, 10, 1,000) instead of powers."""
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _tight_rows(axes, count: int) -> None:
    axes.set_ylim(-0.6, count - 0.4)


def counts_chart(names: list[str], rows: list[int], reference: list[int | None], verdicts: list[str],
                 reference_label: str) -> bytes:
    """Rows written against the reference count, one bar per dataset (log scale).

    Args:
        names: dataset (or site) names, top to bottom.
        rows: rows written.
        reference: the count each should have (documented or the sample's expected);
            ``None`` where there is none.
        verdicts: each one's verdict, which colours its bar.
        reference_label: what the reference count is, for the legend.
    """
    figure, axes = plt.subplots(figsize=(9, _height(len(names))))
    positions = list(range(len(names)))[::-1]
    axes.barh(positions, [max(r, 0.8) for r in rows], color=[verdict_colour(v) for v in verdicts],
              height=0.6)
    marked = [(p, r) for p, r in zip(positions, reference) if r]
    axes.scatter([r for _, r in marked], [p for p, _ in marked], marker="|", s=400, color="black",
                 linewidths=2.5, zorder=3)
    for position, count in zip(positions, rows):
        axes.annotate(f"{count:,}", (max(count, 0.8), position), xytext=(4, 0), textcoords="offset points",
                      va="center", fontsize=8)
    _plain_log_axis(axes)
    axes.set_xlim(left=0.7)
    _tight_rows(axes, len(names))
    axes.set_yticks(positions, names, fontsize=9)
    axes.set_xlabel("rows (log scale)")
    axes.grid(axis="x", alpha=0.3)
    used = sorted(set(verdicts))
    handles = [Patch(color=verdict_colour(v), label="rows written" + (f": {v}" if v != "-" else " (not judged)"))
               for v in used]
    handles.append(plt.Line2D([], [], color="black", marker="|", linestyle="none", markersize=14,
                              markeredgewidth=2.5, label=reference_label))
    axes.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)
    return _png(figure)


def rejects_chart(reasons: dict[str, int]) -> bytes:
    """Rejected records by reason over all datasets, largest first; reasons past the
    first :data:`REASONS_IN_CHART` share one bar.

    Args:
        reasons: ``{reason: count}``.
    """
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    if len(ordered) > REASONS_IN_CHART:
        rest = ordered[REASONS_IN_CHART - 1:]
        ordered = ordered[:REASONS_IN_CHART - 1] + [(f"{len(rest)} other reasons", sum(c for _, c in rest))]
    figure, axes = plt.subplots(figsize=(9, _height(len(ordered))))
    positions = list(range(len(ordered)))[::-1]
    counts = [count for _, count in ordered]
    axes.barh(positions, counts, color="#8d6e63", height=0.6)
    for position, count in zip(positions, counts):
        axes.annotate(f"{count:,}", (count, position), xytext=(4, 0), textcoords="offset points",
                      va="center", fontsize=8)
    axes.set_yticks(positions, [reason for reason, _ in ordered], fontsize=9)
    axes.set_xlabel("rejected records")
    _tight_rows(axes, len(ordered))
    axes.set_xlim(0, max(counts or [1]) * 1.15)
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def lengths_chart(names: list[str], anchors: list[list[int]], positives: list[list[int]]) -> bytes:
    """Text length distributions per dataset: box plots of anchors and positives side by side.

    Args:
        names: dataset names, top to bottom.
        anchors: per dataset, the character lengths of (a sample of) its anchors.
        positives: the same for its positives.
    """
    figure, axes = plt.subplots(figsize=(9, _height(2 * len(names)) * 0.75))
    centres = list(range(len(names)))[::-1]
    style = dict(vert=False, widths=0.32, patch_artist=True, showfliers=False,
                 medianprops=dict(color="black"))
    for values, shift, colour in ((anchors, 0.2, ANCHOR_COLOUR), (positives, -0.2, POSITIVE_COLOUR)):
        boxes = axes.boxplot([v or [1] for v in values], positions=[c + shift for c in centres], **style)
        for box in boxes["boxes"]:
            box.set_facecolor(colour)
            box.set_alpha(0.8)
    _plain_log_axis(axes)
    _tight_rows(axes, len(names))
    axes.set_yticks(centres, names, fontsize=9)
    axes.set_xlabel("characters (log scale); box: middle half, line: median, whiskers: 1.5 IQR")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(handles=[Patch(color=ANCHOR_COLOUR, label="anchor"),
                         Patch(color=POSITIVE_COLOUR, label="positive")],
                loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _png(figure)


def shards_chart(names: list[str], shard_sizes: list[list[int]]) -> bytes:
    """Every shard's size, one row of dots per dataset.

    Args:
        names: dataset names, top to bottom.
        shard_sizes: per dataset, the size in bytes of each of its shards.
    """
    figure, axes = plt.subplots(figsize=(9, _height(len(names))))
    positions = list(range(len(names)))[::-1]
    largest = max((size for sizes in shard_sizes for size in sizes), default=1)
    scale, unit = (1e6, "MB") if largest >= 1e6 else (1e3, "kB")
    for position, sizes in zip(positions, shard_sizes):
        axes.scatter([size / scale for size in sizes], [position] * len(sizes), s=28, alpha=0.7,
                     color="#00838f")
        axes.annotate(f"{len(sizes)} shard{'s' if len(sizes) != 1 else ''}", (1.0, position),
                      xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
                      va="center", fontsize=8)
    _tight_rows(axes, len(names))
    axes.set_yticks(positions, names, fontsize=9)
    axes.set_xlabel(f"shard size ({unit})")
    axes.set_xlim(0, largest / scale * 1.08)
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)
