"""The runner a build names: resolved before the pipeline exists, refused in one line.

Beam resolves ``--runner`` only when the pipeline runs, after planning, and a runner's own
options classes count only once its module is imported. Here the name is resolved the way
Beam resolves it (a known name in any case, with or without ``Runner``, or a class named in
full), its module imported, and a runner that cannot run this build is refused with the
reason. docs/runners.md says what is tested on which runner.
"""
from __future__ import annotations

import difflib
import importlib
import ipaddress
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.runner import PipelineRunner

# Beam 2.77's DirectRunner first tries Prism, a separate runner it downloads: offline the
# attempt fails after seconds spent; online the build would run on another runner than the
# one tested. The FnApiRunner is what the DirectRunner runs otherwise.
LOCAL_RUNNER = "FnApiRunner"
_PORTABLE_RUNNER = "PortableRunner"

# The runners listed when a name is unknown, by what the test suite does with them.
SUPPORTED = {
    "tested here": ("DirectRunner (the default, run as FnApiRunner)", _PORTABLE_RUNNER),
    "translated in tests": ("DataflowRunner",),
    "untested": ("FlinkRunner", "SparkRunner", "PrismRunner"),
}

_KNOWN = {path.rsplit(".", 1)[-1].lower(): path for path in StandardOptions.ALL_KNOWN_RUNNERS}
_DIRECT_MODULE = _KNOWN["directrunner"].rsplit(".", 1)[0]

# Runners Beam can load that cannot run this build, with the reason. Refused before their
# module is imported: the DaskRunner's imports dask, which a build has no use for.
_REFUSED = {
    "apache_beam.runners.dask.dask_runner.DaskRunner": (
        "DaskRunner cannot run this build: in Beam 2.77 it reports no metrics (the build's "
        "accounting reads them), does not separate tagged outputs and drops what "
        "finish_bundle outputs (see docs/runners.md)"),
    "apache_beam.runners.render.RenderRunner": (
        "RenderRunner draws the pipeline's graph and runs nothing: a build needs a runner "
        "that runs it (see docs/runners.md)"),
}

# The extra that brings a runner's dependencies, by the first part of its module path.
_EXTRAS = {"apache_beam.runners.dataflow": "apache-beam[gcp]",
           "apache_beam.runners.interactive": "apache-beam[interactive]",
           "apache_beam.runners.dask": "apache-beam[dask]"}

_GRPC_SCHEMES = ("dns:///", "dns:", "ipv4:", "ipv6:")


class RunnerError(ValueError):
    """The runner named cannot run this build; the message is one line."""


def resolve(name: str | None) -> str:
    """The runner to set for ``--runner name``: the local runner for none or the
    DirectRunner, a Beam runner's class name, or a class named in full as given.

    Imports the runner's module, so that options classes it declares are known.

    Raises:
        RunnerError: the name is unknown, names a runner refused here, or its module needs
            a package that is not installed.
    """
    if name is None:
        return LOCAL_RUNNER
    if not isinstance(name, str):  # a runner object, given by a program rather than a flag
        return name
    key = name.lower()
    refused = _REFUSED.get(name) or next(
        (why for path, why in _REFUSED.items()
         if "." not in name and path.rsplit(".", 1)[-1].lower() == _runner_key(key)), None)
    if refused:
        raise RunnerError(refused)
    path = _KNOWN.get(key) or _KNOWN.get(key + "runner") or name
    if "." not in path:
        raise RunnerError(_unknown(name))
    module_name, class_name = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise RunnerError(_unknown(name)) from None  # the runner's own module is absent
        raise RunnerError(_missing(name, module_name, exc.name)) from None
    except ImportError as exc:
        raise RunnerError(_missing(name, module_name, exc.name)) from None
    except Exception as exc:  # noqa: BLE001 - a module that breaks on import (a version clash)
        first_line = (str(exc).splitlines() or [""])[0]
        raise RunnerError(f"runner {name!r} cannot be loaded: {type(exc).__name__}: {first_line}") from None
    runner = getattr(module, class_name, None)
    if not (isinstance(runner, type) and issubclass(runner, PipelineRunner)):
        raise RunnerError(_unknown(name))
    if module_name == _DIRECT_MODULE and runner is module.DirectRunner:  # also SwitchingDirectRunner
        return LOCAL_RUNNER
    return class_name if path in StandardOptions.ALL_KNOWN_RUNNERS else path


def wants_loopback(runner: str, job_endpoint: str | None, environment_type: str | None) -> bool:
    """Whether the run should use a LOOPBACK environment that it did not ask for.

    The PortableRunner's default environment is Docker, which a job service on this
    machine does not need and the machine may not have. The Flink, Spark and Prism runners
    choose LOOPBACK themselves for a local master; a remote job service keeps Docker.
    """
    return (runner == _PORTABLE_RUNNER and environment_type is None
            and job_endpoint is not None and _is_on_this_machine(job_endpoint))


def _is_on_this_machine(endpoint: str) -> bool:
    endpoint = endpoint.strip()
    if endpoint == "embed" or endpoint.startswith("unix:"):  # a job service in this process
        return True
    for scheme in _GRPC_SCHEMES:
        endpoint = endpoint.removeprefix(scheme)
    try:
        host = urlsplit("//" + endpoint).hostname or endpoint  # a bare "::1" has no port
    except ValueError:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _runner_key(key: str) -> str:
    return key if key.endswith("runner") else key + "runner"


def _unknown(name: str) -> str:
    names = [n.split(" ")[0] for group in SUPPORTED.values() for n in group] + [LOCAL_RUNNER]
    candidates = {_runner_key(n.lower()): n for n in names}
    close = [] if "." in name else difflib.get_close_matches(_runner_key(name.lower()), candidates,
                                                               n=1, cutoff=0.75)
    hint = f" (did you mean {candidates[close[0]]}?)" if close else ""
    groups = "; ".join(f"{what}: {', '.join(group)}" for what, group in SUPPORTED.items())
    return (f"unknown runner {name!r}{hint}. Runners of this build, {groups}; "
            "or a PipelineRunner class named in full (see docs/runners.md)")


def _missing(name: str, module_name: str, missing: str | None) -> str:
    extra = next((e for prefix, e in _EXTRAS.items() if module_name.startswith(prefix)), None)
    install = (f"pip install '{extra}'" if extra
               else f"install the package that provides {missing or 'it'}")
    return f"runner {name!r} cannot be loaded: module {missing!r} is not installed ({install})"
