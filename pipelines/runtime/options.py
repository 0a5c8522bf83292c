"""Runner choice and the run's pipeline options.

Flags ``corpus build`` does not know are Beam pipeline options, as in Beam's
``wordcount.py``; the engine's own flags are :class:`pipelines.engine.options.CorpusOptions`.
A flag that no options class declares (a typo such as ``--runer``) is refused here, where
Beam itself would only log and ignore it.
"""
from __future__ import annotations

import logging

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.engine.options import CorpusOptions

# The DirectRunner of Beam 2.77 first tries Prism, a separate runner it downloads: offline
# the attempt fails after seconds spent; online the build would run on another runner than
# the one tested. Local builds go straight to the FnApiRunner, which is what the
# DirectRunner runs otherwise (it honours --direct_running_mode and --direct_num_workers).
LOCAL_RUNNER = "FnApiRunner"
_LOCAL_NAMES = (None, "DirectRunner", "direct")


def unknown_flags(beam_args: list[str]) -> list[str]:
    """The flags among ``beam_args`` that no pipeline options class declares."""
    options = PipelineOptions(beam_args)
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)  # Beam warns of the flags it discards; we refuse them
    try:
        known = options.get_all_options()
        everything = options.get_all_options(retain_unknown_options=True)
    finally:
        beam_logger.setLevel(level)
    unknown = set(everything) - set(known)
    return [arg for arg in beam_args if arg.startswith("-")
            and arg.lstrip("-").split("=", 1)[0].replace("-", "_") in unknown]


def pipeline_options(beam_args: list[str], **values) -> PipelineOptions:
    """Beam options from the flags ``corpus`` did not recognise (``values`` override them);
    the local runner (:data:`LOCAL_RUNNER`) when none, or the DirectRunner, is named."""
    options = PipelineOptions(beam_args, **values)
    standard = options.view_as(StandardOptions)
    if standard.runner in _LOCAL_NAMES:
        standard.runner = LOCAL_RUNNER
    options.view_as(CorpusOptions)  # the engine's flags, parsed once here
    return options
