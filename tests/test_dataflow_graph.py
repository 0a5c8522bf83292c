"""The Dataflow job graph, built offline: no credentials, nothing submitted.

``--dry_run`` makes the DataflowRunner translate the whole pipeline into the job it would
submit and stop there, so a graph that Dataflow would reject fails here, before anyone pays
for a cluster.
"""
import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.corpus import registry
from pipelines import build

REPO = Path(__file__).resolve().parent.parent


def _construct(options: PipelineOptions):
    request = build.BuildRequest(output="gs://corpus-bucket/out", sample=True)
    planned, _status = build.plan_sources(request)
    pipeline = beam.Pipeline(options=options)
    build.construct_pipeline(pipeline, request, planned)
    return pipeline, planned


def _top_level_names(proto) -> list[str]:
    (root,) = proto.root_transform_ids
    return [proto.components.transforms[t].unique_name
            for t in proto.components.transforms[root].subtransforms]


@pytest.fixture(scope="module")
def dataflow_job(monkeypatch_module=None):
    os.environ.setdefault("NO_GCE_CHECK", "true")
    os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")
    options = PipelineOptions([
        "--runner=DataflowRunner", "--dry_run=True", "--no_auth",
        "--project=demo-project", "--region=europe-west1",
        "--temp_location=gs://corpus-bucket/tmp", f"--setup_file={REPO / 'setup.py'}",
    ])
    pipeline, planned = _construct(options)
    pipeline.run()
    return pipeline.runner.proto_pipeline, planned


def test_every_dataset_has_its_named_steps(dataflow_job):
    proto, planned = dataflow_job
    names = set(_top_level_names(proto))
    built = [d for item in planned for d in item.ctx.datasets]
    assert sorted(built) == sorted(s.id for s in registry.DATASETS)
    for dataset in built:
        for step in ("Normalize", "Write", "WriteRejected", "SaveSummary"):
            assert f"{dataset}/{step}" in names, f"{dataset}/{step} missing from the job graph"


def test_the_translated_graph_is_well_formed(dataflow_job):
    proto, _ = dataflow_job
    components = proto.components
    produced = {pc for t in components.transforms.values() for pc in t.outputs.values()}
    for transform in components.transforms.values():
        for pcoll in transform.inputs.values():
            assert pcoll in components.pcollections
            assert pcoll in produced, f"{transform.unique_name} reads a PCollection nobody writes"
    for pcoll in components.pcollections.values():
        assert pcoll.coder_id in components.coders
    leaves = [t for t in components.transforms.values() if not t.subtransforms]
    assert all(t.environment_id or not t.spec.urn.startswith("beam:transform:pardo")
               for t in leaves)


def test_step_names_are_stable_between_constructions(dataflow_job):
    proto, _ = dataflow_job
    again, _ = _construct(PipelineOptions([]))
    assert _top_level_names(again.to_runner_api()) == _top_level_names(proto)
