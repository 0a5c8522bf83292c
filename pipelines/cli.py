"""The ``corpus`` command.

    corpus build --input-root IN --output OUT [--datasets a,b] [Beam flags ...]
    corpus build --sample --output OUT
    corpus verify OUT
    corpus fetch --sources a,b --to DEST   mirror upstream files (local, gs://, s3://)
    corpus report OUT [--to FILE]   write a self-contained HTML report of a build
    corpus export OUT DEST [--format parquet|jsonl.gz]   write a build as a Hugging Face dataset repository
    corpus mix                      print the reference mix (the repository's data_config.json)
    corpus datasets                 list every dataset, its documented total and status

Flags ``corpus build`` does not know are Beam pipeline options (``--runner``,
``--project``, ``--temp_location``, ``--direct_num_workers`` ...), as in Beam's
``wordcount.py``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import pipelines
from pipelines import build, export, extras
from pipelines.corpus import registry, verify
from pipelines.corpus.licences import LicenceSelection
from pipelines.corpus.source import SourceError
from pipelines.engine.options import add_flags as add_engine_flags
from pipelines.engine.shards import MiB, ShardingConfig
from pipelines.runtime import filesystems


def _engine_defaults() -> dict:
    parser = argparse.ArgumentParser(add_help=False)
    add_engine_flags(parser)
    return {name: value for name, value in vars(parser.parse_args([])).items() if name != "progress_dir"}


ENGINE_DEFAULTS = _engine_defaults()


def _source_options(values: list[str]) -> dict:
    options: dict = {}
    for value in values or []:
        key, eq, setting = value.partition("=")
        source, dot, name = key.partition(".")
        if not eq or not dot or not source or not name:
            raise build.BuildError(f"--source-option {value!r}: expected <source>.<key>=<value>")
        options.setdefault(source, {})[name] = setting
    return options


class _Parser(argparse.ArgumentParser):
    """A usage error is one line (argparse prints the whole usage before it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True)

    b = commands.add_parser("build", help="build sharded Parquet from upstream files",
                            description="Build the corpus. Unknown flags go to Beam.")
    b.add_argument("--input-root", help="folder (or gs://, s3:// URL) with one folder per source")
    b.add_argument("--output", required=True, help="output folder (or gs://, s3:// URL)")
    b.add_argument("--sample", action="store_true",
                   help="build from the small sample inputs bundled with the package")
    b.add_argument("--datasets", default="",
                   help="comma-separated dataset ids (default: every implemented dataset with input)")
    b.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable input file instead of recording it")
    b.add_argument("--source-option", action="append", metavar="SOURCE.KEY=VALUE",
                   help="an option of one source's rules, e.g. stackexchange.exclude_tags=meta")
    b.add_argument("--target-shard-mb", type=int, default=384,
                   help="text megabytes per shard before compression (default 384)")
    b.add_argument("--row-group-mb", type=int, default=64,
                   help="text megabytes per Parquet row group (default 64)")
    b.add_argument("--no-input-checksums", action="store_true",
                   help="do not compute SHA-256 of the input files for the manifest")
    b.add_argument("--force", action="store_true",
                   help="rebuild even if OUT already holds a complete build")
    b.add_argument("--licences", type=_licences, metavar="commercial|ID,...",
                   help="build only datasets whose terms allow commercial use ('commercial'), or "
                        "whose licence is one of the ids given (see docs/licences.md)")
    b.add_argument("--decontaminate", nargs="+", default=[], metavar="PATH",
                   help="evaluation sets (BEIR folders, .jsonl or .tsv files of texts): drop every "
                        "row matching one of their queries or relevant passages")
    b.add_argument("--dedup", choices=("exact", "near"), default="",
                   help="drop repeated rows within and across datasets (exact), and also rows "
                        "whose anchor nearly repeats another's in the same dataset (near)")
    b.add_argument("--fail-on-mismatch", action="store_true",
                   help="exit with status 1 when a dataset's count is a mismatch")
    add_engine_flags(b.add_argument_group(
        "engine options", "Beam pipeline options of the corpus engine (pipelines.engine.options)"))

    f = commands.add_parser("fetch", help="mirror the upstream files into a folder or bucket",
                            description="Fetch upstream files, verified, into the layout "
                                        "that 'corpus build --input-root' reads.")
    f.add_argument("--sources", default="all", help="comma-separated source names (default: all)")
    f.add_argument("--to", required=True, help="destination root (folder, gs:// or s3:// URL)")
    f.add_argument("--registry", help="folder of <source>/upstream.json (default: the package's)")
    f.add_argument("--checksums", help="checksum registry file (default: DEST/_fetch/checksums.json)")
    f.add_argument("--workers", type=int, default=4, help="files fetched at the same time")
    f.add_argument("--attempts", type=int, default=6, help="tries per URL before giving up")
    f.add_argument("--retry-delay", type=float, default=1.0, help="seconds before the first retry")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")
    f.add_argument("--include-optional", action="store_true", help="also fetch optional files")
    f.add_argument("--origin", choices=("files", "hub"), default="files",
                   help="published files, or Hugging Face datasets read with 'datasets'")
    f.add_argument("--hub-mirror", help="folder holding copies of Hub dataset repositories")
    f.add_argument("--progress-seconds", type=float, default=5.0, help="seconds between progress lines")
    f.add_argument("--list", action="store_true", help="print the files that would be fetched")

    v = commands.add_parser("verify", help="re-read a build's shards and print its count table")
    v.add_argument("output", help="the output folder of a build")

    r = commands.add_parser("report", help="write a self-contained HTML report of a build")
    r.add_argument("output", help="the output folder of a build")
    r.add_argument("--to", help="the HTML file to write (default: OUT/report.html)")

    export.register(commands)
    commands.add_parser("mix", help="print the reference mix this package builds")
    commands.add_parser("datasets", help="list every dataset and whether it is implemented")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return (f"corpus {pipelines.__version__} (apache-beam {installed('apache-beam')}, "
            f"pyarrow {installed('pyarrow')}, Python {sys.version.split()[0]})")


# The paths each command reads or writes, checked for a filesystem before it starts.
_PATH_ARGS = {"build": ("output", "input_root"), "verify": ("output",), "report": ("output", "to"),
              "fetch": ("to",), "export": ("output", "dest")}


def _licences(value: str) -> LicenceSelection:
    try:
        return LicenceSelection.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _build(args, beam_args: list[str]) -> int:
    request = build.BuildRequest(
        output=args.output,
        input_root=args.input_root,
        datasets=tuple(d.strip() for d in args.datasets.split(",") if d.strip()),
        sample=args.sample,
        strict=args.strict,
        source_options=_source_options(args.source_option),
        sharding=ShardingConfig(target_shard_bytes=args.target_shard_mb * MiB,
                                row_group_bytes=args.row_group_mb * MiB),
        input_checksums=not args.no_input_checksums,
        force=args.force,
        licences=args.licences,
        decontaminate=tuple(args.decontaminate),
        dedup=args.dedup,
    )
    engine_flags = {name: getattr(args, name) for name in ENGINE_DEFAULTS
                    if getattr(args, name) != ENGINE_DEFAULTS[name]}
    manifest = build.run_build(request, beam_args, engine_flags)
    if manifest.get("up_to_date"):
        print(f"{args.output} already holds a complete build of the same inputs and options; "
              "nothing to do (use --force to rebuild).")
    print(verify.format_table(manifest))
    print(f"Wrote {args.output.rstrip('/')}/manifest.json and data_config.json.")
    failing = [d for d, e in manifest["datasets"].items() if e["verdict"] in verify.FAILING_VERDICTS]
    if failing and (args.sample or args.fail_on_mismatch):
        print(f"Count check failed for: {', '.join(failing)}", file=sys.stderr)
        return 1
    unaccounted = verify.conservation_failures(manifest)
    if unaccounted:
        print(f"Records or rows not all accounted for: {', '.join(unaccounted)}", file=sys.stderr)
        return 1
    return 0


def _verify(args) -> int:
    manifest = build.read_manifest(args.output)
    problems = verify.recount_shards(args.output, manifest)
    problems += [f"{dataset}: records or rows are not all accounted for (see Accounting)"
                 for dataset in verify.conservation_failures(manifest)]
    print(verify.format_table(manifest))
    if problems:
        print("Shards do not match the manifest:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("Every shard re-read: counts match the manifest.")
    return 0


def _datasets() -> int:
    for spec in registry.DATASETS:
        state = "implemented" if registry.is_implemented(spec.id) else "not implemented"
        print(f"{spec.id:36} {spec.documented_total:>12,}  weight {spec.weight:>5}  {state}")
    return 0


def run(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args, beam_args = _parser().parse_known_args(argv)
    if args.command != "build" and beam_args:
        _parser().error(f"unrecognized arguments: {' '.join(beam_args)}")
    try:
        filesystems.check_available(*(getattr(args, name) for name in _PATH_ARGS.get(args.command, ())))
        if args.command == "build":
            return _build(args, beam_args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "report":
            from pipelines import report
            print(f"Wrote {report.write(args.output, args.to)}")
            return 0
        if args.command == "export":
            return export.run(args)
        if args.command == "fetch":
            from pipelines.fetch import run as fetch
            return fetch.run_from_args(args)
        if args.command == "mix":
            from pipelines.corpus.mix import reference_mix
            print(json.dumps(reference_mix(), indent=1))
            return 0
        return _datasets()
    except (build.BuildError, SourceError, extras.MissingExtra, filesystems.UnknownFilesystem) as exc:
        print(f"corpus {args.command}: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # a broken install, or an extra reached without require()
        print(f"corpus {args.command}: {extras.install_hint(exc.name or str(exc))}", file=sys.stderr)
        return 2


def main() -> None:
    """The ``corpus`` command. Once the command has finished and its output is flushed, the
    process ends without the interpreter's teardown: native thread pools (pyarrow's, gRPC's)
    torn down at interpreter exit occasionally abort the process ("terminate called without
    an active exception") after a correct run, which would turn a good exit status bad."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        status = run()
    except SystemExit as exc:  # argparse's usage errors and --help
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
