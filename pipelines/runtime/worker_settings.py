"""Settings of Beam's SDK workers, applied when the package is imported.

They take effect in every process that runs the package's steps: the launching process
(where the local in-memory runner runs its bundles), the worker processes of
``--direct_running_mode=multi_processing`` and Dataflow's workers, all of which import the
package when they unpickle its steps. (``--beam_plugins`` would be the documented route, but
the local runner passes no pipeline options to its worker processes.)

**State sampler period.** Each bundle starts one of Beam's state samplers, a thread that
sleeps ``sampling_period_ms`` (ramping up to Beam's default of 200 ms) between samples of
which step is running; the end of the bundle waits for that thread to wake up and exit. On
the local runner, where a stage is one or a few long bundles, that wait was most of a
build's idle time: on the benchmark's 4x MS MARCO build, wall time minus CPU time measured
0.3-0.7 s with the default period and 0.01-0.02 s with 10 ms. A sampler waking every 10 ms
costs no measurable CPU, and samples its step's time more finely.

**Worker exit (local worker processes only).** When a local build ends, the runner stops its
worker processes one after the other, each time waiting for the process to exit; the
interpreter's teardown of a process holding Beam, gRPC and pyarrow took 0.3-0.4 s each
after the worker's last step (measured: its last exit handler ran at once, the process
ended 0.36 s later). A worker process of a local build therefore ends with ``os._exit(0)``
once its harness has returned normally, as the ``corpus`` command itself does; a worker
that failed exits through the normal teardown, with its error and status. The launching
process marks local builds in the environment (:data:`LOCAL_BUILD_ENV`), which the worker
processes inherit; Dataflow's workers are not marked.
"""
from __future__ import annotations

import atexit
import inspect
import logging
import os
import sys

SAMPLING_PERIOD_MS = 10
LOCAL_BUILD_ENV = "MULTIQA_LOCAL_BUILD"
SDK_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"

_LOGGER = logging.getLogger(__name__)


def apply(sampling_period_ms: int = SAMPLING_PERIOD_MS) -> bool:
    """Make new state samplers sample every ``sampling_period_ms`` (their default period);
    returns whether it was applied (False when Beam's sampler no longer takes that argument
    last, in which case Beam's default stands)."""
    from apache_beam.runners.worker import statesampler

    init = statesampler.StateSampler.__init__
    parameters = list(inspect.signature(init).parameters.values())
    if not parameters or parameters[-1].name != "sampling_period_ms" or not init.__defaults__:
        _LOGGER.debug("Beam's StateSampler takes no sampling_period_ms last; its default stands")
        return False
    init.__defaults__ = init.__defaults__[:-1] + (sampling_period_ms,)
    return True


def mark_local_build() -> None:
    """Mark this process's environment (inherited by the worker processes it starts) as a
    local build's."""
    os.environ[LOCAL_BUILD_ENV] = "1"


def is_local_worker_process() -> bool:
    """Whether this process is an SDK worker process started by a local build."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return os.environ.get(LOCAL_BUILD_ENV) == "1" and getattr(spec, "name", None) == SDK_WORKER_MAIN


def exit_without_teardown() -> None:
    """At exit, end the process with ``os._exit(0)`` after flushing logging and the standard
    streams, unless an exception reached the top (then Python's own exit, with its status,
    follows). Exit handlers registered before this call are skipped."""
    failures = []
    previous_hook = sys.excepthook

    def record_failure(kind, value, traceback):
        failures.append(kind)
        previous_hook(kind, value, traceback)

    def leave():
        if failures:
            return
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    sys.excepthook = record_failure
    atexit.register(leave)


apply()
if is_local_worker_process():
    exit_without_teardown()
