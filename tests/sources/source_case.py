"""The test case every source's tests build on (``class TestQuoraSample(SourceCase)``).

A subclass names the source and the rows its bundled sample gives, worked out by hand:

    class TestQuoraSample(SourceCase):
        SOURCE = "quora"
        ROWS = {"quora_triplets": 4}

and inherits the checks every source must pass on its bundled sample
(``pipelines/sources/<source>/sample/``): the build matches the hand-worked counts of
``sample/expected_counts.json`` (rows, rejects and skips by reason), both accounting
equations hold, every rejected record is kept with its reason and provenance, and two
workers sharing the files out in small blocks write the same bytes, and count the same
input rows, as one.
"""
from __future__ import annotations

import json

import pytest

from pipelines.corpus import registry
from tests.helpers import read_output, run_build
from tests.sample_corpus import sample_corpus

TWO_WORKERS = ["--direct_running_mode=multi_threading", "--direct_num_workers=2", "--block_bytes=1024"]


class SourceCase:
    SOURCE: str = ""   # the module name under pipelines.sources
    ROWS: dict = {}    # rows per dataset of the bundled sample

    @pytest.fixture(scope="class")
    def source(self):
        return registry.load_source(self.SOURCE)

    @pytest.fixture(scope="class")
    def build(self):
        """The bundled sample corpus (every source, built once per test session)."""
        return read_output(sample_corpus())

    def test_rows_stated_here_are_the_hand_worked_ones(self, source):
        expected = source.sample_expected_counts()
        assert set(self.ROWS) == set(source.datasets)
        assert {dataset: expected[dataset]["rows"] for dataset in self.ROWS} == self.ROWS

    def test_sample_build_matches_its_hand_worked_counts(self, build):
        for dataset, rows in self.ROWS.items():
            entry = build.manifest["datasets"][dataset]
            assert (entry["rows"], entry["verdict"]) == (rows, "match"), (dataset, entry.get("difference"))
            assert len(build.rows[dataset]) == rows

    def test_every_record_read_and_every_row_is_accounted_for(self, build):
        for dataset in self.ROWS:
            equations = build.manifest["datasets"][dataset]["accounting"]
            assert equations["records"]["holds"] and equations["rows"]["holds"], (dataset, equations)

    def test_every_rejected_record_is_kept_with_its_reason_and_file(self, build):
        for dataset in self.ROWS:
            entry = build.manifest["datasets"][dataset]
            rejects = build.rejects[dataset]
            assert len(rejects) == entry["rejected"]["total"]
            assert all(r["dataset"] == dataset and r["reason"] and r["source_file"] for r in rejects)
            assert build.reasons(dataset) == entry["rejected"]["by_reason"]

    def test_two_workers_write_the_same_bytes(self, build, tmp_path):
        two = run_build(tmp_path / "two", sample=True, datasets=list(self.ROWS), beam_args=TWO_WORKERS)
        for dataset in self.ROWS:
            one_entry, two_entry = (b.manifest["datasets"][dataset] for b in (build, two))
            assert [s["file"] for s in two_entry["shards"]] == [s["file"] for s in one_entry["shards"]]
            for shard in one_entry["shards"]:
                assert (two.output / dataset / shard["file"]).read_bytes() == \
                    (build.output / dataset / shard["file"]).read_bytes(), (dataset, shard["file"])
            assert json.dumps(two_entry["accounting"]) == json.dumps(one_entry["accounting"])
        # Input rows are counted where the pieces are read and in the joins' tasks: the
        # same sums however the work is shared out.
        assert two.manifest["input_rows"].get(self.SOURCE) == build.manifest["input_rows"].get(self.SOURCE)
