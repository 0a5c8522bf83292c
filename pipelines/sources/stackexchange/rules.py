"""StackExchange's pair rules, and the parsing of a post they build on (see the package)."""
from __future__ import annotations

from typing import Iterator

import re

import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from pipelines.corpus import accounting
from pipelines.corpus.normalize import html_to_text
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import make_row, records_table, row_arrow_schema
from pipelines.engine import (iter_xml_elements,
                              text_key)

from .attribution import ATTRIBUTION_FIELDS, answer_url, question_url

TITLE_BODY = "stackexchange_title_body"
TITLE_ANSWER = "stackexchange_title_answer"
DUPLICATES = "stackexchange_duplicate_questions"

MIN_TITLE_CHARS = 20
MIN_BODY_CHARS = 20
MAX_BODY_CHARS = 4096
MIN_SCORE = 0
SOURCE = "stackexchange"
# The input tables, as their rows are counted (accounting.count_input_rows).
POSTS_FILE, LINKS_FILE, ANSWER_ROWS = "Posts.xml", "PostLinks.xml", "answers"
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


POST_FIELDS = ("Id", "PostTypeId", "ParentId", "Score", "Title", "Body", "Tags") + ATTRIBUTION_FIELDS
# Unpacked Posts.xml / PostLinks.xml larger than this are read in parallel byte ranges.
DEFAULT_SPLIT_MB = 256.0
MiB = 1 << 20
# One <row/> line: no DTD can be declared in it, entities are not resolved, nothing fetched.
_ROW_LINE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                   huge_tree=True)
LINK_FIELDS = ("Id", "PostId", "RelatedPostId", "LinkTypeId")


def iter_rows(stream, fields: tuple[str, ...] | None = None,
              where: tuple[str, frozenset] | None = None, passed: dict | None = None) -> Iterator[dict]:
    """Yield the attribute dict of every ``<row/>`` of a dump table (only ``fields`` when
    given; only rows whose attribute ``where[0]`` is in ``where[1]`` when given, the others
    counted in ``passed`` by that attribute's value), streaming and safely (see
    :func:`pipelines.engine.formats.iter_xml_elements`)."""
    return iter_xml_elements(stream, "row", fields, where, passed)


# Input rows no dataset takes, by PostTypeId / LinkTypeId: the reason they are skipped with.
_POST_TYPES = {"3": "orphaned_tag_wiki", "4": "tag_wiki_excerpt", "5": "tag_wiki", "6": "moderator_nomination",
               "7": "wiki_placeholder", "8": "privilege_wiki"}
_LINK_TYPES = {"1": "linked_not_duplicate"}


def skipped_post(post_type: str | None, want_answers: bool) -> str:
    """Why a ``Posts.xml`` row of this PostTypeId is no record: a tag wiki or another kind
    of post, or an answer when stackexchange_title_answer is not built."""
    if post_type == ANSWER and not want_answers:
        return "answer_not_needed"
    return _POST_TYPES.get(post_type, f"post_type_{post_type}")


def skipped_link(link_type: str | None) -> str:
    """Why a ``PostLinks.xml`` row of this LinkTypeId is no record (only duplicates are)."""
    return _LINK_TYPES.get(link_type, f"link_type_{link_type}")


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
    """stackexchange_title_body: (question title, question body text), attributed to the
    question. (Counted as paired when its table of rows leaves the reader.)"""
    return make_row(TITLE_BODY, question["title"], question["body"], subset=question["site"],
                    source_file=question["source_file"], record_id=question["id"],
                    licence=question["licence"], attribution_url=question_url(question["site"], question["id"]),
                    author=question["author"])


def better_answer(a: dict, b: dict) -> dict:
    """The better of two answers of one question: the higher Score; on a tie the one
    first in the file, i.e. the lower Id."""
    if a["score"] != b["score"]:
        return a if a["score"] > b["score"] else b
    return a if int(a["id"]) < int(b["id"]) else b


def title_answer_pair(question: dict, answer: dict) -> dict:
    """stackexchange_title_answer: (question title, text of its best answer), attributed
    to the answer, whose text the row holds (the title is the question's)."""
    accounting.count_paired(TITLE_ANSWER)
    return make_row(TITLE_ANSWER, question["title"], body_text(answer["body"]),
                    subset=question["site"], source_file=answer["source_file"],
                    record_id=f"{question['id']}/{answer['id']}", licence=answer["licence"],
                    attribution_url=answer_url(question["site"], answer["id"]), author=answer["author"])


# stackexchange_title_answer's join sides, keyed by the 64-bit key of (site, question id)
# (:func:`post_key`): answers as read (with their attribution; ``licence_problem`` says
# why an answer's licence is unknown), qualifying questions with what a reject shows.
ANSWERS = pa.schema([("key", pa.int64()), ("site", pa.string()), ("parent", pa.int64()),
                     ("id", pa.string()), ("id_number", pa.int64()), ("score", pa.int64()),
                     ("body", pa.string()), ("source_file", pa.string()), ("licence", pa.string()),
                     ("licence_problem", pa.string()), ("author", pa.string())])
QUESTIONS = pa.schema([("key", pa.int64()), ("site", pa.string()), ("qid", pa.int64()),
                       ("id", pa.string()), ("title", pa.string()), ("score", pa.int64()),
                       ("body_excerpt", pa.string()), ("source_file", pa.string())])
# stackexchange_duplicate_questions' join: every question's title and attribution, and both
# ends (PostId, RelatedPostId) of every duplicate link kept.
TITLES = pa.schema([("key", pa.int64()), ("site", pa.string()), ("qid", pa.int64()), ("title", pa.string()),
                    ("licence", pa.string()), ("licence_problem", pa.string()), ("author", pa.string())])
LINK_ENDS = pa.schema([("key", pa.int64()), ("site", pa.string()), ("qid", pa.int64()),
                       ("link_id", pa.string()), ("side", pa.string())])


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
    questions, answers = tables["questions"], tables["answers"]
    _count_answers(questions, answers)
    if questions.num_rows == 0:
        return
    answer_fields = ["id", "body", "source_file", "licence", "licence_problem", "author"]
    best = best_answers(answers).select(["site", "parent", *answer_fields])
    best = best.rename_columns(["site", "qid", *(f"answer_{name}" for name in answer_fields)])
    joined = questions.join(best, keys=["site", "qid"], join_type="left outer", use_threads=False)
    found = pc.is_valid(joined["answer_id"])
    for question in joined.filter(pc.invert(found)).to_pylist():
        yield rejected(TITLE_ANSWER, "no_answer", source_file=question["source_file"],
                       record_id=question["id"], excerpt={"title": question["title"],
                                                          "body": question["body_excerpt"],
                                                          "score": question["score"]},
                       detail="qualifying question without any answer in the dump")
    paired = joined.filter(found).sort_by([("site", "ascending"), ("qid", "ascending")])
    rows = []
    for row in paired.to_pylist():
        answer = {name: row[f"answer_{name}"] for name in answer_fields}
        if answer["licence_problem"] is not None:
            yield licence_reject(TITLE_ANSWER, answer["licence_problem"], source_file=answer["source_file"],
                                 record_id=row["id"], excerpt={"title": row["title"], "answer": answer["id"]},
                                 post=f"answer {answer['id']}")
        else:
            rows.append(title_answer_pair({"site": row["site"], "id": row["id"], "title": row["title"]}, answer))
    if rows:
        yield records_table(rows, row_arrow_schema())


def _count_answers(questions: pa.Table, answers: pa.Table) -> None:
    """Count a join task's answers as input rows: each qualifying question's best answer
    is taken; the others are ``not_best_answer``, or ``no_qualifying_question`` when their
    question is absent from the dump or did not qualify (its own record says why)."""
    if answers.num_rows == 0:
        return
    asked = questions.select(["site", "qid"]).rename_columns(["site", "parent"])
    answered = answers.join(asked, keys=["site", "parent"], join_type="left semi", use_threads=False)
    taken = answered.group_by(["site", "parent"]).aggregate([]).num_rows
    for skipped, n in ((None, taken), ("not_best_answer", answered.num_rows - taken),
                       ("no_qualifying_question", answers.num_rows - answered.num_rows)):
        if n:
            accounting.count_input_rows(SOURCE, ANSWER_ROWS, skipped, n)


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
    The row is attributed to PostId, the question whose title is the anchor
    (``link["post_attribution"]``: its licence and author).

    Project rules beyond "both posts exist": each unordered pair of posts gives one row
    (the link with the lowest Id), and a pair whose two titles are the same text after
    normalisation is rejected (it teaches nothing).
    """
    accounting.count_paired(DUPLICATES)
    licence, _problem, author = link["post_attribution"]
    return make_row(DUPLICATES, title, duplicate_title, subset=link["site"],
                    source_file=link["source_file"],
                    record_id=f"link {link['id']}: {link['post']}->{link['related']}",
                    licence=licence, attribution_url=question_url(link["site"], link["post"]), author=author)


# -- Beam transforms --------------------------------------------------------------------

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


def licence_reject(dataset: str, problem: str, *, source_file: str, record_id: str, excerpt, post: str):
    """The tagged ``unknown_licence`` reject of a record whose row would be attributed to
    ``post`` (``question 12``, ``answer 13``), whose licence cannot be told: ``problem``
    (:func:`.attribution.post_licence`)."""
    return rejected(dataset, "unknown_licence", source_file=source_file, record_id=record_id,
                    excerpt=excerpt, detail=f"{post}: {problem}")


def _link_reject(link, reason, detail):
    return rejected(DUPLICATES, reason, source_file=link["source_file"],
                    record_id=f"link {link['id']}: {link['post']}->{link['related']}",
                    detail=detail, excerpt=link)


def question_title(question: dict) -> dict:
    """The :data:`TITLES` record of a question."""
    qid = int(question["id"])
    return {"key": post_key(question["site"], qid), "site": question["site"], "qid": qid,
            "title": question["title"], "licence": question["licence"],
            "licence_problem": question["licence_problem"], "author": question["author"]}


def link_ends(link: dict) -> Iterator[dict]:
    """The two :data:`LINK_ENDS` records of a duplicate link: its PostId and RelatedPostId."""
    for side in ("post", "related"):
        qid = int(link[side])
        yield {"key": post_key(link["site"], qid), "site": link["site"], "qid": qid, "link_id": link["id"],
               "side": side}


def title_link_ends(tables: dict):
    """:class:`HashJoin` function of stackexchange_duplicate_questions: each link end of
    the task with the title and attribution of its question (null when the post is no
    question of the dump). A post id given twice in a site's dump takes its first title in
    text order, so the result does not depend on the order of reading.

    Args:
        tables: ``{"titles": TITLES, "ends": LINK_ENDS}``.
    """
    ends, titles = tables["ends"], tables["titles"]
    if ends.num_rows == 0:
        return
    titles = titles.drop_columns(["key"]).sort_by([("site", "ascending"), ("qid", "ascending"),
                                                   ("title", "ascending")])
    if titles.num_rows > 1:
        site, qid = titles["site"].combine_chunks(), titles["qid"].combine_chunks()
        first = pc.or_(pc.not_equal(site[1:], site[:-1]), pc.not_equal(qid[1:], qid[:-1]))
        titles = titles.filter(pa.concat_arrays([pa.array([True]), first]))
    yield ends.drop_columns(["key"]).join(titles, keys=["site", "qid"], join_type="left outer", use_threads=False)


def pair_link(element):
    """A kept duplicate link with the titled ends of :func:`title_link_ends`: the pair
    (:func:`_duplicate_rows`), or ``post_missing`` / ``related_missing`` when PostId /
    RelatedPostId is no question of the dump (PostId looked at first)."""
    _key, grouped = element
    ends = {end["side"]: end for end in grouped["ends"]}
    for link in grouped["link"]:
        for side in ("post", "related"):
            end = ends.get(side)
            if end is None or end["title"] is None:
                yield _link_reject(link, f"{side}_missing",
                                   f"{'PostId' if side == 'post' else 'RelatedPostId'} is not a question in Posts.xml")
                break
            link = {**link, f"{side}_title": end["title"],
                    f"{side}_attribution": (end["licence"], end["licence_problem"], end["author"])}
        else:
            yield from _duplicate_rows(link)


def _keep_first_link(element):
    _pair, links = element
    links = sorted(links, key=lambda link: int(link["id"]))
    yield links[0]
    for link in links[1:]:
        yield _link_reject(link, "duplicate_link",
                           f"the same pair of posts is already linked by link {links[0]['id']}")


def _duplicate_rows(link):
    problem = link["post_attribution"][1]
    if link["post_title"] == link["related_title"]:
        yield _link_reject(link, "identical_titles", "both questions have the same title")
    elif problem is not None:
        yield licence_reject(DUPLICATES, problem, source_file=link["source_file"],
                             record_id=f"link {link['id']}: {link['post']}->{link['related']}",
                             excerpt=link, post=f"question {link['post']}")
    else:
        yield duplicate_pair(link, link["post_title"], link["related_title"])
