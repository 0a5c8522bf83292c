"""Run real builds in tests and read back what they wrote."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from pipelines import build
from pipelines.engine.shards import ShardingConfig

# In-process runner: never tries to download a runner binary, deterministic and fast.
TEST_BEAM_ARGS = ["--runner=FnApiRunner"]


@dataclass
class BuildResult:
    output: Path
    manifest: dict
    rows: dict        # dataset id -> list of row dicts, in shard order
    rejects: dict     # dataset id -> list of reject dicts

    def pairs(self, dataset: str) -> set:
        """(anchor, positive, negative) of every row of ``dataset``."""
        return {(r["anchor"], r["positive"], r["negative"]) for r in self.rows.get(dataset, [])}

    def reasons(self, dataset: str) -> dict:
        counts: dict = {}
        for reject in self.rejects.get(dataset, []):
            counts[reject["reason"]] = counts.get(reject["reason"], 0) + 1
        return dict(sorted(counts.items()))


def read_output(output: Path) -> BuildResult:
    manifest = json.loads((output / "manifest.json").read_text())
    rows, rejects = {}, {}
    for dataset_id, entry in manifest["datasets"].items():
        if entry["status"] != "built":
            continue
        rows[dataset_id] = [
            row for shard in entry["shards"]
            for row in pq.read_table(output / dataset_id / shard["file"], use_threads=False).to_pylist()]
        rejects[dataset_id] = [
            json.loads(line) for name in entry["rejected"]["files"]
            for line in gzip.open(output / name, "rt", encoding="utf-8")]
    return BuildResult(output, manifest, rows, rejects)


def run_build(output: Path, *, input_root: Path | None = None, datasets=(), sample=False,
              source_options=None, strict=False, sharding: ShardingConfig | None = None,
              beam_args=None, **options) -> BuildResult:
    """Run ``corpus build`` in-process and read back its output; ``options`` are further
    fields of the request (``licences``, ``decontaminate``, ``dedup``, ``force``)."""
    request = build.BuildRequest(
        output=str(output), input_root=str(input_root) if input_root else None,
        datasets=tuple(datasets), sample=sample, strict=strict,
        source_options=source_options or {}, sharding=sharding or ShardingConfig(), **options)
    build.run_build(request, list(beam_args or TEST_BEAM_ARGS))
    return read_output(output)
