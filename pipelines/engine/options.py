"""The engine's settings: one ``PipelineOptions`` subclass and the frozen object its
transforms carry to the workers.

:class:`CorpusOptions` declares the flags (Beam style, ``--max_line_bytes``); they show
in ``corpus build --help`` and work wherever Beam's options do (a Dataflow template too).
:class:`ReadSettings` is their value for one pipeline: :class:`~pipelines.engine.read.ReadFiles`
reads it from the pipeline's options when it is applied and hands it to its steps, which
make it current in the worker process before they read (:func:`use`), so that the
parsing helpers a source calls (:func:`~pipelines.engine.lines.text_lines`, archive
members) apply the run's limits on every runner.
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions

MiB = 1 << 20


@dataclass(frozen=True)
class ReadSettings:
    """Limits and sizes of reading, the same in every worker of a run.

    Attributes:
        max_line_bytes: the longest line read; a longer one makes its file unreadable (a
            file without line breaks, or a decompression bomb). Natural Questions lines
            are several MB; nothing real comes near the default.
        block_bytes: bytes of whole lines per block when a file is shared out among
            workers; changes how work is spread, never the output.
        max_member_bytes: cap on an archive member's uncompressed size (ten times
            StackOverflow's ``Posts.xml``, the largest real member).
        max_compression_ratio: cap on uncompressed bytes per compressed byte of a member
            (deflate cannot pass about 1,030x; real dumps compress 5-20x).
        progress_dir: the spool folder of a local build's progress report ('' when off).
    """

    max_line_bytes: int = 512 * MiB
    block_bytes: int = 16 * MiB
    max_member_bytes: int = 1 << 40
    max_compression_ratio: float = 1000.0
    progress_dir: str = ""


_DEFAULTS = ReadSettings()
_current = _DEFAULTS
_scratch = ""  # this process's temporary scratch folder, when a pipeline names none
# What the engine writes below the scratch folder (and a build removes when it ends).
SCRATCH_KINDS = ("blocks", "joins")


def add_flags(parser) -> None:
    """Declare the engine's flags on an argparse parser or argument group."""
    parser.add_argument("--max_line_bytes", type=int, default=_DEFAULTS.max_line_bytes,
                        help="longest input line read, in bytes (default 512 MiB)")
    parser.add_argument("--block_bytes", type=int, default=_DEFAULTS.block_bytes,
                        help="bytes per block when one file is shared out among workers (default 16 MiB)")
    parser.add_argument("--max_member_bytes", type=int, default=_DEFAULTS.max_member_bytes,
                        help="largest uncompressed archive member accepted, in bytes (default 1 TiB)")
    parser.add_argument("--max_compression_ratio", type=float, default=_DEFAULTS.max_compression_ratio,
                        help="largest uncompressed/compressed ratio of an archive member (default 1000)")
    parser.add_argument("--scratch_dir", default="",
                        help="folder (or gs://, s3:// URL) for the engine's temporary files: blocks of files "
                             "shared among workers, join runs (corpus build: OUT/_work/scratch, removed at the end)")
    parser.add_argument("--progress_dir", default="", help=argparse.SUPPRESS)


class CorpusOptions(PipelineOptions):
    """The corpus engine's pipeline options (see :class:`ReadSettings`)."""

    @classmethod
    def _add_argparse_args(cls, parser):  # Beam's documented hook for custom options
        add_flags(parser)

    def read_settings(self) -> ReadSettings:
        """These options as the frozen object the engine's steps carry."""
        return ReadSettings(max_line_bytes=self.max_line_bytes, block_bytes=self.block_bytes,
                            max_member_bytes=self.max_member_bytes,
                            max_compression_ratio=self.max_compression_ratio,
                            progress_dir=self.progress_dir or "")


def settings_of(pipeline_options) -> ReadSettings:
    """The :class:`ReadSettings` of a pipeline's options."""
    return pipeline_options.view_as(CorpusOptions).read_settings()


def scratch_folder(pipeline_options, kind: str) -> str:
    """The folder for the engine's temporary files of one ``kind`` (``blocks``, ``joins``):
    below the run's ``--scratch_dir``, or below a new local temporary folder when it has
    none (a transform applied outside a build, as in tests)."""
    global _scratch
    base = pipeline_options.view_as(CorpusOptions).scratch_dir
    if not base:
        _scratch = _scratch or tempfile.mkdtemp(prefix="corpus-scratch-")
        base = _scratch
    return base.rstrip("/") + "/" + kind


def use(settings: ReadSettings) -> None:
    """Make ``settings`` this process's current ones (called by the engine's steps in
    ``setup``, and by the build in the launching process)."""
    global _current
    _current = settings


def current() -> ReadSettings:
    """This process's current :class:`ReadSettings` (the defaults until :func:`use`)."""
    return _current
