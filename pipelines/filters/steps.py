"""The filters as steps of a build: between each dataset's normalisation and its shards.

``--decontaminate`` adds ``<dataset>/Decontaminate`` to every dataset (the evaluation
index, written to ``OUT/_work`` when the build is planned, travels as a side input);
``--dedup exact`` then sends every dataset's rows through one ``Dedup`` step (copies of a
row meet whatever dataset they are in), and ``--dedup near`` adds ``<dataset>/NearDedup``.
"""
from __future__ import annotations

import apache_beam as beam

from pipelines.corpus.rejects import REJECTED

# Under the build's OUT/_work: the evaluation index the build was planned with.
EVAL_INDEX = "eval_index.bin"


def add_filters(pipeline: beam.Pipeline, rows_by_dataset: dict, *, eval_index: str | None,
                dedup: str) -> tuple[dict, list]:
    """Add the filters asked for to ``pipeline``.

    Args:
        rows_by_dataset: per dataset, its normalised rows (dicts or Arrow tables).
        eval_index: path of the serialised evaluation index, or ``None`` (no decontamination).
        dedup: ``""``, ``"exact"`` or ``"near"``.
    Returns:
        Per dataset the rows left, and the PCollections of the rows dropped (rejected records).
    """
    rows = dict(rows_by_dataset)
    rejects = []
    if eval_index:
        from pipelines.filters.decontaminate import Decontaminate, index_side_input

        # The index is a file the workers read: it stays out of the job's description.
        index = index_side_input(pipeline, eval_index)
        for dataset_id, pcoll in rows.items():
            result = pcoll | f"{dataset_id}/Decontaminate" >> Decontaminate(dataset_id, index)
            rows[dataset_id] = result.rows
            rejects.append(result[REJECTED])
    if dedup:
        from pipelines.filters.dedup import DropDuplicates

        result = rows | "Dedup" >> DropDuplicates(sorted(rows))
        rows = dict(result.rows)
        rejects.append(result.rejects)
    if dedup == "near":
        from pipelines.filters.near_dedup import DropNearDuplicates

        for dataset_id, pcoll in list(rows.items()):
            result = pcoll | f"{dataset_id}/NearDedup" >> DropNearDuplicates(dataset_id)
            rows[dataset_id] = result.rows
            rejects.append(result.rejects)
    return rows, rejects
