"""MS MARCO passage ranking: (query, relevant passage, hard-negative passage) triplets.

Files (under ``IN/msmarco/``, as published on msmarco.z22.web.core.windows.net and the
Hugging Face hub; each may be plain or gzip/bz2/xz/zstd-compressed, which is sniffed from
the bytes, never taken from the name):

    ``collection.tsv``                   ``pid \\t passage`` (8,841,823 passages), or
    ``collection.tar.gz``                the archive holding ``collection.tsv``
    ``queries.train.tsv``                ``qid \\t query`` (808,731 train queries), or
    ``queries.tar.gz``                   the archive with train, dev and eval queries; only
                                         ``queries.train.tsv`` is read (dev and eval queries
                                         are not candidates and are skipped unread)
    ``qrels.train.tsv``                  TREC qrels ``qid 0 pid 1`` (532,761 judgements)
    ``msmarco-hard-negatives.jsonl.gz``  one JSON object per judged query:
                                         ``{"qid": int, "pos": [pid, ...], "neg": {system:
                                         [pid, ...], ...}}``, up to 50 pids per mining system
    ``qidpidtriples.train.full.2.tsv``   ``qid \\t positive pid \\t negative pid``
                                         (269,919,004 BM25 triples; ``.gz`` as published)
    ``triples.train.small.tsv``          ``query \\t positive text \\t negative text``, or
                                         ``triples.train.small.tar.gz`` holding it

When one kind of file is there twice (``collection.tsv`` beside ``collection.tar.gz``),
the unpacked one is read. ``qrels.dev.tsv``, ``queries.dev.tsv`` and other files are not
candidates and are not read. The companion ``cross-encoder-ms-marco-MiniLM-L-6-v2-scores
.pkl.gz`` (cross-encoder scores used by sentence-transformers to drop false negatives) is
never opened, even when present: it is a Python pickle, and unpickling a downloaded file
can execute arbitrary code. Its role is taken by the qrels check and by spreading the
choice of negatives over the mined lists (see :func:`rules.select_hard_negatives`).

Which negatives (option ``negatives``; the default ``auto`` takes the first one present):
    1. ``hard_negatives``  ``msmarco-hard-negatives.jsonl.gz``: negatives mined by 13
                           retrieval systems, the kind the sentence-transformers MS MARCO
                           training scripts use (the reference file name
                           ``msmarco-query_passage_negative_v2`` points the same way;
                           how it was built is not published);
    2. ``qidpidtriples``   the official BM25 triples;
    3. ``triples_small``   the official text triples (a subset of the BM25 triples with the
                           texts already filled in; no join, collection/queries not read).
Only the chosen input is read, so no triplet is ever produced twice.

Parse: TSV lines are split on TAB (passages never hold TAB or newline); ids must be
integers. Query text is stripped (some queries start with a space). Every passage text,
from ``collection.tsv`` and in ``triples.train.small.tsv``, is repaired with
:func:`parse.repair_mojibake` (the release is UTF-8 that was decoded as Latin-1 and encoded
again). Query text has no such damage and is left as it is.

Qrels: ``qrels.train.tsv`` (optional) names the passages judged relevant for each query.
They are never used as negatives: with the hard-negatives file they leave the candidate
pool (as the line's own ``pos`` do); with ``qidpidtriples`` a kept triple whose negative
is judged relevant is rejected. Positives come from the negatives input itself (``pos``
of the line, second column of the triple), which upstream built from these qrels.

Joins: the id inputs are joined by id, never with dicts. The id files are read as Arrow
tables (:func:`pipelines.engine.read.tsv_tables`) and joined with partitioned hash joins
(:class:`pipelines.engine.join.HashJoin`: every side spilled in runs sorted by the
hash of its id, one task per hash range joining its share with pyarrow): BM25 triples
with the qrels and the query texts by qid (the per-query cap applied there, vectorised),
then the passage text by negative pid and, last, by positive pid (so that the rows of one
query and relevant passage leave one join task together: the sink stores their repeated
texts once per run batch). The hard-negatives lines are
joined with the qrels by a Beam ``CoGroupByKey`` (one element per query) before they
become triplet tables, which then meet the query texts by qid. A text is attached by
position (``index_in`` and ``take``), so the columns already joined are never copied
again. Memory is bounded by a run buffer and one task's share. Big plain files are read in
byte ranges (option ``split_mb``); with several workers, archives and compressed files are
read through by one worker, which cuts them into blocks of whole lines (``split_mb`` each)
that all workers parse (see :class:`pipelines.engine.read.ReadFiles`).

Pair rules (one function each):
    :func:`rules.select_hard_negatives`  which (positive, negative) pids one query of the
                                         hard-negatives file gives
    :func:`rules.selection_key`          the deterministic order used to choose among
                                         candidates
    :func:`rules.keep_per_query`         how many BM25 / text triples a query keeps
    :func:`rules.triplet_row`            the row: (query text, positive text, negative text)

Documented count: 17,579,773 triplets (model card). The hard-negatives file has about
532,751 (query, positive) pairs (per-system triplet uploads of its lists on the HF hub
hold at most 26,637,550 = 532,751 x 50 rows; qrels.train has 532,761), so the default of 33 negatives per (query, positive) gives about 532,751 x 33 = 17,580,783
(+0.006%); queries or passages missing from the inputs lower it. With
``qidpidtriples``, 35 triples per query (17.58M / ~500k judged queries) gives about
35 x the number of queries in the file; with ``triples_small`` it is 35 x its queries.

Rejects (dataset ``msmarco_triplets``): ``malformed_line`` (wrong column count or an id
that is not an integer), ``bad_encoding``, ``bad_json``, ``not_an_object``,
``malformed_record`` (a hard-negatives line with missing fields or wrong types),
``no_positive`` (a hard-negatives line whose ``pos`` is empty), ``no_negative`` (no
candidate left after removing the query's positives), ``negative_is_positive`` (a BM25
triple whose negative is judged relevant in the qrels), ``duplicate_query_line`` (a
second hard-negatives line for one qid; the first in the file is used),
``query_missing``, ``positive_missing``, ``negative_missing`` (an id not found in
queries / collection), ``duplicate_query_id`` / ``duplicate_passage_id`` (an id given
twice with different texts: the triplets using it are rejected rather than guessing),
``blank_file`` (a file of blank lines only); and from the core's reader ``empty_file`` (no
byte at all), ``no_member`` (an archive without the expected member) and
``unreadable_file``. Candidates beyond the per-query or per-positive cap are not
rejects: the rule makes them non-candidates (for the triples files the Beam counters
``msmarco/triples_read`` and ``msmarco/triples_kept`` show how many). A triple repeated
verbatim in a triples file is one candidate (the first line stands for it).

Records (:mod:`pipelines.corpus.accounting`): a record is one triplet candidate.
    ``hard_negatives``  each (positive, negative) of a line's candidate pool (its
                        positives times the mined negatives left once the relevant
                        passages are removed); those :func:`rules.select_hard_negatives` does
                        not take are the skip ``beyond_positive_cap``. A line that gives
                        no candidate is one record: ``no_positive``, ``no_negative``,
                        ``duplicate_query_line`` or a parse reject.
    ``qidpidtriples``,  each line of the triples file; those :func:`rules.keep_per_query` does
    ``triples_small``   not keep are the skip ``beyond_query_cap`` (a verbatim repeat of a
                        kept triple is counted there too).
A kept candidate ends as a row or one reject (``negative_is_positive``, ``*_missing``,
``duplicate_*_id``). Lines of collection, queries and qrels are not records, except a
line rejected where it is read, which is one record read and rejected.

Input rows (``accounting.count_input_rows``, manifest ``input_rows``): each row of the
lookup tables ``collection.tsv`` and ``queries.train.tsv`` is counted once, in the join
that first meets it (:func:`~pipelines.corpus.accounting.count_lookup_rows`): taken when
a triplet reaching that join names its id, else ``not_used``. Queries are named by the
triples of the file, or by the triplets chosen from the hard-negatives lines; passages by
the positive or negative of a triplet not rejected for its query or by the qrels (the
negative join counts them, the triplets' positives being a side of it). A line rejected where it is read is taken, as a
record. Each line of ``qrels.train.tsv`` is counted where it is read: taken when it judges
the passage relevant, else ``judged_not_relevant``. ``triples_small`` reads none of the
three.

Source options (``--source-option msmarco.<key>=<value>``):
    ``negatives``               ``auto`` | ``hard_negatives`` | ``qidpidtriples`` |
                                ``triples_small`` (default ``auto``)
    ``systems``                 mining systems of the hard-negatives file to draw from,
                                comma-separated, or ``all`` (default ``all``)
    ``negatives_per_positive``  negatives per (query, positive) from the hard-negatives
                                file (default 33)
    ``triples_per_query``       triples kept per query from ``qidpidtriples`` or
                                ``triples_small`` (default 35)
    ``seed``                    salt of :func:`rules.selection_key`: another value draws
                                another (equally deterministic) choice (default empty)
    ``split_mb``                ``collection.tsv``, ``queries.train.tsv``, ``qrels.train.tsv``
                                and ``qidpidtriples.train.full.2.tsv`` stored unpacked and
                                uncompressed and larger than this (default 16) are read
                                as byte ranges by several workers at once (a malformed
                                line in a range is named by its number after the range's
                                first byte); with several workers, archives and compressed
                                files are cut into blocks of this size (lines keep their
                                numbers in the file)

Modules: :mod:`.parse` reads the files (one reader per kind of input, the Arrow schemas of
the id files), :mod:`.rules` holds the pair rules, :mod:`.joins` the functions of the joins;
this module finds the inputs and builds the pipeline (:meth:`MsMarco.expand`).
"""
from __future__ import annotations

import functools
import posixpath

import apache_beam as beam
import pyarrow as pa

from pipelines.corpus.rejects import REJECTED
from pipelines.corpus.source import (
    Source,
    SourceContext,
    SourceError,
    SourceOutput,
    positive_float,
    positive_int,
)
from pipelines.engine import GatherTables, HashJoin, ReadFiles, files, tables

from .joins import _JOINS, _hard_negative_triplets, join_text, select_triples, triplet_rows
from .parse import (
    _ARCHIVE_SUFFIXES,
    _FILE_NAMES,
    _TABLE_KINDS,
    COLLECTION,
    DATASET,
    DEFAULT_SPLIT_MB,
    HARD_NEGATIVES,
    ID_TRIPLES,
    JUDGED,
    NEGATIVE_INPUTS,
    PASSAGES,
    POSITIVE_IDS,
    QIDPIDTRIPLES,
    QRELS,
    QUERIES,
    QUERY_TEXTS,
    TRIPLES_SMALL,
    MiB,
    is_member_of,
    read_id_file,
    read_input,
)
from .rules import (
    DEFAULT_NEGATIVES_PER_POSITIVE,
    DEFAULT_TRIPLES_PER_QUERY,
    _count_kept,
    _KeyCandidates,
    _SmallestDistinctCounted,
    _text_triplets,
    triplet_row,
)


class MsMarco(Source):
    name = "msmarco"
    counts_records = True
    folder = "msmarco"
    datasets = (DATASET,)
    description = "MS MARCO passage ranking: query, relevant passage, hard-negative passage"

    # -- inputs ------------------------------------------------------------------------
    def find_inputs(self, ctx: SourceContext) -> dict[str, str]:
        """The file read for each kind present: ``{kind: path}``. Unpacked files win over
        archives, then the shorter and alphabetically first name."""
        found: dict[str, list[str]] = {}
        for path, _size in files.list_dir(ctx.source_dir):
            base = posixpath.basename(path)
            for kind, pattern in _FILE_NAMES.items():
                if pattern.match(base):
                    found.setdefault(kind, []).append(path)
        return {kind: sorted(paths, key=lambda p: (posixpath.basename(p).endswith(_ARCHIVE_SUFFIXES),
                                                   len(p), p))[0]
                for kind, paths in found.items()}

    def negatives_input(self, ctx: SourceContext, found: dict[str, str]) -> str:
        """The negatives input this run reads (option ``negatives``)."""
        choice = ctx.option("negatives", "auto", choices=("auto", *NEGATIVE_INPUTS))
        if choice == "auto":
            present = [kind for kind in NEGATIVE_INPUTS if kind in found]
            if not present:
                raise SourceError(f"no negatives input under {ctx.source_dir}/: expected "
                                   "msmarco-hard-negatives.jsonl.gz, qidpidtriples.train.full.2.tsv(.gz) "
                                   "or triples.train.small.tsv (or .tar.gz)")
            choice = present[0]
        elif choice not in found:
            raise SourceError(f"msmarco.negatives={choice}: its file is not under {ctx.source_dir}/")
        if choice != TRIPLES_SMALL:
            absent = [name for kind, name in ((COLLECTION, "collection.tsv (or collection.tar.gz)"),
                                              (QUERIES, "queries.train.tsv (or queries.tar.gz)"))
                      if kind not in found]
            if absent:
                raise SourceError(f"msmarco ({choice}) needs {' and '.join(absent)} under "
                                   f"{ctx.source_dir}/ to turn ids into texts")
        return choice

    def _read_plan(self, ctx: SourceContext) -> tuple[str, list[tuple[str, str]]]:
        found = self.find_inputs(ctx)
        choice = self.negatives_input(ctx, found)
        kinds = [choice] if choice == TRIPLES_SMALL else [COLLECTION, QUERIES, QRELS, choice]
        return choice, [(kind, found[kind]) for kind in kinds if kind in found]

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        sizes = dict(files.list_dir(ctx.source_dir))
        return [(path, sizes[path]) for _kind, path in self._read_plan(ctx)[1]]

    # -- pipeline ----------------------------------------------------------------------
    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        choice, plan = self._read_plan(ctx)
        seed = ctx.option("seed", "")
        per_query = _positive_option(ctx, "triples_per_query", DEFAULT_TRIPLES_PER_QUERY)
        read, rejects = self._read(pipeline, ctx, plan)

        if choice == TRIPLES_SMALL:
            rows = (
                read[TRIPLES_SMALL]
                | "msmarco/KeyTextTriples" >> beam.ParDo(_KeyCandidates(seed))
                | "msmarco/KeepPerQuery" >> beam.CombinePerKey(_SmallestDistinctCounted(per_query))
                | "msmarco/CountKept" >> beam.Map(_count_kept)
                | "msmarco/TextTriplets" >> beam.FlatMap(_text_triplets)
                | "msmarco/Row" >> beam.Map(triplet_row)
            )
            return SourceOutput(rows={DATASET: rows}, rejects=rejects)

        no_tables = pipeline | "msmarco/NoQrels" >> beam.Create([])
        judged = read.get(QRELS, no_tables)
        if choice == HARD_NEGATIVES:
            systems = _systems_option(ctx)
            per_positive = _positive_option(ctx, "negatives_per_positive", DEFAULT_NEGATIVES_PER_POSITIVE)
            judged_pairs = judged | "msmarco/JudgedPairs" >> beam.FlatMap(
                lambda table: zip(table["qid"].to_pylist(), table["pid"].to_pylist()))
            selected = (
                {"line": read[HARD_NEGATIVES], "judged": judged_pairs}
                | "msmarco/JoinQrels" >> beam.CoGroupByKey()
                | "msmarco/SelectNegatives" >> beam.FlatMap(
                    _hard_negative_triplets, systems, per_positive, seed)
                .with_outputs(REJECTED, main="triplets")
            )
            triplets = selected.triplets | "msmarco/TripletTables" >> tables(beam.ParDo(
                GatherTables(ID_TRIPLES, rows_per_table=1 << 16)))
        else:
            # Triples, qrels and query texts are all keyed by qid: one join selects the
            # triples and gives them their query text.
            selected = (
                {"triples": read[QIDPIDTRIPLES], "judged": judged, "texts": read[QUERIES]}
                | "msmarco/KeepPerQuery" >> HashJoin(
                    functools.partial(select_triples, per_query=per_query, seed=seed),
                    keys={"triples": "qid", "judged": "qid", "texts": "qid"},
                    schemas={"triples": ID_TRIPLES, "judged": JUDGED, "texts": QUERY_TEXTS})
            )
            triplets = selected.main
        rejects.append(selected[REJECTED])

        schema = ID_TRIPLES
        # The relevant passage last: a task of that join holds every triplet of its
        # (query, positive) pairs, so they reach the sink side by side, which stores their
        # repeated texts once per run batch (spill.elide_repeats). The passages are
        # spilled by the first join that takes them and reused by the second.
        steps = ["negative", "positive"]
        if choice == HARD_NEGATIVES:
            steps.insert(0, "query")
        else:
            schema = schema.append(pa.field("query", pa.string()))
        texts_of = {"query": (read.get(QUERIES), "qid", QUERY_TEXTS), "passage": (read[COLLECTION], "pid", PASSAGES)}
        spilled_passages = None
        for step in steps:
            id_field, text_field = _JOINS[step][:2]
            label = step.capitalize()
            texts, text_key, text_schema = texts_of["query" if step == "query" else "passage"]
            reuse = step != "query" and spilled_passages is not None
            sides = {"triplets": triplets, "texts": spilled_passages if reuse else texts}
            keys = {"triplets": id_field, "texts": text_key}
            schemas = {"triplets": schema, "texts": text_schema}
            if step == "negative":
                # The collection's rows are counted in this join (join_text): a passage named
                # only as a positive must meet its triplets here too, by pid.
                sides["positives"], keys["positives"], schemas["positives"] = triplets, "pos", POSITIVE_IDS
            joined = (
                sides
                | f"msmarco/Join{label}" >> HashJoin(
                    functools.partial(join_text, step=step), keys=keys, schemas=schemas,
                    spilled=("texts",) if reuse else ())
            )
            if step != "query":
                spilled_passages = joined.spilled["texts"]
            schema = schema.append(pa.field(text_field, pa.string()))
            rejects.append(joined[REJECTED])
            triplets = joined.main
        rows = triplets | "msmarco/Rows" >> tables(beam.Map(triplet_rows))
        # Texts are normalised where they are read (a passage once, not once per triplet).
        return SourceOutput(rows={DATASET: rows}, rejects=rejects, normalized=frozenset({DATASET}))

    @staticmethod
    def _read(pipeline, ctx: SourceContext, plan: list[tuple[str, str]]) -> tuple[dict, list]:
        """The records of each kind of ``plan`` (``{kind: PCollection}``) and the rejects of
        reading them (a list of PCollections).

        The id files (collection, queries, qrels, qidpidtriples: Arrow tables) are read in
        one step, each table tagged with its kind, so that the workers share all their
        byte ranges: read one step per kind, a worker waited while the other read the
        small queries or qrels file alone. Big plain ones are read in byte ranges (option
        ``split_mb``); with several workers, archives and compressed files are cut into
        blocks. The hard-negatives and ``triples_small`` files are read in a step of their own.
        """
        split_mb = ctx.option("split_mb", DEFAULT_SPLIT_MB, positive_float)
        split_bytes = int(split_mb * MiB)
        records, rejects = {}, []
        id_files = [(path, kind) for kind, path in plan if kind in _TABLE_KINDS]
        if id_files:
            result = pipeline | "msmarco/ReadIdFiles" >> ReadFiles(
                id_files, read_id_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict,
                members=is_member_of, members_take_context=True,
                outputs=tuple(kind for _path, kind in id_files), split_bytes=split_bytes,
                cut_lines=True, cut_bytes=split_bytes)
            records.update({kind: result[kind] for _path, kind in id_files})
            rejects.append(result[REJECTED])
        for kind, path in plan:
            if kind in _TABLE_KINDS:
                continue
            result = pipeline | f"msmarco/Read{kind.title().replace('_', '')}" >> ReadFiles(
                [(path, kind)], read_input, input_root=ctx.input_root, dataset=DATASET,
                strict=ctx.strict, members=functools.partial(is_member_of, kind),
                cut_lines=True, cut_bytes=split_bytes)
            records[kind] = result.records
            rejects.append(result[REJECTED])
        return records, rejects


def _positive_option(ctx: SourceContext, key: str, default: int) -> int:
    return ctx.option(key, default, positive_int)


def _system_names(value: str) -> tuple[str, ...] | None:
    value = value.strip()
    if value == "all":
        return None
    systems = tuple(sorted({s.strip() for s in value.split(",") if s.strip()}))
    if not systems:
        raise ValueError("expected 'all' or comma-separated system names")
    return systems


def _systems_option(ctx: SourceContext) -> tuple[str, ...] | None:
    return ctx.option("systems", None, _system_names)


SOURCE = MsMarco()
