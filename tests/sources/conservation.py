"""Checks of the conservation equations (``pipelines.corpus.accounting``) on a build."""
from __future__ import annotations

from tests.helpers import run_build


def assert_conserved(result, datasets=None) -> None:
    """Both equations hold for every dataset of ``result`` (or only ``datasets``): every
    record read ended as paired, rejected or skipped, and every row from the pair rules
    was written or dropped.

    Args:
        result: a :class:`tests.helpers.BuildResult`.
        datasets: the dataset ids to check; all built datasets when ``None``.
    """
    entries = result.manifest["datasets"]
    for dataset in datasets or [d for d, e in entries.items() if e["status"] == "built"]:
        equations = entries[dataset]["accounting"]
        assert equations["records"]["holds"] is True, (dataset, equations)
        assert equations["rows"]["holds"] is True, (dataset, equations)


def run_conserved_build(output, **kwargs):
    """:func:`tests.helpers.run_build`, then :func:`assert_conserved` on every dataset it
    built: each source test's builds (sample and bad input alike) check both equations."""
    result = run_build(output, **kwargs)
    assert_conserved(result)
    return result
