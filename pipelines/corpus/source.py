"""What a source module provides, and what the core hands to it.

A source is one upstream release (StackExchange dumps, MS MARCO, ...). Its module
``pipelines.sources.<name>`` holds the whole story: the files it reads, the parse, one
documented function per pair rule, and a ``SOURCE`` object, an instance of a
:class:`Source` subclass. Beside the module, ``sample/`` holds small inputs in the
upstream layout (``sample/<folder>/...``) and ``sample/expected_counts.json`` the counts
worked out by hand for them.

The core does the rest for every source alike: normalisation, schema check, dedup where
asked, sharding, counting, dead-letter output and verification.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Mapping

import apache_beam as beam

from pipelines.engine import files


class SourceError(Exception):
    """A problem with a source's input folder or options that the user must fix (a required
    file missing, conflicting inputs); the message says what to do."""


class OptionError(SourceError, ValueError):
    """A ``--source-option`` that is unknown or has a bad value; the message says which."""


@dataclass(frozen=True)
class SourceContext:
    """Everything a source needs to know about the run.

    Attributes:
        input_root: the root folder holding one folder per source.
        source_dir: this source's folder, ``input_root/<folder>``.
        datasets: the dataset ids of this source selected for the run.
        options: source options given as ``--source-option <source>.<key>=<value>``.
        strict: fail the run on the first unreadable file instead of recording it.
        source: the source's name (for messages).
    """

    input_root: str
    source_dir: str
    datasets: tuple[str, ...]
    options: Mapping[str, str] = field(default_factory=dict)
    strict: bool = False
    source: str = ""
    used_options: set = field(default_factory=set, compare=False, repr=False)

    def relative(self, path: str) -> str:
        """Provenance name of ``path``: relative to the input root."""
        return files.relative_to(path, self.input_root)

    def option(self, key: str, default, cast=str, choices=None):
        """A source option converted with ``cast``, or ``default`` when not given.

        Args:
            key: the option name (``--source-option <source>.<key>=<value>``).
            default: returned when the option is not given.
            cast: converts the string value (``int``, ``float``, :func:`parse_bool`, ...).
            choices: allowed values after conversion, if limited.
        Raises:
            OptionError: the value cannot be converted or is not one of ``choices``.
        """
        self.used_options.add(key)
        if key not in self.options:
            return default
        raw = self.options[key]
        try:
            value = cast(raw)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"--source-option {self.source}.{key}={raw!r}: {exc}") from None
        if choices is not None and value not in choices:
            raise OptionError(f"--source-option {self.source}.{key}={raw!r}: expected one of "
                              f"{', '.join(map(str, choices))}")
        return value

    def unused_options(self) -> list[str]:
        """Options given for this source that its rules never asked for (typos)."""
        return sorted(set(self.options) - self.used_options)


def positive_int(value: str) -> int:
    """A whole number of at least 1, for :meth:`SourceContext.option`."""
    number = int(value)
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def positive_float(value: str) -> float:
    """A number above zero, for :meth:`SourceContext.option`."""
    number = float(value)
    if not number > 0:
        raise ValueError("expected a number above zero")
    return number


def names_from(allowed) -> "Callable[[str], frozenset]":
    """A cast for :meth:`SourceContext.option` that reads a comma-separated, non-empty
    subset of ``allowed`` (e.g. the splits a source can read)."""
    allowed = tuple(allowed)

    def parse(value: str) -> frozenset:
        names = frozenset(name.strip() for name in value.split(",") if name.strip())
        if not names or not names <= set(allowed):
            raise ValueError(f"expected a comma-separated subset of {', '.join(allowed)}")
        return names

    return parse


def parse_bool(value: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0`` (any case) as a bool, for :meth:`SourceContext.option`."""
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass
class SourceOutput:
    """What a source's transform returns.

    Attributes:
        rows: one PCollection per produced dataset id, of row dicts or Arrow tables of rows
            (the corpus row schema).
        rejects: PCollections of rejected-record dicts (any dataset), flattened by the core.
        normalized: datasets whose row texts all went through
            :func:`pipelines.corpus.normalize.normalize_text` (or ``html_to_text``) where
            they were read; the core then only checks them against the text policy.
    """

    rows: dict[str, beam.PCollection]
    rejects: list[beam.PCollection] = field(default_factory=list)
    normalized: frozenset = frozenset()


class Source:
    """Base class of every source.

    Subclasses set :attr:`name` (module name), :attr:`folder` (folder name under the
    input root, as in the upstream layout), :attr:`datasets` (ids it produces) and
    implement :meth:`expand`.
    """

    name: str = ""
    folder: str = ""
    datasets: tuple[str, ...] = ()
    description: str = ""
    # The source counts its records (pipelines.corpus.accounting), so the build can check
    # read = paired + rejected + skipped for each of its datasets.
    counts_records: bool = False
    # Subsets with fewer rows than this share the group ``pool_name`` (0: no pooling).
    pool_below: int = 0
    pool_name: str = ""

    def subset_reference(self, dataset_id: str) -> dict:
        """Documented per-subset ``{"lines", "weight"}`` of the reference mix, by subset
        (group) name; empty for datasets without subsets."""
        return {}

    def expand(self, pipeline: beam.Pipeline, ctx: SourceContext) -> SourceOutput:
        """Add this source's reading and pair rules to ``pipeline``.

        Only the datasets in ``ctx.datasets`` need to be produced. Transform labels
        must be unique and stable: prefix them with the source name.
        """
        raise NotImplementedError

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        """The upstream files the run will read, as ``(path, size)`` pairs, for the
        manifest. The default lists everything below the source folder."""
        return files.list_dir(ctx.source_dir)

    # -- the bundled sample ---------------------------------------------------------
    def sample_root(self) -> str:
        """The input root of this source's bundled sample (holds ``<folder>/``)."""
        return str(resources.files(f"pipelines.sources.{self.name}").joinpath("sample"))

    def sample_expected_counts(self) -> dict:
        """``sample/expected_counts.json``: per dataset the rows, per-subset rows, and
        rejects and skips by reason that the sample must give, worked out by hand."""
        path = resources.files(f"pipelines.sources.{self.name}").joinpath(
            "sample", "expected_counts.json")
        return json.loads(path.read_text("utf-8"))
