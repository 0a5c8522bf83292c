"""The floor: the same parsing and Parquet writing as the pipeline, done by a plain
single-process script with lxml and pyarrow, no Beam.

Each ``floor_*`` function reads the synthetic inputs of one source, applies the same pair
rule with the package's own rule and normalisation functions, and writes one Parquet file
of the same rows (the corpus row schema: texts, dataset, subset, source file, record id,
licence, attribution link and author).
It is the cost of the work itself; the pipeline's extra cost is Beam's (and sharding's).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from lxml import etree

from pipelines.corpus import registry
from pipelines.engine import files
from pipelines.corpus.normalize import normalize_text
from pipelines.corpus.schema import row_arrow_schema
from pipelines.engine.shards import parquet_options
from pipelines.sources import stackexchange as se

BATCH = 65_536


class _Writer:
    """Buffer rows and write them as Parquet record batches in the corpus row schema, with
    the Parquet options of ``dataset``'s shards (its repeated texts dictionary-encoded)."""

    def __init__(self, path: Path, dataset: str):
        self.schema = row_arrow_schema()
        repeated = registry.get(dataset).repeated_texts if dataset else ()
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd",
                                       **parquet_options(repeated))
        self.dataset = dataset
        self.columns = {n: [] for n in self.schema.names}
        self.rows = 0

    def add(self, anchor, positive, negative=None, *, subset="", source_file, record_id, dataset=None,
            licence=None, attribution_url=None, author=None):
        columns = self.columns
        columns["anchor"].append(anchor)
        columns["positive"].append(positive)
        columns["negative"].append(negative)
        columns["dataset"].append(dataset or self.dataset)
        columns["subset"].append(subset)
        columns["source_file"].append(source_file)
        columns["record_id"].append(record_id)
        # As the build's normalisation does: a row without a licence gets its dataset's.
        columns["licence"].append(licence or registry.get(dataset or self.dataset).licence)
        columns["attribution_url"].append(attribution_url)
        columns["author"].append(author)
        self.rows += 1
        if len(columns["anchor"]) >= BATCH:
            self.flush()

    def add_table(self, table: pa.Table) -> None:
        """Write a table of rows already in the corpus row schema (after the buffered rows)."""
        self.flush()
        if table.num_rows and table["licence"].null_count:
            licence = registry.get(table["dataset"][0].as_py()).licence
            table = table.set_column(table.schema.get_field_index("licence"), "licence",
                                     pc.fill_null(table["licence"], licence))
        self.writer.write_table(table.select(self.schema.names).cast(self.schema))
        self.rows += table.num_rows

    def flush(self):
        if self.columns["anchor"]:
            self.writer.write_table(pa.table(self.columns, schema=self.schema))
            self.columns = {n: [] for n in self.columns}

    def close(self) -> int:
        self.flush()
        self.writer.close()
        return self.rows


def _title_body_rows(stream, writer: "_Writer", site: str, source_file: str) -> None:
    for _, element in etree.iterparse(stream, events=("end",), tag="row", huge_tree=True,
                                      resolve_entities=False, no_network=True):
        if element.get("PostTypeId") == "1":
            title = normalize_text(element.get("Title"))
            body = se.rules.body_text(element.get("Body"))
            licence, _problem = se.attribution.post_licence(element.attrib)
            if se.rules.question_problem(title, body, int(element.get("Score"))) is None and licence:
                writer.add(title, body, subset=site, source_file=source_file, record_id=element.get("Id"),
                           licence=licence, attribution_url=se.attribution.question_url(site, element.get("Id")),
                           author=se.attribution.post_author(element.attrib))
        element.clear(keep_tail=False)
        while element.getprevious() is not None:
            del element.getparent()[0]


def floor_stackexchange_sites(folder: Path, out: Path) -> int:
    """stackexchange_title_body from every ``<site>.7z`` of ``folder``: ``Posts.xml``
    streamed out of the archive with libarchive and parsed with lxml iterparse."""
    writer = _Writer(out, se.TITLE_BODY)
    for archive in sorted(folder.glob("*.7z")):
        site = archive.name[:-len(".7z")]
        for name, stream in files.iter_archive_members(str(archive), wanted=lambda n: n == "Posts.xml"):
            _title_body_rows(stream, writer, site, f"stackexchange/{archive.name}!{name}")
    return writer.close()


@contextlib.contextmanager
def _gzip_text(path: Path):
    """A gzip file's text, decompressed as the package decompresses it (``files.open_input``:
    ISA-L's inflate), so that the floor and the build differ in everything but that."""
    with files.open_input(str(path)) as stream:
        yield io.TextIOWrapper(stream, encoding="utf-8")


def _tsv(path: Path):
    opener = _gzip_text if path.suffix == ".gz" else lambda p: open(p, encoding="utf-8")
    with opener(path) as stream:
        for line in stream:
            yield line.rstrip("\n").split("\t")


def floor_msmarco_qidpidtriples(folder: Path, out: Path) -> int:
    """msmarco_triplets from ``qidpidtriples`` with the package's rule (per query the
    ``DEFAULT_TRIPLES_PER_QUERY`` triples with the smallest selection keys, negatives judged
    relevant dropped), texts repaired and normalised once each, joined from in-memory
    dicts: what one process can afford."""
    from pipelines.sources import msmarco

    passages = {int(pid): normalize_text(msmarco.parse.repair_mojibake(text))
                for pid, text in _tsv(folder / "collection.tsv")}
    queries = {int(qid): normalize_text(text) for qid, text in _tsv(folder / "queries.train.tsv")}
    judged: dict[int, set] = {}
    for qid, _zero, pid, _one in _tsv(folder / "qrels.train.tsv"):
        judged.setdefault(int(qid), set()).add(int(pid))
    triples = [(int(qid), int(pos), int(neg)) for qid, pos, neg in _tsv(folder / "qidpidtriples.train.full.2.tsv")]
    # The rule's keys, computed over whole columns as the package does.
    keys = msmarco.rules.selection_keys("", *np.array(triples, dtype=np.int64).T).tolist()
    candidates: dict[int, list] = {}
    for key, (qid, pos, neg) in zip(keys, triples):
        candidates.setdefault(qid, []).append((key, pos, neg))
    writer = _Writer(out, msmarco.DATASET)
    source_file = "msmarco/qidpidtriples.train.full.2.tsv"
    for qid in sorted(candidates):
        for _key, pos, neg in msmarco.rules.keep_per_query(candidates[qid], msmarco.DEFAULT_TRIPLES_PER_QUERY):
            if neg not in judged.get(qid, ()):
                writer.add(queries[qid], passages[pos], passages[neg], source_file=source_file,
                           record_id=f"{qid}/{pos}/{neg}")
    return writer.close()


def floor_wikianswers(folder: Path, out: Path) -> int:
    """wikianswers from every gzip part of ``folder`` with the package's cluster rule."""
    from pipelines.sources import wikianswers as wa

    writer = _Writer(out, wa.DATASET)
    for part in sorted(folder.iterdir()):
        source_file = f"wikianswers/{part.name}"
        with _gzip_text(part) as stream:
            for number, line in enumerate(stream, start=1):
                questions, _answers, _malformed = wa.parse_cluster(line.rstrip("\n"))
                pairs = wa.cluster_pairs(wa.distinct_questions(questions))
                for index, (anchor, positive) in enumerate(pairs, start=1):
                    writer.add(anchor, positive, source_file=source_file,
                               record_id=f"line {number} pair {index}")
    return writer.close()


def floor_yahoo_answers(folder: Path, out: Path) -> int:
    """The three Yahoo Answers datasets from ``train.csv`` (one read, three pair rules),
    all written to one file; returns the rows of the three together. The CSV is parsed into
    tables of records by the package's reader (``yahoo_answers.read_csv``) and the pair rules
    decided a table at a time (``yahoo_answers.pair_table``), as the build does."""
    from pipelines.sources import yahoo_answers as ya

    writer = _Writer(out, "")
    source_file = "yahoo_answers/yahoo_answers_csv/train.csv"
    with open(folder / "yahoo_answers_csv" / "train.csv", "rb") as stream:
        for records in ya.read_csv(stream, source_file, ya.DATASETS[0]):
            if not isinstance(records, pa.Table):
                continue  # a record that cannot be parsed
            for dataset in ya.DATASETS:
                for item in ya.pair_table(records, dataset):
                    if isinstance(item, pa.Table):
                        writer.add_table(item)
    return writer.close()


def floor_paq(folder: Path, out: Path) -> int:
    """paq with the package's parsers and rules (listed questions only, the first passage
    of each), joined from in-memory dicts and sets: what one process can afford (the
    passages alone are 13 GB at full scale)."""
    from pipelines.engine.formats import parse_json
    from pipelines.sources import paq

    passages: dict[str, str] = {}
    with _gzip_text(folder / "psgs_w100.tsv.gz") as stream:
        columns = paq.parse.passage_header(next(stream).rstrip("\n").split("\t"))
        for line in stream:
            parsed, _problem = paq.parse.parse_passage_line(line.rstrip("\n"), columns)
            if parsed is not None:
                passages.setdefault(*parsed)
    with open(folder / "PAQ.filtered.jsonl", encoding="utf-8") as stream:
        listed = {paq.parse.parse_filtered_line(parse_json(line))[0] for line in stream}
    writer = _Writer(out, paq.DATASET)
    source_file = "paq/PAQ.metadata.jsonl.gz"
    with _gzip_text(folder / "PAQ.metadata.jsonl.gz") as stream:
        for number, line in enumerate(stream, start=1):
            record, _reason, _detail = paq.parse.parse_metadata_line(parse_json(line))
            if record is None or record["question"] not in listed:
                continue
            for passage_id in paq.rules.choose_passages(record["passage_ids"], "first"):
                if passage_id in passages:
                    writer.add(record["question"], passages[passage_id], source_file=source_file,
                               record_id=f"line {number}, passage {passage_id}")
    return writer.close()

