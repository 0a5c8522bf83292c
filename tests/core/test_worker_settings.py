"""Beam worker settings reach the launching process and Beam's worker processes."""
import os

import apache_beam as beam
from apache_beam.runners.worker import statesampler
from apache_beam.testing.util import assert_that

from pipelines.core import build, worker_settings
from pipelines.core.exchange import id_hash_one


def test_new_state_samplers_use_the_short_period():
    assert worker_settings.apply()
    sampler = statesampler.StateSampler("stage", None)
    assert sampler.sampling_period_ms == worker_settings.SAMPLING_PERIOD_MS


def test_worker_processes_running_the_package_steps_have_the_setting():
    """A fresh worker process of multi_processing mode has Beam's default (200 ms) until it
    imports the package, which it does to unpickle a step of the package (``id_hash_one``
    here). The function reading the period is pickled by value and refers to nothing of the
    package, so that only the package's own step brings the package in."""
    launcher, expected = os.getpid(), worker_settings.SAMPLING_PERIOD_MS
    options = build.pipeline_options(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    period_in_worker = lambda _: (__import__("os").getpid(), __import__(  # noqa: E731
        "apache_beam.runners.worker.statesampler", fromlist=["StateSampler"]
    ).StateSampler.__init__.__defaults__[-1])

    def check(results):
        assert results, "no element came back"
        for pid, period in results:
            assert pid != launcher, "the element was processed in the launching process"
            assert period == expected

    with beam.Pipeline(options=options) as pipeline:
        assert_that(pipeline | beam.Create([1, 2, 3]) | beam.Map(id_hash_one) | beam.Map(period_in_worker),
                    check)
