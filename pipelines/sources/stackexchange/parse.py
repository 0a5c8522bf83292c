"""Reading the StackExchange dump through :class:`pipelines.engine.ReadFiles`: which
archive members and tables are read, and :class:`ReadDump`, the parser of one
``Posts.xml`` or ``PostLinks.xml`` (see the package)."""
from __future__ import annotations

import functools
import posixpath
import re
from typing import Callable, NamedTuple

import apache_beam as beam
from lxml import etree

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_text
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import RowTables
from pipelines.corpus.source import SourceContext
from pipelines.engine import is_piece, located_lines, location, stream_is_empty

from .attribution import post_author, post_licence
from .rules import (ANSWER, ANSWERS, DUPLICATE_LINK_TYPE, DUPLICATES, LINK_FIELDS, LINKS_FILE, POST_FIELDS, POSTS_FILE,
                    QUESTION, SOURCE, TITLE_ANSWER, TITLE_BODY, _ARCHIVE_NAME, _ROW_LINE_PARSER, _int,
                    _question_excerpt, body_text, iter_rows, licence_reject, parse_tags, post_key, question_reject,
                    skipped_link, skipped_post, title_body_pair)


# -- reading the dump (through pipelines.engine.read.ReadFiles) ----------------------------

# A row line's type attribute, found without parsing the line (values are double-quoted in
# the dumps; a quote inside a value is &quot;, so no match falls inside another attribute).
_TYPE_IN_LINE = {name: re.compile(rb"\s" + name.encode() + rb'="([^"]*)"') for name in ("PostTypeId", "LinkTypeId")}


# Row lines parsed as one document: a document per line costs more.
_LINES_PER_PARSE = 256
_BYTES_PER_PARSE = 1 << 20


def _elements_one_per_line(lines: list[bytes]) -> list | None:
    """The elements of ``lines`` parsed as one document, one line below another, when that
    document holds exactly one element on each line and nothing else (no text, comment or
    instruction between them): then each element is what its line parsed alone gives.
    ``None`` when it is anything else (a malformed line, or one whose markup runs into the
    next), and the lines are to be parsed one by one."""
    if not lines:
        return None
    try:
        root = etree.fromstring(b"<rows>\n" + b"\n".join(lines) + b"\n</rows>", _ROW_LINE_PARSER)
    except etree.XMLSyntaxError:
        return None
    elements = list(root)
    if len(elements) != len(lines):
        return None
    for number, element in enumerate(elements, start=2):
        # An element starting on its own line, followed by blanks only, is all of that line:
        # the next element starts at the start of the next line.
        if not isinstance(element.tag, str) or element.sourceline != number or (element.tail and element.tail.strip()):
            return None
    return elements


# What a whole table's start shows of its layout: the buffered start of its stream.
_HEAD_BYTES = 1 << 16
_ROOT_START = re.compile(rb"<([A-Za-z]+)>")


def _one_row_per_line(head: bytes) -> bool:
    """Whether a whole table starting with ``head`` is laid out as the dumps write it: an
    XML declaration, the root element's start tag, then one ``<row .../>`` per line. Such a
    table is read line by line, as its pieces are, which skips the rows of a type no
    dataset takes unparsed (iterparse parses every one); any other (rows sharing a line, a
    DTD) is read with iterparse."""
    lines = [line.strip() for line in head.removeprefix(b"\xef\xbb\xbf").split(b"\n")[:-1]]
    lines = [line for line in lines if line]
    if lines and lines[0].startswith(b"<?xml"):
        lines = lines[1:]
    root = _ROOT_START.fullmatch(lines[0]) if len(lines) > 1 else None
    if root is None:
        return False
    end = b"</" + root.group(1) + b">"
    # A row line holds one tag: a value never holds a bare "<". Text outside the rows (no
    # tag at all) is a reject of the line-by-line reading, not a reason to read otherwise.
    return all((line.startswith(b"<row ") and line.endswith(b"/>") and line.count(b"<") == 1) or line == end
               or b"<" not in line for line in lines[1:])


class _CutShort(ValueError):
    """A whole table read line by line ends before its root element does."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.position = (line, 0)  # how ReadFiles names where reading stopped


class _TableRule(NamedTuple):
    """How a table's rows are read, whole or in pieces: the attributes kept, the type
    attribute and the types taken (other rows are counted as skipped without a copy),
    the row handler, the skip reason of a type, the table's name in the counts, and the
    dataset a malformed line is a rejected record of."""
    fields: tuple
    type_field: str
    types_taken: frozenset
    handle: Callable
    skipped: Callable
    file_name: str
    malformed_dataset: str

_ARCHIVE_MEMBERS = frozenset({"Posts.xml"})
_ARCHIVE_MEMBERS_WITH_LINKS = frozenset({"Posts.xml", "PostLinks.xml"})


def dump_member(want_links: bool, context: tuple[str, str], member: str) -> bool:
    """``ReadFiles`` ``members`` (with ``members_take_context``): whether ``member`` of an
    input whose context is ``(site, kind)`` is read: ``Posts.xml`` of a site archive, and
    ``PostLinks.xml`` when duplicate links are wanted. An unpacked table has no members."""
    _site, kind = context
    wanted = _ARCHIVE_MEMBERS_WITH_LINKS if want_links else _ARCHIVE_MEMBERS
    return kind == "archive" and posixpath.basename(member) in wanted


def _links_only(kind: str, path: str) -> bool:
    """Whether a table of :meth:`StackExchange.find_tables` holds only ``PostLinks.xml``:
    an unpacked one, or an archive of that table alone (``<site>-PostLinks.7z``)."""
    if kind == "archive":
        match = _ARCHIVE_NAME.match(posixpath.basename(path))
        return match is not None and match.group("table") == "PostLinks"
    return kind == "postlinks"


def _file_dataset(datasets) -> str:
    """The dataset that file-level rejects (and malformed posts) are counted under: the
    first question dataset of the run, or stackexchange_duplicate_questions alone."""
    return next((d for d in (TITLE_BODY, TITLE_ANSWER) if d in datasets), DUPLICATES)


def _malformed_line(rule, stream, where: int, text: bytes, source_file: str, batches, detail: str):
    """The reject of a line of a table read line by line that is no well-formed row, named by
    where it lies in the file, and counted as an input row (a record, rejected)."""
    batches.count_row(rule.file_name)
    return rejected(rule.malformed_dataset, "malformed_row", counts_as_read=True, source_file=source_file,
                    record_id=location(stream, where), excerpt=text, detail=detail)


class _FileBatches:
    """What one file (or archive member, or byte range) gathers while it is read: its
    questions read (counted once per file: a counter call per row costs), its
    stackexchange_title_body rows and its answers, both in tables."""

    def __init__(self):
        self.questions_read = 0
        self.title_body_rows = RowTables()
        self.answers = RowTables(1 << 14, ANSWERS)
        # Input rows by (table, reason skipped or None when taken into a record).
        self.input_rows: dict = {}

    def count_row(self, table: str, skipped: str | None = None, n: int = 1) -> None:
        key = (table, skipped)
        self.input_rows[key] = self.input_rows.get(key, 0) + n


class ReadDump:
    """``read_file`` of :class:`pipelines.engine.read.ReadFiles` for the dump: one
    ``Posts.xml`` or ``PostLinks.xml`` (unpacked, compressed, an archive member, or one
    piece of one: a byte range or a block), read line by line when laid out as the dumps
    write it (:func:`_one_row_per_line`), as questions, answers and duplicate links, and the
    stackexchange_title_body rows (a join-free rule, applied here) in tables, each under
    its tag; rejects keep theirs. ``context`` is the file's ``(site, kind)``.

    Args:
        ctx: the source's context (datasets).
        exclude_tags: questions carrying any of these tags are rejected.
    """

    def __init__(self, ctx: SourceContext, exclude_tags: frozenset):
        self.want_answers = TITLE_ANSWER in ctx.datasets
        self.exclude_tags = exclude_tags
        # Records per dataset: questions for title_body and title_answer, duplicate links for
        # duplicate_questions (which also takes the malformed posts when it runs alone).
        self.question_datasets = [d for d in (TITLE_BODY, TITLE_ANSWER) if d in ctx.datasets] or [DUPLICATES]
        self.file_dataset = _file_dataset(ctx.datasets)
        self.answer_dataset = TITLE_ANSWER if TITLE_ANSWER in ctx.datasets else self.file_dataset
        self.link_dataset = DUPLICATES if DUPLICATES in ctx.datasets else self.file_dataset
        self.title_body = TITLE_BODY in ctx.datasets
        # Questions go on one by one only to the joins of the other two datasets.
        self.emit_questions = TITLE_ANSWER in ctx.datasets or DUPLICATES in ctx.datasets

    def __call__(self, stream, source_file: str, context: tuple[str, str]):
        site, kind = context
        if kind == "archive" and "!" not in source_file:  # ReadFiles found no archive in its bytes
            if stream_is_empty(stream):
                return  # ReadFiles records it as empty_file
            raise ValueError("not a 7z, zip or tar archive (a broken download?)")
        # Only wanted tables reach here: PostLinks.xml is neither listed (read_inputs) nor
        # taken from an archive (dump_member) unless duplicate links are built.
        table = kind if kind != "archive" else "postlinks" if source_file.endswith("PostLinks.xml") else "posts"
        batches = _FileBatches()
        try:
            if is_piece(stream):
                yield from self._read_lines(site, table, stream, source_file, batches)
            elif hasattr(stream, "peek") and _one_row_per_line(stream.peek(_HEAD_BYTES)):
                yield from self._read_lines(site, table, stream, source_file, batches, whole=True)
            else:
                yield from self._read_table(site, table, stream, source_file, batches)
        except Exception:  # the rows read before the problem are kept; ReadFiles records the file
            yield from self._finish(batches)
            raise
        yield from self._finish(batches)

    def _finish(self, batches: _FileBatches):
        for dataset in self.question_datasets:
            accounting.count_read(dataset, batches.questions_read)
        for (table, skipped), n in batches.input_rows.items():
            accounting.count_input_rows(SOURCE, table, skipped, n)
        table = batches.title_body_rows.flush()
        if table is not None:
            yield self._title_body_table(table)
        table = batches.answers.flush()
        if table is not None:
            yield beam.pvalue.TaggedOutput("answers", table)

    @staticmethod
    def _title_body_table(table):
        accounting.count_paired(TITLE_BODY, table.num_rows)
        return beam.pvalue.TaggedOutput("title_body_rows", table)

    def _read_lines(self, site, table, stream, source_file, batches, whole: bool = False):
        """One piece of a table shared out among workers (a byte range of an unpacked one,
        a block of one inflated once), or a ``whole`` table laid out as the dumps write it
        (see :func:`_one_row_per_line`): its ``<row/>`` lines, parsed a batch at a time. A
        malformed line, or text outside any row, is a reject named by where it lies in the
        file; a whole table whose root element does not end was cut short."""
        rule = self._rule(table)
        type_in_line = _TYPE_IN_LINE[rule.type_field]
        pending, pending_bytes = [], 0  # (where, text) of the lines to parse
        where, ended = 0, False
        for where, line in located_lines(stream):
            text = line.strip().removeprefix(b"\xef\xbb\xbf")
            if not text.startswith(b"<row"):
                if text.startswith(b"<"):  # the XML declaration, the root element's tags, a comment
                    ended = ended or text.startswith(b"</")
                elif text:
                    yield _malformed_line(rule, stream, where, text, source_file, batches,
                                          "text outside any <row/> line")
                continue
            # As when a table is read whole: a row of a type no dataset takes is counted by its
            # type and not parsed (most of Posts.xml is answers, when they are not wanted).
            found = type_in_line.search(text)
            if found is not None:
                row_type = found.group(1).decode("ascii", "replace")
                if row_type not in rule.types_taken:
                    batches.count_row(rule.file_name, rule.skipped(row_type))
                    continue
            pending.append((where, text))
            pending_bytes += len(text)
            if len(pending) == _LINES_PER_PARSE or pending_bytes >= _BYTES_PER_PARSE:
                yield from self._parse_lines(site, rule, pending, stream, source_file, batches)
                pending, pending_bytes = [], 0
        yield from self._parse_lines(site, rule, pending, stream, source_file, batches)
        if whole and not ended:
            raise _CutShort(f"the file ends at line {where} before its root element does (cut short?)",
                            where)

    def _parse_lines(self, site, rule, lines, stream, source_file, batches):
        """Each of ``lines`` as its own ``<row/>``: one parse for them all, or, when that finds
        anything but one element on each line, one parse per line, so that a malformed line is
        rejected alone and no line is read as part of another."""
        elements = _elements_one_per_line([text for _where, text in lines])
        for index, (where, text) in enumerate(lines):
            if elements is not None:
                get = elements[index].get
            else:
                try:
                    get = etree.fromstring(text, _ROW_LINE_PARSER).get
                except etree.XMLSyntaxError as exc:
                    yield _malformed_line(rule, stream, where, text, source_file, batches,
                                          f"not a well-formed <row/> line: {exc}")
                    continue
            # element.get per field, as the whole-table path: cheaper than the attribute proxy.
            attrs = {}
            for name in rule.fields:
                value = get(name)
                if value is not None:
                    attrs[name] = value
            yield from rule.handle(site, attrs, source_file, batches)

    def _read_table(self, site, table, stream, source_file, batches):
        rule = self._rule(table)
        passed: dict = {}
        try:
            for attrs in iter_rows(stream, rule.fields, (rule.type_field, rule.types_taken), passed):
                yield from rule.handle(site, attrs, source_file, batches)
        finally:
            for value, n in passed.items():
                batches.count_row(rule.file_name, rule.skipped(value), n)

    def _rule(self, table: str) -> _TableRule:
        if table == "posts":  # the post types _post reads
            return _TableRule(POST_FIELDS, "PostTypeId",
                              frozenset((QUESTION, ANSWER) if self.want_answers else (QUESTION,)), self._post,
                              functools.partial(skipped_post, want_answers=self.want_answers), POSTS_FILE,
                              self.file_dataset)
        return _TableRule(LINK_FIELDS, "LinkTypeId", frozenset((DUPLICATE_LINK_TYPE,)), self._link, skipped_link,
                          LINKS_FILE, self.link_dataset)

    def _post(self, site, attrs, source_file, batches):
        post_type = attrs.get("PostTypeId")
        if post_type != QUESTION and (post_type != ANSWER or not self.want_answers):
            # Tag wikis and other post types are no candidates; answers only for title_answer.
            batches.count_row(POSTS_FILE, skipped_post(post_type, self.want_answers))
            return
        batches.count_row(POSTS_FILE)
        post_id, score = attrs.get("Id"), _int(attrs.get("Score"))
        if post_type == QUESTION:
            batches.questions_read += 1
            if _int(post_id) is None or score is None or attrs.get("Title") is None:
                for dataset in self.question_datasets:
                    yield rejected(dataset, "malformed_row", source_file=source_file,
                                   record_id=post_id or "", excerpt=attrs,
                                   detail="question without a numeric Id, a numeric Score or a Title")
                return
            # Tags matter only to exclude_tags.
            tags = parse_tags(attrs.get("Tags")) if self.exclude_tags else ()
            licence, licence_problem = post_licence(attrs)
            question = {
                "site": site, "id": post_id, "title": normalize_text(attrs["Title"]),
                "body": body_text(attrs.get("Body")), "score": score, "source_file": source_file,
                "excluded_tags": sorted(set(tags) & self.exclude_tags),
                "licence": licence, "licence_problem": licence_problem, "author": post_author(attrs),
            }
            if self.emit_questions:
                yield beam.pvalue.TaggedOutput("questions", question)
            if self.title_body:
                reject = question_reject(question, TITLE_BODY)
                if reject is None and licence_problem is not None:
                    reject = licence_reject(TITLE_BODY, licence_problem, source_file=source_file, record_id=post_id,
                                            excerpt=_question_excerpt(question), post=f"question {post_id}")
                if reject is not None:
                    yield reject
                    return
                # The row's values (make_row keeps the schema's order): no dict per row to gather.
                table = batches.title_body_rows.add(tuple(title_body_pair(question).values()))
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
            licence, licence_problem = post_licence(attrs)
            # In the order of rules.ANSWERS.
            table = batches.answers.add((
                post_key(site, parent), site, parent, post_id, int(post_id), score, attrs.get("Body") or "",
                source_file, licence, licence_problem, post_author(attrs)))
            if table is not None:
                yield beam.pvalue.TaggedOutput("answers", table)

    def _link(self, site, attrs, source_file, batches):
        if attrs.get("LinkTypeId") != DUPLICATE_LINK_TYPE:  # plain "linked" posts are no candidates
            batches.count_row(LINKS_FILE, skipped_link(attrs.get("LinkTypeId")))
            return
        batches.count_row(LINKS_FILE)
        link_id, post, related = attrs.get("Id"), attrs.get("PostId"), attrs.get("RelatedPostId")
        accounting.count_read(self.link_dataset)
        if _int(link_id) is None or _int(post) is None or _int(related) is None:
            yield rejected(self.link_dataset, "malformed_row", source_file=source_file,
                           record_id=link_id or "", excerpt=attrs,
                           detail="duplicate link without a numeric Id, PostId or RelatedPostId")
            return
        yield beam.pvalue.TaggedOutput("links", {
            "site": site, "id": link_id, "post": post, "related": related, "source_file": source_file})
