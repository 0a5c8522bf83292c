"""``corpus export OUT DEST``: a build as a Hugging Face dataset repository.

Two formats:

* ``parquet`` (the default): the shards, byte for byte, under ``DEST/data/<dataset>/``,
  one configuration per built dataset and one per StackExchange site group
  (:func:`config_name`), a dataset card ``README.md`` whose YAML names them, and the
  build's ``manifest.json`` and ``data_config.json`` (its ``files`` then start with
  ``data/``, so the mix still points at the shards).
* ``jsonl.gz``: the layout the original ``multi-qa`` training read: one gzip file of JSON
  lists (``[anchor, positive]`` or ``[anchor, positive, negative]``) per mix entry, named
  as in the original mix, a ``data_config.json`` of ``name``, ``lines``, ``weight``, the
  card and ``manifest.json``. ``datasets`` does not read lists per line, so this card has
  no ``configs``.

Only datasets with status ``built`` are exported; rejected records stay in the build. The
same build always gives the same bytes in every file of DEST: nothing is dated but by
the manifest, and gzip headers carry no time or name.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
from importlib import resources

import orjson
import pyarrow.parquet as pq
import yaml
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.build import BuildError, read_manifest
from pipelines.corpus import licences, registry
from pipelines.corpus.schema import row_arrow_schema
from pipelines.engine import files

# ISA-L's deflate writes gzip 5-10x faster than the standard library's.
try:
    from isal.igzip import IGzipFile as _GzipFile
except ImportError:  # a platform without isal's wheels
    _GzipFile = gzip.GzipFile

FORMATS = ("parquet", "jsonl.gz")
DATA_DIR = "data"
CARD = "README.md"
MANIFEST = "manifest.json"
DATA_CONFIG = "data_config.json"
TEXT_COLUMNS = ("anchor", "positive", "negative")
PRETTY_NAME = "multi-qa question/answer training corpus"
COPY_BUFFER = 1 << 20
BATCH_ROWS = 8192
# Characters a configuration name may hold: the Hub's and datasets' (no path characters).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# Licences the Hub knows by an identifier of its own; the card names one only when every
# dataset of the export has it, and says "other" otherwise.
_HUB_LICENCES = {"cc-by-sa-3.0": "cc-by-sa-3.0", "cc-by-sa-4.0": "cc-by-sa-4.0",
                 "paq-cc-by-sa-3.0": "cc-by-sa-3.0"}
_SIZE_CATEGORIES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
                    (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"))


def register(commands) -> None:
    """Add ``export`` to the ``corpus`` command's subparsers."""
    e = commands.add_parser("export", help="write a build as a Hugging Face dataset repository",
                            description="Copy a build's shards into a dataset repository folder "
                                        "with a dataset card (see docs/publishing.md).")
    e.add_argument("output", help="the output folder of a build")
    e.add_argument("dest", help="the repository folder to write (or gs://, s3:// URL)")
    e.add_argument("--format", choices=FORMATS, default="parquet",
                   help="parquet shards with a configuration per dataset and site group (default), "
                        "or the original corpus's jsonl.gz files")
    e.add_argument("--force", action="store_true",
                   help="replace the files of a DEST that is not empty (hidden ones are kept)")


def run(args: argparse.Namespace) -> int:
    """``corpus export``: returns the exit status."""
    dest = export_build(args.output, args.dest, format=args.format, force=args.force)
    print(f"Wrote {dest} ({args.format}); publish it as described in docs/publishing.md.")
    return 0


def export_build(output: str, dest: str, format: str = "parquet", force: bool = False) -> str:
    """Write the build in ``output`` as a dataset repository in ``dest``; returns ``dest``.

    Raises:
        BuildError: ``output`` holds no complete build, the format is unknown, ``dest``
            overlaps the build, or ``dest`` holds files and ``force`` is not set.
    """
    if format not in FORMATS:
        raise BuildError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    output, dest = output.rstrip("/"), dest.rstrip("/")
    manifest = read_manifest(output)
    with files.open_raw(files.join(output, DATA_CONFIG)) as stream:
        mix = json.loads(stream.read().decode("utf-8"))
    _clear_dest(output, dest, force)
    if format == "parquet":
        configs = _export_parquet(output, dest, manifest)
        _write(files.join(dest, DATA_CONFIG), _json_bytes(
            [{**entry, "files": [f"{DATA_DIR}/{name}" for name in entry.get("files", [])]} for entry in mix]))
    else:
        configs = []
        _write(files.join(dest, DATA_CONFIG), _json_bytes(_export_jsonl(output, dest, mix)))
    _copy(files.join(output, MANIFEST), files.join(dest, MANIFEST))
    card = _dataset_card(manifest, mix, format, configs, _row_columns(output, manifest))
    _write(files.join(dest, CARD), card.encode("utf-8"))
    return dest


def config_name(dataset_id: str, group: str | None = None) -> str:
    """The configuration of a dataset (its id), or of one StackExchange site group of it
    (``stackexchange_title_body-academia.stackexchange.com``). Dataset ids hold no ``-``,
    so a name stands for one thing; characters outside letters, digits, ``.``, ``_`` and
    ``-`` become ``_``."""
    name = f"{dataset_id}-{group}" if group else dataset_id
    return "".join(c if c in _NAME_CHARS else "_" for c in name)


def jsonl_name(entry: dict) -> str:
    """File of a mix entry in the ``jsonl.gz`` format: its name in the original mix
    (``reference_name``), else ``<name>.jsonl.gz``."""
    return entry.get("reference_name") or f"{entry['name']}.jsonl.gz"


def _built(manifest: dict) -> dict[str, dict]:
    return {d: e for d, e in manifest["datasets"].items() if e["status"] == "built"}


def _clear_dest(output: str, dest: str, force: bool) -> None:
    """Refuse a DEST that is the build or holds it, and one with files unless ``force``,
    which deletes them. Hidden files and folders (a clone's ``.git``) are left alone."""
    if _holds(dest, output):
        raise BuildError(f"{dest} is the build folder or holds it; export to another folder")
    present = [path for path, _ in files.list_files(files.join(dest, "**"))
               if not any(part.startswith(".") for part in files.relative_to(path, dest).split("/"))]
    if present and not force:
        raise BuildError(f"{dest} is not empty ({len(present)} file{'s' if len(present) > 1 else ''}); "
                         "use --force to replace its files")
    if present:
        FileSystems.delete(present)


def _holds(folder: str, path: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it."""
    if files.is_local(folder) and files.is_local(path):
        folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        stream.write(data)


def _json_bytes(value) -> bytes:
    return json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8")


def _copy(source: str, target: str) -> None:
    """Byte copy between any two filesystems, streamed a buffer at a time."""
    with files.open_raw(source) as src, \
            FileSystems.create(target, compression_type=CompressionTypes.UNCOMPRESSED) as dst:
        shutil.copyfileobj(src, dst, COPY_BUFFER)


def _export_parquet(output: str, dest: str, manifest: dict) -> list[dict]:
    """Copy every shard to ``DEST/data/<dataset>/``; returns the configurations
    (``name``, ``rows``, ``paths`` relative to DEST as a glob or a list)."""
    configs = []
    for dataset_id, entry in _built(manifest).items():
        if not entry["shards"]:  # a dataset without rows has nothing to load
            continue
        for shard in entry["shards"]:
            _copy(files.join(output, dataset_id, shard["file"]), files.join(dest, DATA_DIR, dataset_id, shard["file"]))
        configs.append({"name": config_name(dataset_id), "dataset": dataset_id, "rows": entry["rows"],
                        "paths": f"{DATA_DIR}/{dataset_id}/*.parquet"})
        for group, info in entry.get("groups", {}).items():
            if info["shards"]:
                configs.append({"name": config_name(dataset_id, group), "dataset": dataset_id,
                                "group": group, "rows": info["rows"],
                                "paths": [f"{DATA_DIR}/{dataset_id}/{name}" for name in info["shards"]]})
    return configs


def _export_jsonl(output: str, dest: str, mix: list[dict]) -> list[dict]:
    """Write one gzip JSON-lines file per mix entry; returns the original-shaped mix."""
    original = []
    for entry in mix:
        columns = list(TEXT_COLUMNS[:entry["columns"]])
        lines = 0
        target = files.join(dest, *jsonl_name(entry).split("/"))
        with FileSystems.create(target, compression_type=CompressionTypes.UNCOMPRESSED) as raw, \
                _GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            for shard in entry.get("files", []):
                with files.open_raw(files.join(output, shard)) as stream:
                    for batch in pq.ParquetFile(stream).iter_batches(
                            batch_size=BATCH_ROWS, columns=columns, use_threads=False):
                        texts = zip(*(batch.column(c).to_pylist() for c in columns))
                        chunk = b"".join(orjson.dumps(list(row)) + b"\n" for row in texts)
                        lines += batch.num_rows
                        gz.write(chunk)
        if lines != entry["lines"]:
            raise BuildError(f"{entry['name']}: its shards hold {lines} rows, data_config.json says "
                             f"{entry['lines']}; run corpus verify {output}")
        original.append({"name": jsonl_name(entry), "lines": lines, "weight": entry["weight"]})
    return original


def _upstream(source: str) -> dict:
    """A source's ``upstream.json`` (licence, citation, homepage)."""
    path = resources.files("pipelines.sources").joinpath(source, "upstream.json")
    return json.loads(path.read_text("utf-8"))


def _size_category(rows: int) -> str:
    return next((name for limit, name in _SIZE_CATEGORIES if rows < limit), "n>1T")


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows] + [""]


def _dataset_card(manifest: dict, mix: list[dict], format: str, configs: list[dict],
                  columns: list[tuple[str, str]]) -> str:
    """The dataset card (``README.md``) of an export: YAML front matter, then the corpus
    and its row ``columns``, its datasets, their licences and sources, how it was built,
    the mix and how to load it."""
    built = _built(manifest)
    sources = {}
    for dataset_id in built:
        source = registry.get(dataset_id).source
        sources.setdefault(source, _upstream(source))
    rows = sum(entry["rows"] for entry in built.values())
    terms = {dataset_id: _licence(dataset_id, entry) for dataset_id, entry in built.items()}
    meta = {
        "pretty_name": PRETTY_NAME,
        **_licence_metadata(set(terms.values())),
        "dataset_licences": {dataset_id: licence.id for dataset_id, licence in terms.items()},
        "source_licences": {name: info["licence"] for name, info in sources.items()},
        "language": ["en"],
        "task_categories": ["sentence-similarity"],
        "tags": ["sentence-transformers"],
        "size_categories": [_size_category(rows)],
    }
    if configs:
        meta["configs"] = [{"config_name": c["name"], "data_files": [{"split": "train", "path": c["paths"]}]}
                           for c in configs]
    else:
        meta["viewer"] = False  # the Hub's viewer cannot read lists per line either
    out = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=4096).rstrip(), "---", ""]
    out += _card_intro(manifest, built, rows, format, columns)
    out += _card_datasets(built, sources)
    out += _card_licences(manifest, terms, format, [name for name, _ in columns])
    out += _card_build(manifest)
    out += _card_mix(mix, format)
    out += _card_loading(format, configs, mix)
    return "\n".join(out)


def _card_intro(manifest: dict, built: dict, rows: int, format: str, columns: list[tuple[str, str]]) -> list[str]:
    out = [f"# {PRETTY_NAME}", "",
           ("Question/answer pairs and triplets for training sentence-embedding models. The corpus "
            "rebuilds, from the upstream releases, the training data of `multi-qa-distilbert-cos-v1`. "
            f"This repository holds {rows:,} rows of {len(built)} datasets, written by "
            f"`multiqa-corpus-pipelines` {manifest['package_version']}."), ""]
    if manifest["run"].get("sample"):
        out += ["This is a build of the small sample inputs bundled with the package, not the full corpus.", ""]
    if format == "parquet":
        out += ["Each row has these columns (the shards' schema); rows are shuffled within each shard.", ""]
        # Descriptions are prose: an <OwnerUserId> in them would be an HTML tag to the Hub.
        out += _table(("column", "what it holds"), [
            (f"`{name}`", text.replace("<", "&lt;").replace(">", "&gt;")) for name, text in columns])
    else:
        out += [("Each line of a `.jsonl.gz` file is a JSON list of texts: `[anchor, positive]`, or "
                 "`[anchor, positive, negative]` for triplets, in the shards' order."), ""]
    rejected = sum(entry["rejected"]["total"] for entry in built.values())
    out += [(f"{rejected:,} upstream records did not become rows. They are not part of this repository; "
             "`manifest.json` counts them by dataset and reason."), ""]
    left_out = [f"`{d}` ({e['status']})" for d, e in manifest["datasets"].items() if e["status"] != "built"]
    if left_out:
        out += ["Not in this build: " + ", ".join(left_out) + ".", ""]
    return out


def _card_datasets(built: dict, sources: dict) -> list[str]:
    out = ["## Datasets", ""]
    out += _table(("dataset", "rows", "documented total", "verdict", "row", "columns", "source"), [
        (f"`{d}`", f"{e['rows']:,}", f"{e['documented']:,}", e["verdict"], e["pair"], e["columns"],
         registry.get(d).source) for d, e in built.items()])
    out += [("The documented totals are the rows of the model card's training-data table. The verdict is "
             "the build's count check (for a sample build, against the sample's hand-worked counts); "
             "`manifest.json` has its details."), ""]
    groups = [(d, group, info) for d, e in built.items() for group, info in e.get("groups", {}).items()]
    if groups:
        out += ["### StackExchange sites", "",
                ("Each site group of a dataset is an entry of the mix of its own. Sites with fewer than "
                 "10,000 rows are pooled as `small_stackexchanges`, as in the original mix."), ""]
        out += _table(("dataset", "site group", "rows", "documented", "verdict"), [
            (f"`{d}`", f"`{group}`", f"{info['rows']:,}",
             "-" if info.get("documented") is None else f"{info['documented']:,}", info["verdict"])
            for d, group, info in groups])
    out += ["## Sources", "", "The upstream releases, with the terms as each source states them.", ""]
    out += _table(("source", "licence", "citation", "homepage"), [
        (name, info["licence"], info["citation"], info["homepage"]) for name, info in sources.items()])
    return out


def _row_columns(output: str, manifest: dict) -> list[tuple[str, str]]:
    """``(name, description)`` of every column of the build's rows, from the schema of its
    first shard (the package's row schema when it wrote none)."""
    shard = next(((d, e["shards"][0]["file"]) for d, e in _built(manifest).items() if e["shards"]), None)
    if shard is None:
        schema = row_arrow_schema()
    else:
        with files.open_raw(files.join(output, *shard)) as stream:
            schema = pq.read_schema(stream)
    return [(f.name, (f.metadata or {}).get(b"description", b"").decode("utf-8")) for f in schema]


def _licence(dataset_id: str, entry: dict) -> licences.Licence:
    """The terms of a built dataset: those its manifest entry names, else the registry's."""
    return licences.get((entry.get("licence") or {}).get("id") or registry.get(dataset_id).licence)


def _licence_metadata(terms: set) -> dict:
    """The card's ``license``: the Hub's identifier when every dataset has the same one,
    else ``other`` with the licence's name and link (one licence) or ``mixed``."""
    hub = {_HUB_LICENCES.get(licence.id) for licence in terms}
    if len(hub) == 1 and None not in hub:
        return {"license": hub.pop()}
    if len(terms) == 1:
        licence = next(iter(terms))
        return {"license": "other", "license_name": licence.id, "license_link": licence.url}
    return {"license": "other", "license_name": "mixed"}


def _card_licences(manifest: dict, terms: dict, format: str, columns: list[str]) -> list[str]:
    """Per dataset (and so per configuration) the terms its rows are published under."""
    out = ["## Licences", "",
           ("Each dataset keeps the terms of its upstream release, and each configuration those of its "
            "dataset. Commercial use is `unknown` where the terms do not say; treat it as not allowed."), ""]
    rows = []
    for dataset_id, licence in terms.items():
        configurations = f"`{config_name(dataset_id)}`"
        if manifest["datasets"][dataset_id].get("groups"):
            configurations += f", `{config_name(dataset_id)}-<site group>`"
        rows.append((f"`{dataset_id}`", configurations, f"[{licence.name}]({licence.url})", licence.commercial,
                     "yes" if licence.attribution else "no", licence.note or "-"))
    out += _table(("dataset", "configurations", "licence", "commercial use", "attribution required", "note"), rows)
    attributed = {"licence", "attribution_url", "author"} <= set(columns)
    if attributed and any(licence.attribution for licence in terms.values()):
        rows_named = "Each row" if format == "parquet" else "Each row of the build's Parquet shards"
        out += [(f"{rows_named} names its own terms (`licence`: for StackExchange the CC BY-SA version of its "
                 "post), the item its texts come from (`attribution_url`) and their author (`author`)."
                 + (" The `jsonl.gz` files hold the texts only: where the terms require attribution, "
                    "publish the Parquet export, whose rows carry it." if format == "jsonl.gz" else "")), ""]
    selection = manifest["run"].get("licences", "all")
    if selection != "all":
        out += [f"The build kept only the datasets whose licence `--licences {selection}` accepts:", ""]
        out += [f"- `{d}` left out: {e['reason']}" for d, e in manifest["datasets"].items() if e.get("reason")]
        out += [""]
    return out


def _card_build(manifest: dict) -> list[str]:
    run = manifest["run"]
    inputs = manifest.get("inputs", [])
    hashed = sum(1 for item in inputs if item.get("sha256"))
    out = ["## How it was built", "",
           f"- package: `multiqa-corpus-pipelines` {manifest['package_version']}",
           f"- run: started {manifest['started']}, finished {manifest['finished']}",
           "- input: " + ("the bundled sample" if run.get("sample") else f"`{run.get('input_root')}`"),
           "- datasets requested: " + (", ".join(run.get("datasets_requested") or []) or "every implemented one"),
           f"- strict: {str(run.get('strict', False)).lower()}",
           f"- licences: {run.get('licences', 'all')}",
           "- source options: " + (f"`{json.dumps(run['source_options'], sort_keys=True)}`"
                                   if run.get("source_options") else "none"),
           "- Beam options: " + (f"`{' '.join(run['beam_args'])}`" if run.get("beam_args") else "none"),
           f"- inputs: {len(inputs):,} files, {sum(i.get('bytes', 0) for i in inputs):,} bytes; "
           + ("the size and SHA-256 of each are in `manifest.json` (`inputs`)" if hashed == len(inputs)
              else f"{hashed:,} of them with a SHA-256 in `manifest.json` (`inputs`)"), ""]
    if manifest.get("card"):
        out += [f"Model card: {manifest['card']['explanation']}.", ""]
    return out


def _card_mix(mix: list[dict], format: str) -> list[str]:
    out = ["## The mix", "",
           ("`data_config.json` is the training mix. Training draws an entry with probability proportional "
            "to its weight and fills the whole batch from it, so pairs and triplets never share a batch. "
            "Entries of weight 0 are never drawn."), ""]
    where = "file" if format == "jsonl.gz" else "configuration"
    return out + _table(("entry", "lines", "weight", "columns", where), [
        (e["name"], f"{e['lines']:,}", e["weight"], e["columns"],
         f"`{jsonl_name(e)}`" if format == "jsonl.gz" else f"`{config_name(e['dataset'], e.get('subset'))}`")
        for e in mix])


def _card_loading(format: str, configs: list[dict], mix: list[dict]) -> list[str]:
    out = ["## Loading", ""]
    if format == "parquet":
        names = [c["name"] for c in configs]
        example = "msmarco_triplets" if "msmarco_triplets" in names else (names[0] if names else "msmarco_triplets")
        return out + [
            ("Every dataset is a configuration of the same name; each StackExchange site group is "
             "`<dataset>-<site>`. Every configuration has one split, `train`."), "",
            "```python", "import datasets", "",
            f'rows = datasets.load_dataset("REPO_OR_FOLDER", "{example}", split="train")', "```", "",
            ("The files are `data/<dataset>/<dataset>-SSSSS-of-NNNNN.parquet`. `data_config.json` lists "
             "the files of each mix entry, relative to the repository."), ""]
    names = [jsonl_name(e) for e in mix]
    example = next((n for n in names if n.startswith("msmarco")), names[0] if names else "PAQ_pairs.jsonl.gz")
    return out + [
        ("`datasets` does not read a JSON list per line, so this card declares no configurations "
         "and the viewer is off. Read the files directly:"), "",
        "```python", "import gzip, json", "",
        f'with gzip.open("{example}", "rt", encoding="utf-8") as lines:',
        "    for line in lines:", "        texts = json.loads(line)  # [anchor, positive] or [anchor, positive, negative]",
        "```", "",
        ("`data_config.json` has the original mix's shape: `name` (the file, relative to the repository), "
         "`lines` and `weight`."), ""]
