"""Beam worker settings reach the launching process and Beam's worker processes."""
import os
import subprocess
import sys

import apache_beam as beam
from apache_beam.runners.worker import statesampler
from apache_beam.testing.util import assert_that

from pipelines import build
from pipelines.runtime import worker_settings
from pipelines.engine.join import id_hash_one


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


_EXIT_SCRIPT = """
import atexit, sys
atexit.register(lambda: print("earlier exit handler ran", flush=True))
from pipelines.runtime import worker_settings
worker_settings.exit_without_teardown()
print("work done", flush=True)
if sys.argv[1] == "fail":
    raise RuntimeError("the harness failed")
"""


def test_a_finished_worker_skips_teardown_and_a_failed_one_keeps_its_status():
    done = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, "ok"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["work done"]  # the earlier exit handler was skipped
    failed = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, "fail"], capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 1
    assert "RuntimeError: the harness failed" in failed.stderr
    assert "earlier exit handler ran" in failed.stdout  # the normal exit ran


def test_only_worker_processes_of_local_builds_exit_early(monkeypatch):
    monkeypatch.setenv(worker_settings.LOCAL_BUILD_ENV, "1")
    assert not worker_settings.is_local_worker_process()  # this process is no SDK worker
    build.pipeline_options(["--runner=DataflowRunner"])
    monkeypatch.delenv(worker_settings.LOCAL_BUILD_ENV)
    build.pipeline_options(["--runner=DataflowRunner"])
    assert worker_settings.LOCAL_BUILD_ENV not in os.environ
    build.pipeline_options([])
    assert os.environ[worker_settings.LOCAL_BUILD_ENV] == "1"
