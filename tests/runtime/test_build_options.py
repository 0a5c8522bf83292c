"""The build's Beam options make each view once and behave as Beam's own options."""
import copy
import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions, TypeOptions
from apache_beam.testing.util import assert_that, equal_to

from pipelines import build


def test_a_view_is_made_once_and_shares_the_options_values():
    options = build.pipeline_options(["--direct_num_workers=2"])
    standard = options.view_as(StandardOptions)
    assert options.view_as(StandardOptions) is standard
    assert standard.runner == build.LOCAL_RUNNER
    standard.runner = "DataflowRunner"
    assert options.get_all_options()["runner"] == "DataflowRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2


def test_copies_have_views_of_their_own():
    options = build.pipeline_options([])
    options.view_as(TypeOptions)
    for copied in (copy.deepcopy(options), pickle.loads(pickle.dumps(options))):
        assert isinstance(copied, build.BuildOptions)
        copied.view_as(StandardOptions).runner = "DataflowRunner"
        assert options.view_as(StandardOptions).runner == build.LOCAL_RUNNER
        assert copied.get_all_options()["runner"] == "DataflowRunner"


def test_a_pipeline_with_the_build_options_type_checks_and_runs():
    options = build.pipeline_options(["--pipeline_type_check"])
    with beam.Pipeline(options=options) as pipeline:
        doubled = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x).with_output_types(int)
        assert_that(doubled, equal_to([2, 4, 6]))
