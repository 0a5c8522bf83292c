"""StackExchange data dump: title/body, title/best-answer and duplicate-title pairs.

Files (under ``IN/stackexchange/``, as published on archive.org):
    ``<site>.7z``                       one archive per site, holding ``Posts.xml`` and
                                        ``PostLinks.xml`` (and tables we do not read)
    ``stackoverflow.com-Posts.7z``      stackoverflow.com, split into one archive per
    ``stackoverflow.com-PostLinks.7z``  table
    ``<site>/Posts.xml``                an unpacked site (also ``PostLinks.xml``); the
                                        files may be gzip/bz2/xz-compressed

Parse: ``Posts.xml`` and ``PostLinks.xml`` are streamed out of the archive and parsed
row by row with lxml ``iterparse`` (elements cleared as they are read), so memory stays
flat for StackOverflow's ~97 GB ``Posts.xml``. Entity expansion, DTD loading and network
access are off. Both tag formats (``<a><b>`` and, since 2024, ``|a|b|``), the BOM, CRLF
and absent optional attributes are handled.

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
for StackOverflow's 35M answers. Duplicate links meet both titles in Beam joins keyed by
``(site, post id)``. No site is ever held in a dict.

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
                      this (default 256) is read as byte ranges by several workers at once,
                      each ``<row/>`` line parsed on its own (the dumps write one row per
                      line); a line that is not a well-formed row is a ``malformed_row``
                      reject. Archives and compressed files are always read whole: unpack
                      StackOverflow's ``Posts.xml`` once to spread it over many workers.
"""
from __future__ import annotations

from typing import Iterator

import json
import posixpath
import re
from importlib import resources

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from pipelines.corpus import accounting
from pipelines.engine import files, progress
from pipelines.corpus.normalize import html_to_text, normalize_text
from pipelines.engine.readers import byte_ranges, iter_xml_elements, lines_in_range
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.engine.join import GatherTables, HashJoin, as_tables, spill_runs, text_key
from pipelines.corpus.schema import RowTables, make_row, records_table, row_arrow_schema
from pipelines.corpus.source import Source, SourceContext, SourceOutput, positive_float

TITLE_BODY = "stackexchange_title_body"
TITLE_ANSWER = "stackexchange_title_answer"
DUPLICATES = "stackexchange_duplicate_questions"

MIN_TITLE_CHARS = 20
MIN_BODY_CHARS = 20
MAX_BODY_CHARS = 4096
MIN_SCORE = 0
DUPLICATE_LINK_TYPE = "3"
QUESTION, ANSWER = "1", "2"
# Excerpt of a rule-rejected question kept in the dead-letter output (the record id and
# file find the full post again; keeping whole bodies would double StackOverflow's size).
RULE_REJECT_EXCERPT_CHARS = 300

_ARCHIVE_NAME = re.compile(r"^(?P<site>.+?)(?:-(?P<table>[A-Z][A-Za-z]+))?\.7z$")
_TABLES = {"Posts": "posts", "PostLinks": "postlinks"}
_DUPLICATE_NOTICE = re.compile(
    r"^\s*<blockquote>\s*(?:<div>\s*)?<p>\s*<strong>\s*(?:Possible Duplicates?|"
    r"This question already has (?:an )?answers? here)\s*:?\s*</strong>.*?</blockquote>",
    re.S | re.I)


# -- parsing ---------------------------------------------------------------------------

def parse_tags(tags: str | None) -> list[str]:
    """Tags of a question in either dump format: ``<a><b>`` (to 2023) or ``|a|b|`` (2024)."""
    if not tags:
        return []
    return re.findall(r"<([^>]+)>", tags) or [t for t in tags.split("|") if t]


def body_text(body_html: str | None) -> str:
    """Text of a post body: the "Possible Duplicate" notice removed, then HTML to text."""
    if not body_html:
        return ""
    return html_to_text(_DUPLICATE_NOTICE.sub("", body_html, count=1))


POST_FIELDS = ("Id", "PostTypeId", "ParentId", "Score", "Title", "Body", "Tags")
# Unpacked Posts.xml / PostLinks.xml larger than this are read in parallel byte ranges.
DEFAULT_SPLIT_MB = 256.0
MiB = 1 << 20
# One <row/> line: no DTD can be declared in it, entities are not resolved, nothing fetched.
_ROW_LINE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                   huge_tree=True)
LINK_FIELDS = ("Id", "PostId", "RelatedPostId", "LinkTypeId")


def iter_rows(stream, fields: tuple[str, ...] | None = None,
              where: tuple[str, frozenset] | None = None) -> Iterator[dict]:
    """Yield the attribute dict of every ``<row/>`` of a dump table (only ``fields`` when
    given; only rows whose attribute ``where[0]`` is in ``where[1]`` when given), streaming
    and safely (see :func:`pipelines.engine.readers.iter_xml_elements`)."""
    return iter_xml_elements(stream, "row", fields, where)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- pair rules ------------------------------------------------------------------------

def question_problem(title: str, body: str, score: int) -> str | None:
    """Why a question does not qualify, or ``None`` when it does.

    Rule of the original conversion script: the title has at least 20 characters, the
    body text 20 to 4,096 characters, and the Score is at least 0. Lengths are counted
    after normalisation (HTML rendered as text, whitespace collapsed).
    """
    if len(title) < MIN_TITLE_CHARS:
        return "title_too_short"
    if len(body) < MIN_BODY_CHARS:
        return "body_too_short"
    if len(body) > MAX_BODY_CHARS:
        return "body_too_long"
    if score < MIN_SCORE:
        return "negative_score"
    return None


def title_body_pair(question: dict) -> dict:
    """stackexchange_title_body: (question title, question body text). (Counted as paired
    when its table of rows leaves the reader.)"""
    return make_row(TITLE_BODY, question["title"], question["body"], subset=question["site"],
                    source_file=question["source_file"], record_id=question["id"])


def better_answer(a: dict, b: dict) -> dict:
    """The better of two answers of one question: the higher Score; on a tie the one
    first in the file, i.e. the lower Id."""
    if a["score"] != b["score"]:
        return a if a["score"] > b["score"] else b
    return a if int(a["id"]) < int(b["id"]) else b


def title_answer_pair(question: dict, answer: dict) -> dict:
    """stackexchange_title_answer: (question title, text of its best answer)."""
    accounting.count_paired(TITLE_ANSWER)
    return make_row(TITLE_ANSWER, question["title"], body_text(answer["body"]),
                    subset=question["site"], source_file=answer["source_file"],
                    record_id=f"{question['id']}/{answer['id']}")


# stackexchange_title_answer's join sides, keyed by the 64-bit key of (site, question id)
# (:func:`post_key`): answers as read, qualifying questions with what a reject shows.
ANSWERS = pa.schema([("key", pa.int64()), ("site", pa.string()), ("parent", pa.int64()),
                     ("id", pa.string()), ("id_number", pa.int64()), ("score", pa.int64()),
                     ("body", pa.string()), ("source_file", pa.string())])
QUESTIONS = pa.schema([("key", pa.int64()), ("site", pa.string()), ("qid", pa.int64()),
                       ("id", pa.string()), ("title", pa.string()), ("score", pa.int64()),
                       ("body_excerpt", pa.string()), ("source_file", pa.string())])


def post_key(site: str, post_id: int) -> int:
    """Join key of a post of a site (:func:`pipelines.engine.join.text_key`)."""
    return text_key(f"{site}\t{post_id}")


def best_answers(answers: pa.Table) -> pa.Table:
    """The best answer of each question (:func:`better_answer`: the higher Score, then the
    lower Id) among ``answers`` (an :data:`ANSWERS` table), vectorised."""
    ordered = answers.sort_by([("site", "ascending"), ("parent", "ascending"), ("score", "descending"),
                               ("id_number", "ascending")])
    if ordered.num_rows < 2:
        return ordered
    site, parent = ordered["site"].combine_chunks(), ordered["parent"].combine_chunks()
    changed = pc.or_(pc.not_equal(site[1:], site[:-1]), pc.not_equal(parent[1:], parent[:-1]))
    return ordered.filter(pa.concat_arrays([pa.array([True]), changed]))


def pair_with_best_answers(tables: dict):
    """:class:`HashJoin` function of stackexchange_title_answer: every qualifying question
    of the task with its best answer (:func:`title_answer_pair`), or ``no_answer``.

    Args:
        tables: ``{"questions": QUESTIONS, "answers": ANSWERS}``.
    """
    questions = tables["questions"]
    if questions.num_rows == 0:
        return
    best = best_answers(tables["answers"]).select(["site", "parent", "id", "body", "source_file"])
    best = best.rename_columns(["site", "qid", "answer_id", "answer_body", "answer_file"])
    joined = questions.join(best, keys=["site", "qid"], join_type="left outer", use_threads=False)
    found = pc.is_valid(joined["answer_id"])
    for question in joined.filter(pc.invert(found)).to_pylist():
        yield rejected(TITLE_ANSWER, "no_answer", source_file=question["source_file"],
                       record_id=question["id"], excerpt={"title": question["title"],
                                                          "body": question["body_excerpt"],
                                                          "score": question["score"]},
                       detail="qualifying question without any answer in the dump")
    paired = joined.filter(found).sort_by([("site", "ascending"), ("qid", "ascending")])
    if paired.num_rows:
        yield records_table([title_answer_pair(
            {"site": row["site"], "id": row["id"], "title": row["title"]},
            {"id": row["answer_id"], "body": row["answer_body"], "source_file": row["answer_file"]})
            for row in paired.to_pylist()], row_arrow_schema())


def answerable_question(question: dict):
    """A :data:`QUESTIONS` record of a question that qualifies for
    stackexchange_title_answer, or its reject."""
    reject = question_reject(question, TITLE_ANSWER)
    if reject is not None:
        return reject
    qid = int(question["id"])
    return {"key": post_key(question["site"], qid), "site": question["site"], "qid": qid,
            "id": question["id"], "title": question["title"], "score": question["score"],
            "body_excerpt": question["body"][:RULE_REJECT_EXCERPT_CHARS],
            "source_file": question["source_file"]}


def duplicate_pair(link: dict, title: str, duplicate_title: str) -> dict:
    """stackexchange_duplicate_questions: (title of PostId, title of RelatedPostId) for a
    LinkTypeId 3 link; PostId is the duplicate, RelatedPostId the canonical question.

    Project rules beyond "both posts exist": each unordered pair of posts gives one row
    (the link with the lowest Id), and a pair whose two titles are the same text after
    normalisation is rejected (it teaches nothing).
    """
    accounting.count_paired(DUPLICATES)
    return make_row(DUPLICATES, title, duplicate_title, subset=link["site"],
                    source_file=link["source_file"],
                    record_id=f"link {link['id']}: {link['post']}->{link['related']}")


# -- Beam transforms --------------------------------------------------------------------

class _ReadDump(beam.DoFn):
    """Stream one archive or table file and emit questions, answers and duplicate links,
    and the stackexchange_title_body rows (a join-free rule, applied here) in tables."""

    def __init__(self, ctx: SourceContext, want_links: bool, exclude_tags: frozenset):
        self.ctx = ctx
        self.want_links = want_links
        self.want_answers = TITLE_ANSWER in ctx.datasets
        self.exclude_tags = exclude_tags
        # Records per dataset: questions for title_body and title_answer, duplicate links for
        # duplicate_questions (which also takes the malformed posts when it runs alone).
        self.question_datasets = [d for d in (TITLE_BODY, TITLE_ANSWER) if d in ctx.datasets] or [DUPLICATES]
        self.file_dataset = self.question_datasets[0]
        self.answer_dataset = TITLE_ANSWER if TITLE_ANSWER in ctx.datasets else self.file_dataset
        self.link_dataset = DUPLICATES if DUPLICATES in ctx.datasets else self.file_dataset
        self.title_body = TITLE_BODY in ctx.datasets
        # Questions go on one by one only to the joins of the other two datasets.
        self.emit_questions = TITLE_ANSWER in ctx.datasets or DUPLICATES in ctx.datasets

    def setup(self):
        self._title_body_rows = RowTables()
        self._answers = RowTables(1 << 14, ANSWERS)

    def process(self, element):
        self._questions_read = 0  # counted once per file: a counter call per row costs
        yield from self._read(element)
        for dataset in self.question_datasets:
            accounting.count_read(dataset, self._questions_read)
        table = self._title_body_rows.flush()
        if table is not None:
            yield self._title_body_table(table)
        table = self._answers.flush()
        if table is not None:
            yield beam.pvalue.TaggedOutput("answers", table)

    @staticmethod
    def _title_body_table(table):
        accounting.count_paired(TITLE_BODY, table.num_rows)
        return beam.pvalue.TaggedOutput("title_body_rows", table)

    def _read(self, element):
        site, kind, path, start, end = element
        relative = self.ctx.relative(path)
        try:
            if end is not None:
                yield from self._read_range(site, kind, path, start, end, relative)
            elif kind == "archive":
                wanted = {"Posts.xml"} | ({"PostLinks.xml"} if self.want_links else set())
                for member, stream in files.iter_archive_members(
                        path, wanted=lambda name: posixpath.basename(name) in wanted):
                    table = "posts" if posixpath.basename(member) == "Posts.xml" else "postlinks"
                    yield from self._read_table(site, table, stream, f"{relative}!{member}")
            else:
                with files.open_input(path) as stream:
                    yield from self._read_table(site, kind, stream, relative)
        except Exception as exc:  # libarchive, lxml and the filesystems raise their own types
            if self.ctx.strict:
                raise files.BadInputFile(f"{relative}: {type(exc).__name__}: {exc}") from exc
            position = getattr(exc, "position", None)
            yield rejected(self.file_dataset, "unreadable_file", source_file=relative,
                           counts_as_read=True, record_id=f"line {position[0]}" if position else "",
                           detail=f"{relative}: reading stopped: {type(exc).__name__}: {exc}")

    def _read_range(self, site, table, path, start, end, source_file):
        """One byte range of a big unpacked table: its ``<row/>`` lines, parsed one by one
        (the dumps write one row per line), so that several workers share the file."""
        fields = POST_FIELDS if table == "posts" else LINK_FIELDS
        handle = self._post if table == "posts" else self._link
        if table == "postlinks" and not self.want_links:
            return
        with files.open_raw(path) as stream, progress.reading_range(path, stream, start, end):
            for offset, line in lines_in_range(stream, start, end):
                text = line.strip().removeprefix(b"\xef\xbb\xbf")
                if not text.startswith(b"<row"):
                    continue  # the XML declaration and the root element's tags
                progress.count_record()
                try:
                    attrib = etree.fromstring(text, _ROW_LINE_PARSER).attrib
                except etree.XMLSyntaxError as exc:
                    dataset = self.file_dataset if table == "posts" else self.link_dataset
                    yield rejected(dataset, "malformed_row", counts_as_read=True,
                                   source_file=source_file,
                                   record_id=f"byte {offset}", excerpt=text,
                                   detail=f"not a well-formed <row/> line: {exc}")
                    continue
                yield from handle(site, {name: attrib[name] for name in fields if name in attrib},
                                  source_file)

    def _read_table(self, site, table, stream, source_file):
        if table == "posts":
            # Only the post types _post reads: other rows are skipped without a copy.
            kinds = frozenset((QUESTION, ANSWER) if self.want_answers else (QUESTION,))
            for attrs in iter_rows(stream, POST_FIELDS, ("PostTypeId", kinds)):
                yield from self._post(site, attrs, source_file)
        elif self.want_links:
            for attrs in iter_rows(stream, LINK_FIELDS, ("LinkTypeId", frozenset((DUPLICATE_LINK_TYPE,)))):
                yield from self._link(site, attrs, source_file)

    def _post(self, site, attrs, source_file):
        post_type = attrs.get("PostTypeId")
        if post_type != QUESTION and (post_type != ANSWER or not self.want_answers):
            return  # tag wikis and other post types are not candidates; answers only for title_answer
        post_id, score = attrs.get("Id"), _int(attrs.get("Score"))
        if post_type == QUESTION:
            self._questions_read += 1
            if _int(post_id) is None or score is None or attrs.get("Title") is None:
                for dataset in self.question_datasets:
                    yield rejected(dataset, "malformed_row", source_file=source_file,
                                   record_id=post_id or "", excerpt=attrs,
                                   detail="question without a numeric Id, a numeric Score or a Title")
                return
            # Tags matter only to exclude_tags.
            tags = parse_tags(attrs.get("Tags")) if self.exclude_tags else ()
            question = {
                "site": site, "id": post_id, "title": normalize_text(attrs["Title"]),
                "body": body_text(attrs.get("Body")), "score": score, "source_file": source_file,
                "excluded_tags": sorted(set(tags) & self.exclude_tags),
            }
            if self.emit_questions:
                yield beam.pvalue.TaggedOutput("questions", question)
            if self.title_body:
                reject = question_reject(question, TITLE_BODY)
                if reject is not None:
                    yield reject
                else:
                    table = self._title_body_rows.add(title_body_pair(question))
                    if table is not None:
                        yield self._title_body_table(table)
        else:
            parent = attrs.get("ParentId")
            if _int(post_id) is None or score is None or _int(parent) is None:
                # a record only as a reject
                yield rejected(self.answer_dataset, "malformed_row", counts_as_read=True,
                               source_file=source_file,
                               record_id=post_id or "", excerpt=attrs,
                               detail="answer without a numeric Id, Score or ParentId")
                return
            parent = int(parent)
            table = self._answers.add({
                "key": post_key(site, parent), "site": site, "parent": parent, "id": post_id,
                "id_number": int(post_id), "score": score, "body": attrs.get("Body") or "",
                "source_file": source_file})
            if table is not None:
                yield beam.pvalue.TaggedOutput("answers", table)

    def _link(self, site, attrs, source_file):
        if attrs.get("LinkTypeId") != DUPLICATE_LINK_TYPE:
            return  # plain "linked" posts are not duplicate candidates
        link_id, post, related = attrs.get("Id"), attrs.get("PostId"), attrs.get("RelatedPostId")
        accounting.count_read(self.link_dataset)
        if _int(link_id) is None or _int(post) is None or _int(related) is None:
            yield rejected(self.link_dataset, "malformed_row", source_file=source_file,
                           record_id=link_id or "", excerpt=attrs,
                           detail="duplicate link without a numeric Id, PostId or RelatedPostId")
            return
        yield beam.pvalue.TaggedOutput("links", {
            "site": site, "id": link_id, "post": post, "related": related, "source_file": source_file})


def _question_excerpt(question: dict) -> dict:
    return {"title": question["title"], "body": question["body"][:RULE_REJECT_EXCERPT_CHARS],
            "score": question["score"]}


def question_reject(question: dict, dataset: str):
    """The tagged reject of a question that does not qualify for ``dataset`` (an excluded
    tag, or :func:`question_problem`), or ``None`` when it qualifies."""
    reason = ("excluded_tag" if question["excluded_tags"] else
              question_problem(question["title"], question["body"], question["score"]))
    if reason is None:
        return None
    return rejected(dataset, reason, source_file=question["source_file"],
                    record_id=question["id"], excerpt=_question_excerpt(question),
                    detail=f"question does not qualify: {reason}")


class _QualifyQuestions(beam.DoFn):
    """Split questions into qualifying ones and rejects for one dataset."""

    def __init__(self, dataset: str):
        self.dataset = dataset

    def process(self, question):
        reject = question_reject(question, self.dataset)
        yield question if reject is None else reject


def _link_reject(link, reason, detail):
    return rejected(DUPLICATES, reason, source_file=link["source_file"],
                    record_id=f"link {link['id']}: {link['post']}->{link['related']}",
                    detail=detail, excerpt=link)


def _keep_first_link(element):
    _pair, links = element
    links = sorted(links, key=lambda link: int(link["id"]))
    yield links[0]
    for link in links[1:]:
        yield _link_reject(link, "duplicate_link",
                           f"the same pair of posts is already linked by link {links[0]['id']}")


def _attach_title(element, side: str):
    (_site, _post), grouped = element
    titles = list(grouped["title"])
    for link in grouped["link"]:
        if not titles:
            yield _link_reject(link, f"{side}_missing",
                               f"{'PostId' if side == 'post' else 'RelatedPostId'} is not a question in Posts.xml")
        else:
            yield {**link, f"{side}_title": titles[0]}


def _duplicate_rows(link):
    if link["post_title"] == link["related_title"]:
        yield _link_reject(link, "identical_titles", "both questions have the same title")
    else:
        yield duplicate_pair(link, link["post_title"], link["related_title"])


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

    def read_tasks(self, ctx: SourceContext, split_bytes: int) -> list[tuple]:
        """``(site, kind, path, start, end)`` per reading task: an uncompressed unpacked
        table larger than ``split_bytes`` is cut into byte ranges read in parallel; an
        archive or a compressed file is read whole (``end`` is None)."""
        tasks = []
        for site, kind, path, size in self._tables(ctx):
            if kind != "archive" and size > split_bytes and files.is_plain(path):
                tasks.extend((site, kind, path, start, end) for start, end in byte_ranges(size, split_bytes))
            else:
                tasks.append((site, kind, path, 0, None))
        return tasks

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
        exclude = frozenset(t for t in ctx.option("exclude_tags", "").split(",") if t)
        read = (
            pipeline
            | "stackexchange/ListDumps" >> beam.Create(self.read_tasks(
                ctx, int(ctx.option("split_mb", DEFAULT_SPLIT_MB, positive_float) * MiB)))
            | "stackexchange/SpreadDumps" >> beam.Reshuffle()
            | "stackexchange/Parse" >> beam.ParDo(_ReadDump(ctx, DUPLICATES in want, exclude))
            .with_outputs("questions", "answers", "links", "title_body_rows", REJECTED)
        )
        rows, rejects = {}, [read[REJECTED]]
        questions = read.questions

        def qualified(dataset):
            result = questions | f"{dataset}/Qualify" >> beam.ParDo(
                _QualifyQuestions(dataset)).with_outputs(REJECTED, main="ok")
            rejects.append(result[REJECTED])
            return result.ok

        if TITLE_BODY in want:
            rows[TITLE_BODY] = as_tables(read.title_body_rows)
        if TITLE_ANSWER in want:
            spill_dir = ctx.scratch_dir()
            qualifying = questions | f"{TITLE_ANSWER}/QualifyQuestions" >> beam.ParDo(
                GatherTables(QUESTIONS, answerable_question)).with_outputs(REJECTED, main="questions")
            rejects.append(qualifying[REJECTED])
            sides = {"questions": (as_tables(qualifying.questions), QUESTIONS),
                     "answers": (as_tables(read.answers), ANSWERS)}
            joined = (
                {side: spill_runs(pcoll, f"{TITLE_ANSWER}/Spill{side.title()}", files.join(spill_dir, side),
                                  "key", schema)
                 for side, (pcoll, schema) in sides.items()}
                | f"{TITLE_ANSWER}/JoinBestAnswer" >> HashJoin(
                    pair_with_best_answers, {side: schema for side, (_pcoll, schema) in sides.items()})
            )
            rows[TITLE_ANSWER] = joined.main
            rejects.append(joined[REJECTED])
        if DUPLICATES in want:
            titles = questions | f"{DUPLICATES}/KeyTitles" >> beam.Map(
                lambda q: ((q["site"], q["id"]), q["title"]))
            unique = (
                read.links
                | f"{DUPLICATES}/KeyPairs" >> beam.Map(
                    lambda l: ((l["site"], *sorted((int(l["post"]), int(l["related"])))), l))
                | f"{DUPLICATES}/GroupPairs" >> beam.GroupByKey()
                | f"{DUPLICATES}/KeepFirstLink" >> beam.FlatMap(_keep_first_link)
                .with_outputs(REJECTED, main="links")
            )
            with_post = (
                {"link": unique.links | f"{DUPLICATES}/KeyByPost" >> beam.Map(
                    lambda l: ((l["site"], l["post"]), l)), "title": titles}
                | f"{DUPLICATES}/JoinPostTitle" >> beam.CoGroupByKey()
                | f"{DUPLICATES}/AttachPostTitle" >> beam.FlatMap(_attach_title, "post")
                .with_outputs(REJECTED, main="links")
            )
            with_both = (
                {"link": with_post.links | f"{DUPLICATES}/KeyByRelated" >> beam.Map(
                    lambda l: ((l["site"], l["related"]), l)), "title": titles}
                | f"{DUPLICATES}/JoinRelatedTitle" >> beam.CoGroupByKey()
                | f"{DUPLICATES}/AttachRelatedTitle" >> beam.FlatMap(_attach_title, "related")
                .with_outputs(REJECTED, main="links")
            )
            pairs = with_both.links | f"{DUPLICATES}/Pair" >> beam.FlatMap(
                _duplicate_rows).with_outputs(REJECTED, main="rows")
            rows[DUPLICATES] = pairs.rows
            rejects.extend([unique[REJECTED], with_post[REJECTED], with_both[REJECTED], pairs[REJECTED]])
        # Titles are normalised and bodies rendered as normalised text where they are read.
        return SourceOutput(rows=rows, rejects=rejects, normalized=frozenset(rows))


SOURCE = StackExchange()
