"""StackExchange data dump: title/body, title/best-answer and duplicate-title pairs.

Files (under ``IN/stackexchange/``, as published on archive.org):
    ``<site>.7z``                       one archive per site, holding ``Posts.xml`` and
                                        ``PostLinks.xml`` (and tables we do not read)
    ``stackoverflow.com-Posts.7z``      stackoverflow.com, split into one archive per
    ``stackoverflow.com-PostLinks.7z``  table
    ``<site>/Posts.xml``                an unpacked site (also ``PostLinks.xml``); the
                                        files may be gzip/bz2/xz-compressed

Parse: ``Posts.xml`` and ``PostLinks.xml`` are streamed out of the archive, so memory
stays flat for StackOverflow's ~97 GB ``Posts.xml``, and read ``<row/>`` line by line when
laid out as the dumps write them (one row per line; see :class:`ReadDump`), else with lxml
``iterparse`` (elements cleared as they are read). Entity expansion, DTD loading and
network access are off. Both tag formats (``<a><b>`` and, since 2024, ``|a|b|``), the BOM, CRLF
and absent optional attributes are handled. The files are read by the engine's
:class:`pipelines.engine.read.ReadFiles` with :class:`ReadDump` as the parser of one file:
the engine opens the files and archive members (``Posts.xml``, and ``PostLinks.xml`` when
duplicate links are wanted; a file holding only ``PostLinks.xml`` is then not read at all),
cuts big unpacked tables in byte ranges, reports progress and records whole files that
cannot be used: ``unreadable_file`` (reading stopped, with the position), ``no_member``
(an archive holding none of them) and ``empty_file`` (no byte at all).

Pair rules (``docs/corpus-spec.md``), one function each:
    :func:`question_problem`    which questions qualify (title >= 20 characters, body
                                text 20..4,096 characters, Score >= 0)
    :func:`title_body_pair`     stackexchange_title_body: (title, body text)
    :func:`better_answer`       which answer is "best" (highest Score, ties: lowest Id)
    :func:`title_answer_pair`   stackexchange_title_answer: (title, best answer text)
    :func:`duplicate_pair`      stackexchange_duplicate_questions: (title, duplicate title)

stackexchange_title_body needs no join: its rule runs where the posts are read and its
rows leave the reader in Arrow tables (one Beam element per few thousand rows).
stackexchange_title_answer joins qualifying questions to their best answer with a
partitioned hash join (:class:`pipelines.engine.join.HashJoin`, keyed by
:func:`post_key` of ``(site, question id)``): answers leave the reader in tables, both
sides are spilled in runs by the hash of the key, and one task per hash range picks each
question's best answer (:func:`best_answers`) and pairs it, so memory stays bounded even
for StackOverflow's 35M answers. stackexchange_duplicate_questions joins the same way:
every question's title (as many as the questions) meets the two ends of each kept link
(:func:`title_link_ends`), and the few links then meet their titled ends in a Beam join
(:func:`pair_link`). No site is ever held in a dict, nor in the runner's shuffle.

Attribution (:mod:`.attribution`): every row carries the CC BY-SA version (``licence``), the
link (``attribution_url``: ``https://<site>/q/<id>`` or ``/a/<id>``) and the author
(``OwnerDisplayName``, else ``user <OwnerUserId>``) of the post whose text it holds: the
question, the best answer for stackexchange_title_answer, ``PostId`` for duplicates. The
version is the post's ``ContentLicense``, else follows from the later of its
``LastEditDate`` and ``CreationDate`` (2.5, 3.0 from 2011-04-08, 4.0 from 2018-05-02); a
record whose post's licence cannot be told is rejected as ``unknown_licence``.

Body text is HTML rendered as text (:func:`pipelines.corpus.normalize.html_to_text`): tags
removed, entities decoded (the original conversion only removed tags), whitespace
collapsed; the "Possible Duplicate" notice that closed questions start with is removed.

Subsets: every row carries its site as ``subset``; sites with fewer than 10,000 rows in a
dataset are pooled as ``small_stackexchanges`` (as in the reference mix), and each site
(or the pool) gets shards of its own. Documented per-site counts and weights are in
``reference_sites.json``.

Source options (``--source-option stackexchange.<key>=<value>``):
    ``exclude_tags``  comma-separated tags; questions carrying any of them are rejected.
    ``split_mb``      an unpacked, uncompressed ``Posts.xml`` or ``PostLinks.xml`` larger than
                      this (default 256; with several workers, larger than one block,
                      ``--block_bytes``) is read as byte ranges by several workers at once.

With several workers, every file is shared by all of them whatever its size or kind: an
unpacked table in byte ranges, an archive member or a compressed table inflated once by one
worker and cut into blocks of whole lines that all workers parse (the engine's
``cut_lines``), StackOverflow's solid ``Posts.xml`` included. A range or block is read
line by line as a whole table is; a line that is not a well-formed row, or text outside
the rows, is a ``malformed_row`` reject named by its byte offset or line number.

Input rows: besides the records, every row of the tables is counted, taken or skipped
with a reason (``accounting.count_input_rows``; manifest ``input_rows``): ``Posts.xml`` rows
that are no question or answer by their PostTypeId (``tag_wiki``, ``tag_wiki_excerpt``, ...),
answers when stackexchange_title_answer is not built (``answer_not_needed``), answers that
are not their question's best (``not_best_answer``) or whose question is absent or did not
qualify (``no_qualifying_question``), and ``PostLinks.xml`` links that are not duplicates
(``linked_not_duplicate``).
"""
from __future__ import annotations

import functools
import json
from importlib import resources

import apache_beam as beam

from pipelines.corpus.rejects import REJECTED
from pipelines.corpus.source import Source, SourceContext, SourceOutput, positive_float
from pipelines.engine import GatherTables, HashJoin, ReadFiles, as_tables, files

from .parse import ReadDump, _file_dataset, _links_only, dump_member
from .rules import (_ARCHIVE_NAME, _TABLES, ANSWERS, DEFAULT_SPLIT_MB, DUPLICATES, LINK_ENDS, QUESTIONS, TITLE_ANSWER,
                    TITLE_BODY, TITLES, MiB, _keep_first_link, answerable_question, link_ends, pair_link,
                    pair_with_best_answers, question_title, title_link_ends)



class StackExchange(Source):
    name = "stackexchange"
    counts_records = True
    folder = "stackexchange"
    datasets = (TITLE_BODY, TITLE_ANSWER, DUPLICATES)
    description = "StackExchange data dump (archive.org), one 7z per site"

    @property
    def _reference(self) -> dict:
        path = resources.files(__name__).joinpath("reference_sites.json")
        return json.loads(path.read_text("utf-8"))

    @property
    def pool_below(self) -> int:
        return self._reference["pool_below"]

    @property
    def pool_name(self) -> str:
        return self._reference["pool_name"]

    def subset_reference(self, dataset_id: str) -> dict:
        return self._reference.get(dataset_id, {})

    def find_tables(self, ctx: SourceContext) -> list[tuple[str, str, str]]:
        """The dump files to read, as ``(site, kind, path)``; kind is ``archive``,
        ``posts`` or ``postlinks``. Archives of other tables (stackoverflow.com-Users.7z)
        are skipped."""
        return [(site, kind, path) for site, kind, path, _size in self._tables(ctx)]

    def read_inputs(self, ctx: SourceContext, want_links: bool) -> list[tuple[str, tuple[str, str]]]:
        """The files :class:`ReadFiles` reads, as ``(path, (site, kind))``: every table of
        :meth:`find_tables`, but those holding only ``PostLinks.xml`` (an unpacked one,
        ``stackoverflow.com-PostLinks.7z``) when no duplicate links are wanted."""
        return [(path, (site, kind)) for site, kind, path in self.find_tables(ctx)
                if want_links or not _links_only(kind, path)]

    def _tables(self, ctx: SourceContext) -> list[tuple[str, str, str, int]]:
        found = []
        for path, size in files.list_dir(ctx.source_dir):
            relative = files.relative_to(path, ctx.source_dir)
            parts = relative.split("/")
            if len(parts) == 1:
                match = _ARCHIVE_NAME.match(parts[0])
                if match and (match.group("table") is None or match.group("table") in _TABLES):
                    found.append((match.group("site"), "archive", path, size))
            elif len(parts) == 2:
                table = parts[1].split(".")[0]
                if table in _TABLES and parts[1].startswith(f"{table}.xml"):
                    found.append((parts[0], _TABLES[table], path, size))
        return sorted(found)

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        sizes = dict(files.list_dir(ctx.source_dir))
        return [(path, sizes[path]) for _site, _kind, path in self.find_tables(ctx)]

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        want = set(ctx.datasets)
        want_links = DUPLICATES in want
        exclude = frozenset(t for t in ctx.option("exclude_tags", "").split(",") if t)
        split_bytes = int(ctx.option("split_mb", DEFAULT_SPLIT_MB, positive_float) * MiB)
        inputs = self.read_inputs(ctx, want_links)
        read = pipeline | "stackexchange/Read" >> ReadFiles(
            inputs, ReadDump(ctx, exclude), input_root=ctx.input_root,
            dataset=_file_dataset(want), strict=ctx.strict, members=functools.partial(dump_member, want_links),
            members_take_context=True, split_bytes=split_bytes, cut_lines=True,
            outputs=("questions", "answers", "links", "title_body_rows"))
        rows, rejects = {}, [read[REJECTED]]
        questions = read["questions"]

        if TITLE_BODY in want:
            rows[TITLE_BODY] = as_tables(read["title_body_rows"])
        if TITLE_ANSWER in want:
            qualifying = questions | f"{TITLE_ANSWER}/QualifyQuestions" >> beam.ParDo(
                GatherTables(QUESTIONS, answerable_question)).with_outputs(REJECTED, main="questions")
            rejects.append(qualifying[REJECTED])
            joined = (
                {"questions": as_tables(qualifying.questions), "answers": as_tables(read["answers"])}
                | f"{TITLE_ANSWER}/JoinBestAnswer" >> HashJoin(
                    pair_with_best_answers, keys={"questions": "key", "answers": "key"},
                    schemas={"questions": QUESTIONS, "answers": ANSWERS})
            )
            rows[TITLE_ANSWER] = joined.main
            rejects.append(joined[REJECTED])
        if DUPLICATES in want:
            unique = (
                read["links"]
                | f"{DUPLICATES}/KeyPairs" >> beam.Map(
                    lambda l: ((l["site"], *sorted((int(l["post"]), int(l["related"])))), l))
                | f"{DUPLICATES}/GroupPairs" >> beam.GroupByKey()
                | f"{DUPLICATES}/KeepFirstLink" >> beam.FlatMap(_keep_first_link)
                .with_outputs(REJECTED, main="links")
            )
            # Every question's title meets the ends of the links in a hash join (spilled: the
            # titles are as many as the questions); the few links then meet their two ends.
            titled = (
                {"titles": questions | f"{DUPLICATES}/Titles" >> beam.ParDo(GatherTables(TITLES, question_title)),
                 "ends": unique.links | f"{DUPLICATES}/Ends" >> beam.FlatMap(link_ends)
                 | f"{DUPLICATES}/EndTables" >> beam.ParDo(GatherTables(LINK_ENDS))}
                | f"{DUPLICATES}/JoinTitles" >> HashJoin(
                    title_link_ends, keys={"titles": "key", "ends": "key"},
                    schemas={"titles": TITLES, "ends": LINK_ENDS})
            )
            pairs = (
                {"link": unique.links | f"{DUPLICATES}/KeyLinks" >> beam.Map(lambda l: ((l["site"], l["id"]), l)),
                 "ends": titled.main | f"{DUPLICATES}/KeyEnds" >> beam.FlatMap(
                     lambda table: (((end["site"], end["link_id"]), end) for end in table.to_pylist()))}
                | f"{DUPLICATES}/JoinEnds" >> beam.CoGroupByKey()
                | f"{DUPLICATES}/Pair" >> beam.FlatMap(pair_link).with_outputs(REJECTED, main="rows")
            )
            rows[DUPLICATES] = pairs.rows
            rejects.extend([unique[REJECTED], titled[REJECTED], pairs[REJECTED]])
        # Titles are normalised and bodies rendered as normalised text where they are read.
        return SourceOutput(rows=rows, rejects=rejects, normalized=frozenset(rows))


SOURCE = StackExchange()
