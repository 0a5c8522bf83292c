"""Worker processes of a local multi-process build, forked from the launching process.

Beam's local runner starts each worker of ``--direct_running_mode=multi_processing`` as a
new interpreter (``python -m apache_beam.runners.worker.sdk_worker_main``), which imports
Beam, pyarrow and this package again before its first step: about 1 s of CPU per worker,
during which the launching process waits. The launching process has imported all of it
already; a worker forked from it starts at once.

:func:`forked_workers` forks the workers before the build starts a thread of its own (a
forked process keeps only the thread that forked it: a lock held by another thread would
stay locked in the child), and each waits on a Unix socket to be claimed.
:class:`LocalRunner` is Beam's FnApiRunner with one change: the command it runs for a
worker is :data:`LAUNCHER`, a few lines of the standard library (run with ``python -I -S``)
that claim a waiting worker, hand it the environment Beam gives a worker (its control and
logging endpoints, the pipeline options) and exit with the worker's status once it ends.
When no forked worker is left to claim, the launcher turns into Beam's own worker command,
so the runner always gets as many workers as it starts. A waiting worker exits when the
build ends or the launching process is gone.

Forked workers are used only where that is known to be safe: on Linux, for a local build
with more than one worker process, when the launching process runs no other Python
thread. Otherwise, or with ``CORPUS_FORK_WORKERS=0``, Beam starts its workers itself.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from typing import Iterator

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms import environments

FORK_ENV = "CORPUS_FORK_WORKERS"
SOCKET_ENV = "CORPUS_WORKER_SOCKET"
CLAIMED = b"claimed\n"
# Seconds a worker still running when the build ends is given to exit before it is killed.
EXIT_GRACE_SECONDS = 10.0

# The runner's command for one worker. It imports nothing beyond the standard library, so
# it starts in milliseconds; a worker that does not answer the claim (none left) is
# replaced by Beam's own worker process, with the same environment.
LAUNCHER = f"""
import json, os, socket, sys
claimed = False
try:
    link = socket.socket(socket.AF_UNIX)
    link.connect(os.environ[{SOCKET_ENV!r}])
    replies = link.makefile("rb")
    claimed = replies.readline() == {CLAIMED!r}
except OSError:
    pass
if not claimed:
    os.execv(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"])
link.sendall(json.dumps(dict(os.environ)).encode() + b"\\n")
status = replies.readline().strip()
sys.exit(int(status) if status.lstrip(b"-").isdigit() else 1)
"""

_LOGGER = logging.getLogger(__name__)
_in_forked_worker = False


def in_forked_worker() -> bool:
    """Whether this process is a worker forked by :class:`ForkedWorkers`."""
    return _in_forked_worker


class LocalRunner(FnApiRunner):
    """Beam's FnApiRunner whose worker processes are forked ones (see the module).

    FnApiRunner sets its default environment to a subprocess environment running Beam's
    worker command when the running mode is ``multi_processing``; this runner keeps that
    environment but runs ``command`` instead.

    Args:
        command: the shell command of one worker (:meth:`ForkedWorkers.command`).
    """

    def __init__(self, command: str):
        self._worker_command = command
        super().__init__()

    @property
    def _default_environment(self):
        return self._environment

    @_default_environment.setter
    def _default_environment(self, environment):
        if isinstance(environment, environments.SubprocessSDKEnvironment):
            environment = environments.SubprocessSDKEnvironment(
                self._worker_command, capabilities=environment.capabilities(),
                artifacts=environment.artifacts(), resource_hints=environment.resource_hints())
        self._environment = environment


class ForkedWorkers:
    """``count`` worker processes forked from this one, waiting to be claimed.

    Use as a context manager around the pipeline's run: entering forks the workers;
    leaving lets the unclaimed ones exit, waits for all of them (those still running after
    :data:`EXIT_GRACE_SECONDS` are killed) and removes the socket.

    Args:
        count: the number of workers to fork.
    """

    def __init__(self, count: int):
        self.count = count
        self.pids: list[int] = []
        self._folder: str | None = None
        self._parent_alive: int | None = None
        self._previous_env: str | None = None

    @property
    def command(self) -> str:
        """The shell command that claims one of the workers (:data:`LAUNCHER`)."""
        return f"{shlex.quote(sys.executable)} -I -S -c {shlex.quote(LAUNCHER)}"

    def runner(self) -> LocalRunner:
        """A runner whose worker processes are these."""
        return LocalRunner(self.command)

    def __enter__(self) -> "ForkedWorkers":
        self._folder = tempfile.mkdtemp(prefix="corpus-workers-")
        path = os.path.join(self._folder, "workers.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(self.count)
        listener.setblocking(False)  # several workers wait on it; one gets each claim
        # Read by the workers: end of file once this process has closed the other end.
        parent_alive, self._parent_alive = os.pipe()
        self._previous_env = os.environ.get(SOCKET_ENV)  # what leaving restores, also on failure
        sys.stdout.flush()  # what is buffered now would otherwise be written by every child
        sys.stderr.flush()
        with warnings.catch_warnings():
            # Python 3.12+ warns of fork() in a process with threads: here only the native
            # threads pyarrow starts when imported (its memory allocators'), which handle
            # fork; no Python thread runs (see workers_to_fork).
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                for _ in range(self.count):
                    pid = os.fork()
                    if pid == 0:
                        os.close(self._parent_alive)
                        _serve(listener, parent_alive)  # never returns
                    self.pids.append(pid)
            except OSError:  # no more processes allowed: those forked exit, and so does this
                listener.close()
                os.close(parent_alive)
                self.__exit__(None, None, None)
                raise
        listener.close()
        os.close(parent_alive)
        os.environ[SOCKET_ENV] = path
        return self

    def __exit__(self, *exc_info) -> None:
        os.close(self._parent_alive)  # the unclaimed workers exit
        if self._previous_env is None:
            os.environ.pop(SOCKET_ENV, None)
        else:
            os.environ[SOCKET_ENV] = self._previous_env
        deadline = time.monotonic() + EXIT_GRACE_SECONDS
        waiting = list(self.pids)
        while waiting:
            waiting = [pid for pid in waiting if _running(pid)]
            if waiting and time.monotonic() > deadline:
                for pid in waiting:
                    with contextlib.suppress(ProcessLookupError, ChildProcessError):
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                waiting = []
            elif waiting:
                time.sleep(0.01)
        shutil.rmtree(self._folder, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether child ``pid`` still runs (reaping it once it has ended)."""
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def _claim(listener: socket.socket, parent_alive: int) -> socket.socket | None:
    """The launcher's connection once one claims this worker; ``None`` when the launching
    process has closed ``parent_alive`` (the build ended, or the process is gone)."""
    while True:
        ready, _, _ = select.select([listener, parent_alive], [], [])
        if parent_alive in ready:
            return None
        try:
            link, _ = listener.accept()
        except BlockingIOError:  # another worker took this claim
            continue
        link.setblocking(True)
        return link


def _serve(listener: socket.socket, parent_alive: int) -> None:
    """A forked worker: wait for a claim, run Beam's worker harness with the launcher's
    environment, report its status, and end the process (never returns)."""
    global _in_forked_worker
    status, link = 1, None
    try:
        link = _claim(listener, parent_alive)
        listener.close()
        os.close(parent_alive)
        if link is None:
            status = 0
            return
        link.sendall(CLAIMED)
        environment = json.loads(link.makefile("rb").readline())
        os.environ.clear()
        os.environ.update(environment)
        _in_forked_worker = True
        # The launching process's log handlers: a worker's records go to the runner (Beam
        # adds that handler), as they do from a worker Beam starts.
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        # Beam warns that a worker without a staged main session may lack what the launching
        # process registered (coders, schemas); a forked worker has all of it.
        logging.getLogger("apache_beam.runners.worker.sdk_worker_main").addFilter(
            lambda record: "No semi_persistent_directory" not in record.getMessage())
        from apache_beam.runners.worker import sdk_worker_main

        sdk_worker_main.main([])
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported, and the status tells the runner
        traceback.print_exc()
    finally:
        if link is not None:
            with contextlib.suppress(OSError):
                link.sendall(b"%d\n" % status)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def workers_to_fork(options: PipelineOptions, local_runner: str) -> int:
    """How many workers to fork for a build with ``options`` (0: let Beam start them).

    Args:
        options: the build's pipeline options.
        local_runner: the runner name of local builds.
    """
    direct = options.view_as(DirectOptions)
    if (options.view_as(StandardOptions).runner != local_runner
            or direct.direct_running_mode != "multi_processing"
            or os.environ.get(FORK_ENV, "1") == "0"
            or not sys.platform.startswith("linux") or not hasattr(os, "fork")
            or threading.active_count() != 1):
        return 0
    count = direct.direct_num_workers or os.cpu_count() or 1
    return count if count > 1 else 0


@contextlib.contextmanager
def forked_workers(options: PipelineOptions, local_runner: str) -> Iterator[ForkedWorkers | None]:
    """:class:`ForkedWorkers` for a build with ``options`` (see :func:`workers_to_fork`),
    or ``None`` when Beam is to start the workers."""
    count = workers_to_fork(options, local_runner)
    with contextlib.ExitStack() as stack:
        workers = None
        if count:
            try:
                workers = stack.enter_context(ForkedWorkers(count))
            except OSError as exc:
                _LOGGER.warning("could not fork %d worker processes (%s); Beam starts them instead", count, exc)
        yield workers
