"""PAQ (Probably Asked Questions): (generated question, Wikipedia passage) pairs.

Files (under ``IN/paq/``, as published at ``dl.fbaipublicfiles.com/paq/v1/``):
    ``PAQ.tar.gz``                  the question list; its member ``PAQ/PAQ.filtered.jsonl``
                                    is streamed out of the archive (``PAQ/LICENSE`` and
                                    other members are not read)
    ``PAQ.filtered.jsonl``          the same list unpacked (usually ``PAQ/PAQ.filtered.jsonl``)
    ``PAQ.metadata.jsonl.gz``       per question the passages it was generated from
    ``psgs_w100.tsv.gz``            the DPR Wikipedia passages (21M rows)

Every file may sit anywhere below ``IN/paq/``, plain or compressed (gzip, bzip2, xz, zstd:
sniffed from the bytes; ``.gz``/``.bz2``/``.xz``/``.zst`` after the name are allowed).
Other files are not inputs of this dataset and are not read: the subsets ``PAQ_L1``,
``PAQ_L4``, ``PAQ_NE1``, ``TQA_TRAIN_NQ_TRAIN_PAQ`` (other question lists),
``PAQ.unfiltered_metadata.jsonl.gz`` (questions that failed the consistency filter),
``PASSAGE_SCORES`` and licences. Exactly one file of each kind is read: an unpacked file
is preferred to a compressed one, a compressed one to the ``PAQ.tar.gz`` archive, then
the shortest path; every other candidate of that kind is recorded as a
``duplicate_input`` reject naming the file that was read. A required file that is
absent gives one ``missing_file`` reject and no rows (with ``--strict`` the run stops).

Parse:
    ``PAQ.filtered.jsonl``  NQ-open line format ``{"question": str, "answer": [str, ...]}``
                            (:func:`parse.parse_filtered_line`); it carries no passage id.
    ``PAQ.metadata.jsonl``  ``{"question", "subsets", "answer", "passage_score",
                            "answers": [{"passage_id", "offset", "text", "extractor"}]}``
                            (:func:`parse.parse_metadata_line`); passage ids are ints or
                            decimal strings and are compared as canonical decimal text.
    ``psgs_w100.tsv``       ``id \\t text \\t title``, read with ``csv`` quoting as DPR
                            itself reads it: the text field is wrapped in ``"`` with inner
                            quotes doubled (``"Aaron ( or ; ""Ahärôn"") is ..."``). One
                            passage is one line (DPR passages have no newline); a line whose
                            quote is never closed is rejected, not joined with the next.
                            The header line, when present, gives the column order (PAQ's
                            README lists title before text, DPR's header text before title);
                            without a header the order is DPR's
                            (:func:`parse.parse_passage_line`).
Questions are kept exactly as generated (lower case, no question mark); the passage is
its text without the title. Passage texts are normalised where they are read (once per
passage, not once per question using it), questions when they become rows; joins compare
the texts as read.

Pair rules, one function each:
    :func:`rules.question_is_candidate`  which metadata records are candidates: those
                                         whose question is in ``PAQ.filtered.jsonl``
                                         (option ``filtered_only``)
    :func:`rules.choose_passages`        which passage(s) of a question give a pair
                                         (option ``passages``)
    :func:`rules.question_passage_pair`  paq: (question, passage text)

Joins: the inputs are read into Arrow tables, each row keyed by a 64-bit key of what it
is joined on (:func:`pipelines.engine.join.text_key` of a question, :func:`parse.passage_key`
of a passage id: the id itself), and joined with
partitioned hash joins (:class:`pipelines.engine.join.HashJoin`): the filtered list
restricts the metadata by question (:func:`rules.select_candidates`), then questions meet
their passages by passage id (:func:`rules.pair_with_passages`). Every side is spilled in
runs and each task holds one hash range of it, so memory stays bounded whatever the input size;
psgs_w100.tsv (13 GB) is only ever streamed.

Documented count: 64,371,441 pairs (the model card) for 64,875,601 filtered questions.
One pair per filtered question (the defaults) gives about 64.9M, 0.8% above the card and
inside the dataset's 1% tolerance; the original conversion was never published, so the
remaining gap is reported, not tuned away.

Metadata records whose question is not in the filtered list are not candidates (the
filtered list *is* the dataset) and are skipped without a reject, even when they have no
usable passage id; passages no question points at are not candidates either. Every
candidate question ends as rows or as one reject: ``no_metadata`` (listed, but no
metadata record), ``no_passage`` / ``bad_passage_id`` (its record names no usable
passage), ``passage_missing`` (the id is not in psgs_w100.tsv). Lines that cannot be
parsed are rejected where they are read (``bad_json``, ``bad_encoding``,
``malformed_question``, ``malformed_passage``), and a passage id that occurs twice in
psgs_w100.tsv is used with its first line, the later ones being ``duplicate_passage_id``.
Records (:mod:`pipelines.corpus.accounting`): a record is one (question, passage) candidate,
i.e. a metadata record with one passage chosen by :func:`rules.choose_passages` (so one record
per metadata question with the default ``passages=first``). It ends as a pair or a
``passage_missing`` reject. What is decided before a passage is chosen is one record: a
metadata record without a usable passage id (``no_passage``, ``bad_passage_id``), a
listed question without metadata (``no_metadata``), and the skip
``not_in_filtered_list`` for a metadata record whose question is not in the filtered
list. Lines of the filtered list and of psgs_w100.tsv are not records, except those
rejected where they are read, which count as one record read and rejected each (as do
``duplicate_passage_id`` lines and the layout rejects).

Input rows (``accounting.count_input_rows``, manifest ``input_rows``): each row of the
lookup tables is counted once, in the join that meets it with its records. A passage of
``psgs_w100.tsv`` (:func:`rules.pair_with_passages`) is taken when a candidate question
names its id, else ``not_used``; a line repeating an id is taken, as its
``duplicate_passage_id`` record. Every line of ``PAQ.filtered.jsonl``
(:func:`rules.select_candidates`) is taken: it selects its question's metadata records, or
is a ``no_metadata`` record itself. A line rejected where it is read is taken, as a
record; the header of psgs_w100.tsv is no row.

Whole files are judged by the core's reader: ``no_member`` (a ``PAQ.tar.gz`` without
``PAQ.filtered.jsonl``), ``empty_file`` (no byte at all), ``unreadable_file``.

Source options (``--source-option paq.<key>=<value>``):
    ``filtered_only``   ``true`` (default): keep only metadata questions listed in
                        ``PAQ.filtered.jsonl``; ``false``: use every metadata record and
                        do not read the question list.
    ``passages``        ``first`` (default): the passage of the first entry of
                        ``answers``; ``all``: one pair per distinct passage id.

Modules: :mod:`.parse` finds and reads the files (line parsers, readers, the Arrow tables
they give), :mod:`.rules` holds the pair rules and the functions of the two joins; this
module builds the pipeline (:meth:`Paq.expand`).
"""
from __future__ import annotations

import functools

import apache_beam as beam

from pipelines.corpus.rejects import REJECTED, layout_rejects, make_reject
from pipelines.corpus.source import Source, SourceContext, SourceError, SourceOutput, parse_bool
from pipelines.engine import HashJoin, ReadFiles, files, tables

from .parse import (
    ARCHIVE,
    DATASET,
    FILTERED,
    LISTED,
    METADATA,
    METADATA_RECORDS,
    PASSAGE_TEXTS,
    PASSAGES,
    QUESTIONS,
    PaqInputs,
    find_inputs,
    is_filtered_member,
    read_input,
)
from .rules import PASSAGE_RULES, pair_with_passages, select_candidates


class Paq(Source):
    name = "paq"
    counts_records = True
    folder = "paq"
    datasets = (DATASET,)
    description = "PAQ generated questions joined to the DPR Wikipedia passages"

    def find(self, ctx: SourceContext) -> PaqInputs:
        return find_inputs([path for path, _size in files.list_dir(ctx.source_dir)])

    def _read_plan(self, ctx: SourceContext, filtered_only: bool) -> tuple[list, list[str]]:
        """The ``(kind, path)`` files to read, and the required files that are missing."""
        found = self.find(ctx)
        wanted = [(METADATA, found.metadata, "PAQ.metadata.jsonl.gz"),
                  (PASSAGES, found.passages, "psgs_w100.tsv.gz")]
        if filtered_only:
            wanted.append((found.questions_kind, found.questions, "PAQ.tar.gz or PAQ.filtered.jsonl"))
        plan = [(kind, path) for kind, path, _name in wanted if path]
        missing = [name for _kind, path, name in wanted if not path]
        return plan, missing

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        plan, _missing = self._read_plan(ctx, ctx.option("filtered_only", True, parse_bool))
        sizes = dict(files.list_dir(ctx.source_dir))
        return sorted((path, sizes[path]) for _kind, path in plan)

    def _layout_rejects(self, ctx: SourceContext, missing: list[str]) -> list[dict]:
        """``missing_file`` for each required file that is absent (with ``--strict`` the
        run stops instead) and ``duplicate_input`` for each copy of an input not read."""
        notes = []
        for name in missing:
            detail = (f"{name} not found under {ctx.relative(ctx.source_dir)}/; "
                      "PAQ pairs need the metadata, the passages and (unless "
                      "paq.filtered_only=false) the filtered question list")
            if ctx.strict:
                raise SourceError(detail)
            notes.append(make_reject(DATASET, "missing_file", source_file=f"{self.folder}/{name}",
                                     detail=detail))
        for ignored, chosen in self.find(ctx).duplicates:
            notes.append(make_reject(DATASET, "duplicate_input", source_file=ctx.relative(ignored),
                                     detail=f"{ctx.relative(ignored)} is another copy of an input; "
                                            f"only {ctx.relative(chosen)} is read"))
        return notes

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        filtered_only = ctx.option("filtered_only", True, parse_bool)
        rule = ctx.option("passages", "first", choices=PASSAGE_RULES)
        plan, missing = self._read_plan(ctx, filtered_only)
        rejects = [layout_rejects(pipeline, "paq/LayoutRejects", self._layout_rejects(ctx, missing))]
        if missing:
            rows = pipeline | "paq/NoRows" >> beam.Create([])
            return SourceOutput(rows={DATASET: rows}, rejects=rejects)
        paths = dict(plan)

        # Each input is one compressed stream (the metadata alone 16 GB of gzip): with
        # several workers each is cut into blocks by one of them and the blocks are parsed
        # by all. The inputs are read in one step, so that the workers cut them at once.
        questions_kind = FILTERED if FILTERED in paths else ARCHIVE
        kinds = (METADATA, PASSAGES) + ((questions_kind,) if filtered_only else ())
        read = pipeline | "paq/ReadInputs" >> ReadFiles(
            [(paths[kind], kind) for kind in kinds], read_input, input_root=ctx.input_root,
            dataset=DATASET, strict=ctx.strict, members=is_filtered_member, outputs=kinds,
            cut_lines=True)
        rejects.append(read[REJECTED])
        metadata, passages = read[METADATA], read[PASSAGES]
        choose = functools.partial(select_candidates, filtered_only=filtered_only, rule=rule)
        if filtered_only:
            listed = read[questions_kind]
            candidates = (
                {"listed": listed, "metadata": metadata}
                | "paq/KeepListed" >> HashJoin(
                    choose, keys={"listed": "key", "metadata": "key"},
                    schemas={"listed": LISTED, "metadata": METADATA_RECORDS}))
        else:
            # Without the list every metadata record is a candidate: no join needed.
            candidates = metadata | "paq/CheckMetadata" >> tables(beam.FlatMap(
                lambda table: choose({"listed": LISTED.empty_table(), "metadata": table}))
            ).with_outputs(REJECTED, main="main")
        rejects.append(candidates[REJECTED])
        passage_file = ctx.relative(next(path for kind, path in plan if kind == PASSAGES))
        joined = (
            {"questions": candidates.main, "passages": passages}
            | "paq/JoinPassages" >> HashJoin(
                functools.partial(pair_with_passages, passage_file=passage_file),
                keys={"questions": "key", "passages": "key"},
                schemas={"questions": QUESTIONS, "passages": PASSAGE_TEXTS}))
        rejects.append(joined[REJECTED])
        # Texts are normalised where they are read (a passage once, not once per question).
        return SourceOutput(rows={DATASET: joined.main}, rejects=rejects, normalized=frozenset({DATASET}))


SOURCE = Paq()
