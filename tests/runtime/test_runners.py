"""The portable runner writes the same build as the local runner; runner names and their
options are checked before anything runs.

The builds are real: the bundled sample through Beam's job API, once with the job service
embedded in this process (four datasets) and once with a job service and a worker pool in
processes of their own (every dataset), compared byte for byte with the local build.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PortableOptions, StandardOptions

from pipelines import cli
from pipelines.runtime import options as runtime_options
from tests.sample_corpus import sample_corpus

VENV_BIN = str(Path(sys.executable).parent)
STARTUP_SECONDS = 60


def _shards(output: Path) -> dict[str, bytes]:
    """Every shard and dead-letter file of a build, by path below the output folder."""
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and p.suffix in (".parquet", ".gz")}


def _assert_same_build_as_the_local_runner(output: Path, built=None) -> None:
    """``output`` holds the local build's files and counts (of the datasets ``built`` only,
    when given)."""
    local = sample_corpus()
    expected, written = _shards(local), _shards(output)
    if built:  # OUT/<dataset>/..., OUT/_rejected/<dataset>/...
        expected = {name: data for name, data in expected.items()
                    if name.split("/")[0] in built or name.split("/")[1] in built}
    assert written.keys() == expected.keys()
    assert [name for name in expected if written[name] != expected[name]] == []
    local_datasets = json.loads((local / "manifest.json").read_text())["datasets"]
    datasets = json.loads((output / "manifest.json").read_text())["datasets"]
    assert datasets.keys() == local_datasets.keys()
    for dataset, entry in datasets.items():
        if built and dataset not in built:
            continue
        records, rows = entry["accounting"]["records"], entry["accounting"]["rows"]
        assert records["holds"] in (True, None) and rows["holds"] is True, dataset
        # The counts come from the pipeline's metrics: non-zero only if they came back.
        assert rows["from_rules"] > 0 and (records["holds"] is None or records["read"] > 0), dataset
        assert entry["accounting"] == local_datasets[dataset]["accounting"], dataset


# Datasets of the embedded job service's build: files read whole, in ranges and from a .7z,
# hash joins and Beam joins. (Every dataset: the job service with a worker pool, below.)
EMBEDDED = ("stackexchange_title_body", "stackexchange_duplicate_questions", "msmarco_triplets", "quora_triplets")


def test_the_portable_runner_on_an_embedded_job_service_writes_the_local_build(tmp_path):
    """No --environment_type: the SDK worker runs by LOOPBACK, not in Docker."""
    status = cli.run(["build", "--sample", "--output", str(tmp_path / "out"), "--datasets", ",".join(EMBEDDED),
                      "--runner", "PortableRunner", "--job_endpoint", "embed"])
    assert status == 0
    _assert_same_build_as_the_local_runner(tmp_path / "out", EMBEDDED)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _start(module: str, *args: str) -> subprocess.Popen:
    # A worker pool starts its SDK workers as a bare `python`: this environment's, first on PATH.
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.Popen([sys.executable, "-m", module, *args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited: {process.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("localhost", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{process.args} did not listen on port {port} in {STARTUP_SECONDS} s")


def _stop(process: subprocess.Popen) -> None:
    # Each was started in a session of its own: its group is it and the workers it started.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    process.stderr.close()


@pytest.fixture
def job_service_and_worker_pool(request):
    """``(job endpoint, worker pool address)``, each served by a process of its own."""
    job_port, pool_port = _free_port(), _free_port()
    job_service = _start("apache_beam.runners.portability.local_job_service_main", "--port", str(job_port))
    request.addfinalizer(lambda: _stop(job_service))
    worker_pool = _start("apache_beam.runners.worker.worker_pool_main", "--service_port", str(pool_port))
    request.addfinalizer(lambda: _stop(worker_pool))
    _wait_for(job_port, job_service)
    _wait_for(pool_port, worker_pool)
    return f"localhost:{job_port}", f"localhost:{pool_port}"


def test_a_job_service_and_an_external_worker_pool_write_the_local_build(tmp_path, job_service_and_worker_pool):
    job_endpoint, worker_pool = job_service_and_worker_pool
    status = cli.run(["build", "--sample", "--output", str(tmp_path / "out"),
                      "--runner", "PortableRunner", "--job_endpoint", job_endpoint,
                      "--environment_type", "EXTERNAL", "--environment_config", worker_pool])
    assert status == 0
    _assert_same_build_as_the_local_runner(tmp_path / "out")


# A runner named in full whose module declares options, and one that needs a missing package.
RUNNER_MODULES = {
    "nightly_runner.py": """
        from apache_beam.options.pipeline_options import PipelineOptions
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        class NightlyOptions(PipelineOptions):
            @classmethod
            def _add_argparse_args(cls, parser):
                parser.add_argument("--nightly_pool")

        class NightlyRunner(FnApiRunner):
            pass
    """,
    "needs_extra_runner.py": """
        import corpus_test_absent_dependency

        class NeedsExtraRunner:
            pass
    """,
}


@pytest.fixture
def runner_modules(tmp_path) -> dict:
    """The environment of a process that can import :data:`RUNNER_MODULES`."""
    folder = tmp_path / "runners"
    folder.mkdir()
    for name, text in RUNNER_MODULES.items():
        (folder / name).write_text(textwrap.dedent(text))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


REFUSED = {
    "unknown": (["--runner", "Foo"], "unknown runner 'Foo'"),
    "typo": (["--runner", "Dataflw"], "unknown runner 'Dataflw' (did you mean DataflowRunner?)"),
    "dask": (["--runner", "DaskRunner", "--dask_client_address", "localhost:8786"],
             "DaskRunner cannot run this build: in Beam 2.77 it reports no metrics"),
    "missing package": (["--runner", "needs_extra_runner.NeedsExtraRunner"],
                        "module 'corpus_test_absent_dependency' is not installed"),
    "mistyped flag": (["--runer", "PortableRunner"], "unknown option --runer:"),
}


@pytest.mark.parametrize("flags, message", REFUSED.values(), ids=REFUSED.keys())
def test_a_runner_or_flag_that_cannot_run_is_refused_in_one_line(tmp_path, runner_modules, flags, message):
    done = subprocess.run([sys.executable, "-m", "pipelines", "build", "--sample",
                           "--output", str(tmp_path / "out"), *flags],
                          capture_output=True, text=True, timeout=120, env=runner_modules, check=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("corpus build: ") and message in done.stderr
    if message.startswith("unknown runner"):
        for runner in ("DirectRunner", "PortableRunner", "DataflowRunner", "FlinkRunner",
                       "SparkRunner", "PrismRunner"):
            assert runner in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_options_of_a_runner_not_yet_imported_are_known_once_it_is_named(runner_modules):
    script = """
        import json, sys
        from pipelines.runtime import options
        modules = ["apache_beam.runners.portability.flink_runner", "nightly_runner"]
        imported = [m for m in modules if m in sys.modules]
        print(json.dumps({
            "imported": imported,
            "flink": options.unknown_flags(["--runner", "FlinkRunner", "--flink_master", "localhost:8081",
                                            "--flink_version", "1.19", "--parallelism", "2"]),
            "unnamed": options.unknown_flags(["--nightly_pool", "2"]),
            "named": options.unknown_flags(["--runner", "nightly_runner.NightlyRunner", "--nightly_pool", "2"]),
        }))
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=120, env=runner_modules, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"imported": [], "flink": [], "unnamed": ["--nightly_pool"], "named": []}


RUNNER_FLAGS = {
    "DirectRunner": ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
    "PortableRunner": ["--job_endpoint", "localhost:8099", "--environment_type", "EXTERNAL",
                       "--environment_config", "localhost:50000", "--job_server_timeout", "60"],
    "DataflowRunner": ["--project", "p", "--region", "europe-west1", "--temp_location", "gs://b/tmp",
                       "--staging_location", "gs://b/staging", "--setup_file", "./setup.py",
                       "--machine_type", "n2-standard-4", "--max_num_workers", "32"],
    "FlinkRunner": ["--flink_master", "localhost:8081", "--flink_version", "1.19", "--parallelism", "2",
                    "--flink_submit_uber_jar"],
    "SparkRunner": ["--spark_master_url", "spark://localhost:7077", "--spark_version", "3",
                    "--spark_rest_url", "http://localhost:6066"],
    "PrismRunner": ["--prism_location", "/opt/prism", "--prism_log_level", "info"],
}


@pytest.mark.parametrize("named", [True, False], ids=["named", "not named"])
@pytest.mark.parametrize("runner", RUNNER_FLAGS)
def test_the_flags_of_every_runner_are_known_whether_or_not_it_is_named(runner, named):
    flags = RUNNER_FLAGS[runner] + (["--runner", runner] if named else [])
    assert runtime_options.unknown_flags(flags) == []


@pytest.mark.parametrize("flags, environment_type", [
    (["--job_endpoint", "embed"], "LOOPBACK"),
    (["--job_endpoint", "localhost:8099"], "LOOPBACK"),
    (["--job_endpoint", "127.0.0.1:8099"], "LOOPBACK"),
    (["--job_endpoint", "[::1]:8099"], "LOOPBACK"),
    (["--job_endpoint", "jobs.example.com:8099"], None),  # remote: Beam's default, Docker
    (["--job_endpoint", "embed", "--environment_type", "DOCKER"], "DOCKER"),
    (["--job_endpoint", "localhost:8099", "--environment_type", "EXTERNAL",
      "--environment_config", "localhost:50000"], "EXTERNAL"),
])
def test_a_job_service_on_this_machine_gets_a_loopback_worker(flags, environment_type):
    options = runtime_options.pipeline_options(["--runner", "PortableRunner", *flags])
    assert options.view_as(PortableOptions).environment_type == environment_type


@pytest.mark.parametrize("name, runner", [
    (None, "FnApiRunner"), ("DirectRunner", "FnApiRunner"), ("direct", "FnApiRunner"),
    ("portable", "PortableRunner"), ("FlinkRunner", "FlinkRunner"),
])
def test_a_runner_name_is_resolved_as_beam_resolves_it(name, runner):
    flags = ["--runner", name] if name else []
    assert runtime_options.pipeline_options(flags).view_as(StandardOptions).runner == runner
