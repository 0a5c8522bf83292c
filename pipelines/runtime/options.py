"""Runner choice and the run's pipeline options.

Flags ``corpus build`` does not know are Beam pipeline options, as in Beam's
``wordcount.py``; the engine's own flags are :class:`pipelines.engine.options.CorpusOptions`.
A flag that no options class declares (a typo such as ``--runer``) is refused here, where
Beam itself would only log and ignore it. The runner named is resolved first
(:mod:`pipelines.runtime.runners`): its module may declare options of its own.
"""
from __future__ import annotations

import logging

from apache_beam.options.pipeline_options import (
    PipelineOptions,
    PortableOptions,
    StandardOptions,
)

from pipelines.engine.options import CorpusOptions
from pipelines.runtime.runners import LOCAL_RUNNER, RunnerError, resolve, wants_loopback

__all__ = ["LOCAL_RUNNER", "RunnerError", "pipeline_options", "unknown_flags"]


def unknown_flags(beam_args: list[str]) -> list[str]:
    """The flags among ``beam_args`` that no pipeline options class declares.

    Raises:
        RunnerError: the runner named cannot run this build (see :func:`runners.resolve`).
    """
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)  # Beam warns of the flags it discards; we refuse them
    try:
        resolve(StandardOptions(beam_args).runner)  # imports the runner's own options classes
        options = PipelineOptions(beam_args)
        known = options.get_all_options()
        everything = options.get_all_options(retain_unknown_options=True)
    finally:
        beam_logger.setLevel(level)
    unknown = set(everything) - set(known)
    return [arg for arg in beam_args if arg.startswith("-")
            and arg.lstrip("-").split("=", 1)[0].replace("-", "_") in unknown]


def pipeline_options(beam_args: list[str], **values) -> PipelineOptions:
    """Beam options from the flags ``corpus`` did not recognise (``values`` override them).

    The runner is the one named, resolved: the local runner (:data:`LOCAL_RUNNER`) when
    none, or the DirectRunner, is named. A PortableRunner given a job service on this
    machine (``--job_endpoint embed``, ``localhost:PORT``) and no ``--environment_type``
    runs its SDK worker by LOOPBACK instead of Beam's default, Docker.

    Raises:
        RunnerError: the runner named cannot run this build.
    """
    options = PipelineOptions(beam_args, **values)
    standard = options.view_as(StandardOptions)
    standard.runner = resolve(standard.runner)
    portable = options.view_as(PortableOptions)
    if wants_loopback(standard.runner, portable.job_endpoint, portable.environment_type):
        portable.environment_type = "LOOPBACK"
    options.view_as(CorpusOptions)  # the engine's flags, parsed once here
    return options
