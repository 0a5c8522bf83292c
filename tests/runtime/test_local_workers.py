"""Worker processes of local multi-process builds, forked from the launching process.

Forking needs a process without other Python threads, which a test process full of
finished pipelines is not: the pipelines run in a fresh interpreter each.
"""
import json
import subprocess
import sys
import textwrap

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.runtime import local_workers
from pipelines.build import LOCAL_RUNNER

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are Linux-only")

_PIPELINE = textwrap.dedent("""
    import json, os, sys
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from pipelines.runtime import local_workers

    forked, workers, out, fail = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "fail"

    def where(n):
        if fail:
            raise ValueError("a step that fails")
        return n, os.getpid(), local_workers.in_forked_worker()

    options = PipelineOptions(["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"])
    with local_workers.ForkedWorkers(forked) as pool:
        pids = list(pool.pids)
        try:
            with beam.Pipeline(runner=pool.runner(), options=options) as p:
                (p | beam.Create(range(200)) | beam.Reshuffle() | beam.Map(where)
                 | beam.combiners.ToList() | beam.Map(lambda seen: open(out, "w").write(json.dumps(seen))))
            status = "ok"
        except Exception as exc:
            status = type(exc).__name__
    left = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            left.append(pid)
        except ProcessLookupError:
            pass
    print(json.dumps({"pids": pids, "status": status, "left": left}))
""")


def _run(tmp_path, forked: int, workers: int, fail: bool = False):
    out = tmp_path / "seen.json"
    done = subprocess.run([sys.executable, "-c", _PIPELINE, str(forked), str(workers), str(out),
                           "fail" if fail else "pass"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    seen = json.loads(out.read_text()) if out.exists() else []
    result["stderr"] = done.stderr
    return result, seen


def test_the_runner_runs_its_steps_in_the_forked_workers(tmp_path):
    result, seen = _run(tmp_path, forked=2, workers=2)
    assert result["status"] == "ok" and result["left"] == []
    assert sorted(n for n, _pid, _forked in seen) == list(range(200))
    assert all(forked for _n, _pid, forked in seen)
    assert {pid for _n, pid, _forked in seen} <= set(result["pids"])
    # Beam's warning about a missing main session does not apply to a forked worker.
    assert "semi_persistent_directory" not in result["stderr"]


def test_workers_beyond_the_forked_ones_are_started_by_beam(tmp_path):
    result, seen = _run(tmp_path, forked=1, workers=2)
    assert result["status"] == "ok" and result["left"] == []
    assert sorted(n for n, _pid, _forked in seen) == list(range(200))
    # Every element ran in a worker: the forked one or the one Beam started itself.
    assert {pid for _n, pid, forked in seen if forked} <= set(result["pids"])


def test_unclaimed_workers_exit_with_the_build(tmp_path):
    result, seen = _run(tmp_path, forked=3, workers=2)
    assert result["status"] == "ok" and result["left"] == []
    assert len({pid for _n, pid, _forked in seen}) <= 2


def test_a_failing_step_fails_the_run_and_leaves_no_worker_behind(tmp_path):
    result, seen = _run(tmp_path, forked=2, workers=2, fail=True)
    assert result["status"] != "ok" and result["left"] == [] and seen == []


@pytest.mark.parametrize("args, threads, expected", [
    (["--direct_running_mode=multi_processing", "--direct_num_workers=2"], 1, 2),
    (["--direct_running_mode=multi_processing", "--direct_num_workers=1"], 1, 0),
    (["--direct_running_mode=in_memory", "--direct_num_workers=1"], 1, 0),
    (["--direct_running_mode=multi_threading", "--direct_num_workers=2"], 1, 0),
    (["--direct_running_mode=multi_processing", "--direct_num_workers=2"], 2, 0),
])
def test_workers_are_forked_only_for_local_multi_process_builds_without_threads(args, threads, expected,
                                                                             monkeypatch):
    monkeypatch.setattr(local_workers.threading, "active_count", lambda: threads)
    options = PipelineOptions([f"--runner={LOCAL_RUNNER}", *args])
    assert local_workers.workers_to_fork(options, LOCAL_RUNNER) == expected
    remote = PipelineOptions(["--runner=DataflowRunner", *args])
    assert local_workers.workers_to_fork(remote, LOCAL_RUNNER) == 0
    monkeypatch.setenv(local_workers.FORK_ENV, "0")
    assert local_workers.workers_to_fork(options, LOCAL_RUNNER) == 0


def test_a_build_that_cannot_fork_lets_beam_start_its_workers(monkeypatch, caplog):
    def no_more_processes():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(local_workers.threading, "active_count", lambda: 1)
    monkeypatch.setattr(local_workers.os, "fork", no_more_processes)
    options = PipelineOptions([f"--runner={LOCAL_RUNNER}", "--direct_running_mode=multi_processing",
                               "--direct_num_workers=2"])
    with local_workers.forked_workers(options, LOCAL_RUNNER) as workers:
        assert workers is None
    assert local_workers.SOCKET_ENV not in local_workers.os.environ
    assert "Beam starts them instead" in caplog.text


def test_a_failed_fork_leaves_the_socket_variable_as_it_was(monkeypatch):
    def no_more_processes():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(local_workers.os, "fork", no_more_processes)
    monkeypatch.setenv(local_workers.SOCKET_ENV, "/an/outer/build.sock")
    try:
        with local_workers.ForkedWorkers(2):
            pass
    except BlockingIOError:
        pass
    assert local_workers.os.environ[local_workers.SOCKET_ENV] == "/an/outer/build.sock"
