"""StackExchange: parse, pair rules, archives, and the real cstheory.meta excerpt."""
from __future__ import annotations

import io
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path

import py7zr
import pytest
from hypothesis import given, strategies as st
from lxml import etree

from pipelines.corpus.normalize import normalize_text
from pipelines.engine import files
from pipelines.engine.formats import UnsafeXML
from pipelines.sources import stackexchange as se
from tests.helpers import run_build
from tests.sources.source_case import SourceCase

SITE = "cstheory.meta.stackexchange.com"
ALL = [se.TITLE_BODY, se.TITLE_ANSWER, se.DUPLICATES]


# -- parse ---------------------------------------------------------------------------

def test_parse_tags_reads_both_dump_formats():
    assert se.rules.parse_tags("<discussion><names>") == ["discussion", "names"]
    assert se.rules.parse_tags("|wcf|security|spn|") == ["wcf", "security", "spn"]
    assert se.rules.parse_tags(None) == []


def test_iter_rows_handles_bom_crlf_and_absent_attributes():
    data = ('\ufeff<?xml version="1.0" encoding="utf-8"?>\r\n<posts>\r\n'
            '  <row Id="1" PostTypeId="1" Title="A &quot;quoted&quot; title" />\r\n'
            '  <row Id="2" PostTypeId="2" ParentId="1" />\r\n</posts>').encode("utf-8")
    rows = list(se.rules.iter_rows(io.BytesIO(data)))
    assert rows == [{"Id": "1", "PostTypeId": "1", "Title": 'A "quoted" title'},
                    {"Id": "2", "PostTypeId": "2", "ParentId": "1"}]


def test_iter_rows_does_not_expand_entities_or_fetch_external_ones(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    laughs = ('<?xml version="1.0"?><!DOCTYPE posts [<!ENTITY a "aaaaaaaaaa">'
              '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
              f'<!ENTITY x SYSTEM "file://{secret}">]>'
              '<posts><row Id="1" Title="&c;" /><row Id="2">&x;</row></posts>').encode()
    with pytest.raises(UnsafeXML):
        list(se.rules.iter_rows(io.BytesIO(laughs)))
    external = f'<!DOCTYPE posts [<!ENTITY x SYSTEM "file://{secret}">]><posts><row Id="&x;"/></posts>'
    with pytest.raises(UnsafeXML):
        list(se.rules.iter_rows(io.BytesIO(external.encode())))


def test_a_dtd_file_is_a_counted_unreadable_file(tmp_path):
    posts = b'<?xml version="1.0"?>\n<!DOCTYPE posts [<!ENTITY a "aaaa">]>\n<posts><row Id="1" Title="&a;"/></posts>'
    result = run_build(tmp_path / "out", input_root=_site(tmp_path, posts), datasets=[se.TITLE_BODY])
    assert result.reasons(se.TITLE_BODY) == {"unreadable_file": 1}
    assert "DTD" in result.rejects[se.TITLE_BODY][0]["detail"]


def test_body_text_removes_duplicate_notice_and_decodes_after_tag_removal():
    body = ('<blockquote>\n  <p><strong>Possible Duplicate:</strong><br>\n  <a href="x">Other</a></p>\n'
            '</blockquote>\n<p>Real question with <code>a &lt;b&gt; c</code> &amp; more.</p>')
    assert se.rules.body_text(body) == "Real question with a <b> c & more."


# -- pair rules ------------------------------------------------------------------------

@pytest.mark.parametrize("title,body,score,problem", [
    ("t" * 20, "b" * 20, 0, None),
    ("t" * 19, "b" * 20, 0, "title_too_short"),
    ("t" * 20, "b" * 19, 0, "body_too_short"),
    ("t" * 20, "b" * 4096, 0, None),
    ("t" * 20, "b" * 4097, 0, "body_too_long"),
    ("t" * 20, "b" * 20, -1, "negative_score"),
])
def test_question_problem_applies_the_original_thresholds(title, body, score, problem):
    assert se.rules.question_problem(title, body, score) == problem


def test_better_answer_prefers_score_then_lowest_id():
    low = {"id": "40", "score": 1}
    first = {"id": "35", "score": 1}
    high = {"id": "99", "score": 5}
    assert se.rules.better_answer(low, first) is first
    assert se.rules.better_answer(first, low) is first
    assert se.rules.better_answer(first, high) is high


# -- the real excerpt --------------------------------------------------------------------

def _independent_expectation(site_dir: Path) -> dict:
    """The spec's rules applied with the standard library, without Beam."""
    root = etree.parse(str(site_dir / "Posts.xml")).getroot()
    posts = [dict(r.attrib) for r in root]
    questions = {p["Id"]: p for p in posts if p["PostTypeId"] == "1"}
    answers = defaultdict(list)
    for p in posts:
        if p["PostTypeId"] == "2":
            answers[p["ParentId"]].append(p)
    qualifying = {}
    for qid, q in questions.items():
        title, body = normalize_text(q["Title"]), se.rules.body_text(q["Body"])
        if len(title) >= 20 and 20 <= len(body) <= 4096 and int(q["Score"]) >= 0:
            qualifying[qid] = (title, body)
    title_answer = set()
    for qid, (title, _) in qualifying.items():
        if answers[qid]:
            best = sorted(answers[qid], key=lambda a: (-int(a["Score"]), int(a["Id"])))[0]
            if se.rules.body_text(best["Body"]):
                title_answer.add((title, se.rules.body_text(best["Body"])))
    links = etree.parse(str(site_dir / "PostLinks.xml")).getroot()
    dups = set()
    for link in links:
        if link.get("LinkTypeId") == "3" and link.get("PostId") in questions \
                and link.get("RelatedPostId") in questions:
            dups.add((normalize_text(questions[link.get("PostId")]["Title"]),
                      normalize_text(questions[link.get("RelatedPostId")]["Title"])))
    return {"title_body": set(qualifying.values()), "title_answer": title_answer, "dups": dups,
            "qualifying_ids": set(qualifying)}


@pytest.fixture(scope="module")
def cstheory_build(upstream_samples, tmp_path_factory):
    return run_build(tmp_path_factory.mktemp("cstheory") / "out",
                     input_root=upstream_samples, datasets=ALL)


def test_link_ends_meet_the_title_of_their_own_site_and_post():
    """The duplicate links' title join: an end takes the title of its site's post (a post
    key shared by chance with another site's post changes nothing), the first in text order
    when a dump repeats a post id, and no title when the post is no question."""
    import pyarrow as pa

    from pipelines.sources.stackexchange.rules import LINK_ENDS, TITLES, link_ends, title_link_ends

    def title(site, qid, text):
        return {"key": 7, "site": site, "qid": qid, "title": text, "licence": "cc-by-sa-4.0",
                "licence_problem": None, "author": "user 1"}

    titles = pa.Table.from_pylist([title("a.com", 1, "zeta"), title("b.com", 1, "other site"),
                                   title("a.com", 1, "alpha")], schema=TITLES)
    ends = [dict(end, key=7) for end in link_ends({"site": "a.com", "id": "9", "post": "1", "related": "2"})]
    assert [e["side"] for e in ends] == ["post", "related"]
    (joined,) = title_link_ends({"titles": titles, "ends": pa.Table.from_pylist(ends, schema=LINK_ENDS)})
    by_side = {row["side"]: row for row in joined.to_pylist()}
    assert by_side["post"]["title"] == "alpha" and by_side["post"]["author"] == "user 1"
    assert by_side["related"]["title"] is None


def test_real_excerpt_hand_checked_pairs(cstheory_build):
    titles = {r["record_id"]: r["anchor"] for r in cstheory_build.rows[se.TITLE_BODY]}
    # 'arXiv tags vs not?' has an 18-character title: rejected although it has answers.
    assert "41" not in titles
    assert titles["3"] == "LaTeX math support ?"  # exactly 20 characters: qualifies
    best = {r["record_id"] for r in cstheory_build.rows[se.TITLE_ANSWER]}
    # Ties: question 34 has answers 35 and 40 at Score 1; 1448 has 1451 and 1525 at Score 4.
    assert {"34/35", "3/49", "52/1587", "1/100"} <= best
    assert "34/40" not in best
    # 1448's best answers (1451 and 1525, both Score 4) are image-only ads: the tie goes to
    # 1451, whose text is empty, so the pair is rejected rather than falling back to 1525.
    empty = {r["record_id"] for r in cstheory_build.rejects[se.TITLE_ANSWER]
             if r["reason"] == "positive_empty"}
    assert "1448/1451" in empty
    assert not any(r.startswith("1448/") for r in best)
    # Questions 192, 640, 1515, 1586 and 2651 have no answers in the excerpt.
    no_answer = {r["record_id"] for r in cstheory_build.rejects[se.TITLE_ANSWER]
                 if r["reason"] == "no_answer"}
    assert no_answer == {"192", "640", "1515", "1586", "2651"}


def test_real_excerpt_duplicate_links(cstheory_build):
    assert cstheory_build.pairs(se.DUPLICATES) == {
        ("What should our site/domain name be?", "Write an Elevator Pitch / Tagline", None),
        ("A first slate of moderators", "Who should the moderators be?", None),
        ("Math Mode Breaks When Showing All Comments", 'Latex math and "show N more comments"', None),
        ("Community Promotion Ads - 2H 2011", "Community Promotion Ads - 2012", None),
        ("Community Promotion Ads - 2012", "Community Promotion Ads - 2013", None),
        ("Do we need the tag graph-algorithms?", "How should the tag [graph-algorithms] be used?", None),
        ("How to withdraw close votes?", "Reversing a vote to close", None),
        ("Can we control flag settings?", "Migration path from cstheory to CS.SE", None),
    }
    # Of the 13 duplicate links, 2669, 2745, 3022 and 2993 are not in the excerpt's Posts.xml
    # (as PostId), and 2745 is missing as the RelatedPostId of 1619 -> 2745.
    assert cstheory_build.reasons(se.DUPLICATES) == {"post_missing": 4, "related_missing": 1}


def test_real_excerpt_matches_an_independent_reading_of_the_rules(cstheory_build, upstream_samples):
    expected = _independent_expectation(upstream_samples / "stackexchange" / SITE)
    got = {name: {(r["anchor"], r["positive"]) for r in cstheory_build.rows[ds]}
           for name, ds in (("title_body", se.TITLE_BODY), ("title_answer", se.TITLE_ANSWER),
                            ("dups", se.DUPLICATES))}
    expected.pop("qualifying_ids")
    assert got == expected
    for ds in ALL:
        assert {r["subset"] for r in cstheory_build.rows[ds]} == {SITE}


def _input_rows_by_hand(site_dir: Path) -> dict:
    """Every row of the site's two tables, taken or skipped, counted with the standard
    library: questions and duplicate links are records, answers go to the best-answer
    join, where each qualifying question takes its best one."""
    posts = [dict(r.attrib) for r in etree.parse(str(site_dir / "Posts.xml")).getroot()]
    links = [dict(r.attrib) for r in etree.parse(str(site_dir / "PostLinks.xml")).getroot()]
    names = {"3": "orphaned_tag_wiki", "4": "tag_wiki_excerpt", "5": "tag_wiki", "6": "moderator_nomination",
             "7": "wiki_placeholder", "8": "privilege_wiki"}
    skipped_posts = defaultdict(int)
    for p in posts:
        if p["PostTypeId"] not in ("1", "2"):
            skipped_posts[names.get(p["PostTypeId"], f"post_type_{p['PostTypeId']}")] += 1
    qualifying = _independent_expectation(site_dir)["qualifying_ids"]
    answers = [p for p in posts if p["PostTypeId"] == "2"]
    asked = [a for a in answers if a["ParentId"] in qualifying]
    taken = len({a["ParentId"] for a in asked})
    answer_skips = {"not_best_answer": len(asked) - taken, "no_qualifying_question": len(answers) - len(asked)}
    duplicates = sum(link["LinkTypeId"] == "3" for link in links)
    return {
        "Posts.xml": {"taken": len(posts) - sum(skipped_posts.values()), "skipped": dict(skipped_posts)},
        "PostLinks.xml": {"taken": duplicates, "skipped": {"linked_not_duplicate": len(links) - duplicates}},
        "answers": {"taken": taken, "skipped": {k: n for k, n in answer_skips.items() if n}},
    }


def test_every_input_row_is_counted_taken_or_skipped(cstheory_build, upstream_samples):
    """Rows no dataset counts as records (tag wikis, answers, plain links) are counted too."""
    expected = _input_rows_by_hand(upstream_samples / "stackexchange" / SITE)
    assert expected["Posts.xml"]["skipped"] and expected["answers"]["skipped"]  # the excerpt has both kinds
    assert cstheory_build.manifest["input_rows"] == {"stackexchange": expected}


@pytest.mark.parametrize("workers", [1, 2])
def test_same_pairs_from_a_7z_archive_as_from_the_unpacked_folder(cstheory_build, upstream_samples, tmp_path,
                                                                  workers):
    """Read whole by one worker, or inflated once and cut into blocks (1 KB here) that two
    workers parse: the pairs, rejects and counts are those of the unpacked folder."""
    root = tmp_path / "in" / "stackexchange"
    root.mkdir(parents=True)
    with py7zr.SevenZipFile(root / f"{SITE}.7z", "w") as archive:
        for table in ("Posts.xml", "PostLinks.xml"):
            archive.write(upstream_samples / "stackexchange" / SITE / table, table)
    beam_args = (["--direct_running_mode=multi_threading", "--direct_num_workers=2", "--block_bytes=1024"]
                 if workers == 2 else None)
    result = run_build(tmp_path / "out", input_root=tmp_path / "in", datasets=ALL, beam_args=beam_args)
    for ds in ALL:
        assert result.pairs(ds) == cstheory_build.pairs(ds)
        assert result.reasons(ds) == cstheory_build.reasons(ds)
        assert result.manifest["datasets"][ds]["accounting"] == cstheory_build.manifest["datasets"][ds]["accounting"]
        assert {r["source_file"].split("!")[0] for r in result.rows[ds]} == {f"stackexchange/{SITE}.7z"}
    assert result.manifest["input_rows"] == cstheory_build.manifest["input_rows"]


def test_archive_members_are_streamed_and_escaping_names_refused(tmp_path):
    good = tmp_path / "site.7z"
    with py7zr.SevenZipFile(good, "w") as archive:
        archive.writestr(b"<posts />", "Posts.xml")
    names = [name for name, _ in files.iter_archive_members(str(good))]
    assert names == ["Posts.xml"]
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as archive:
        member = tarfile.TarInfo("../../escape.xml")
        member.size = 1
        archive.addfile(member, io.BytesIO(b"x"))
    with pytest.raises(files.BadInputFile, match="escape"):
        list(files.iter_archive_members(str(evil)))


# -- damaged input -------------------------------------------------------------------

def _site(tmp_path: Path, posts: bytes, links: bytes | None = None) -> Path:
    site = tmp_path / "in" / "stackexchange" / "example.stackexchange.com"
    site.mkdir(parents=True)
    (site / "Posts.xml").write_bytes(posts)
    if links is not None:
        (site / "PostLinks.xml").write_bytes(links)
    return tmp_path / "in"


GOOD_QUESTION = ('<row Id="{id}" PostTypeId="1" CreationDate="2020-01-01T00:00:00.000" Score="1" '
                 'Title="A question title that is long enough" '
                 'Body="&lt;p&gt;A body that is long enough to qualify.&lt;/p&gt;" />')


@pytest.mark.parametrize("separator,end,reasons", [
    ("\n", '\n<row Id="3" PostTypeId="1" Sco', {"malformed_row", "unreadable_file"}),  # cut in a row line
    ("\n", "\n", {"unreadable_file"}),  # cut at a line's end: the root never ends
    ("", '<row Id="3" PostTypeId="1" Sco', {"unreadable_file"}),  # rows sharing a line: iterparse
])
def test_truncated_posts_keeps_rows_before_the_damage_and_records_the_file(tmp_path, separator, end, reasons):
    posts = ("<posts>\n" + separator.join(GOOD_QUESTION.format(id=i) for i in (1, 2)) + end).encode()
    result = run_build(tmp_path / "out", input_root=_site(tmp_path, posts), datasets=[se.TITLE_BODY])
    assert sorted(r["record_id"] for r in result.rows[se.TITLE_BODY]) == ["1", "2"]
    assert {r["reason"] for r in result.rejects[se.TITLE_BODY]} == reasons
    (reject,) = [r for r in result.rejects[se.TITLE_BODY] if r["reason"] == "unreadable_file"]
    assert reject["source_file"] == "stackexchange/example.stackexchange.com/Posts.xml"
    assert reject["record_id"].startswith("line ")
    assert result.manifest["datasets"][se.TITLE_BODY]["accounting"]["records"]["holds"]


def test_text_outside_any_row_line_is_a_counted_reject(tmp_path):
    posts = ("<posts>\n" + GOOD_QUESTION.format(id=1) + "\nstray text\n" + GOOD_QUESTION.format(id=2)
             + "\n</posts>\n").encode()
    result = run_build(tmp_path / "out", input_root=_site(tmp_path, posts), datasets=[se.TITLE_BODY])
    assert sorted(r["record_id"] for r in result.rows[se.TITLE_BODY]) == ["1", "2"]
    (reject,) = result.rejects[se.TITLE_BODY]
    assert (reject["reason"], reject["record_id"]) == ("malformed_row", "line 3")
    assert result.manifest["datasets"][se.TITLE_BODY]["accounting"]["records"]["holds"]


@pytest.mark.parametrize("head,line_by_line", [
    (b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>\r\n<posts>\r\n  <row Id="1" />\r\n  <row Id="2', True),
    (b'<postlinks>\n<row Id="1" />\n</postlinks>\n', True),
    (b'<posts>\n<row Id="1" /><row Id="2" />\n', False),  # rows sharing a line
    (b'<posts><row Id="1" />\n<row Id="2" />\n', False),
    (b'<?xml version="1.0"?>\n<!DOCTYPE posts [<!ENTITY a "b">]>\n<posts>\n<row Id="1" />\n', False),
    (b'<posts>\n<row Id="1">\n</row>\n', False),
    (b'<posts>\n<row Id="1" />', False),  # no whole row line yet
])
def test_a_whole_table_is_read_line_by_line_only_when_laid_out_as_the_dumps(head, line_by_line):
    from pipelines.sources.stackexchange.parse import _one_row_per_line
    assert _one_row_per_line(head) is line_by_line


def test_strict_mode_fails_on_a_truncated_file_naming_it(tmp_path):
    posts = ("<posts>\n" + GOOD_QUESTION.format(id=1) + "\n<row Id=").encode()
    with pytest.raises(Exception, match="example.stackexchange.com/Posts.xml"):
        run_build(tmp_path / "out", input_root=_site(tmp_path, posts), datasets=[se.TITLE_BODY],
                  strict=True)


def test_malformed_rows_are_counted_not_fatal(tmp_path):
    posts = ("<posts>\n" + GOOD_QUESTION.format(id=1) + "\n"
             '<row Id="2" PostTypeId="1" Score="many" Title="x" Body="y" />\n'
             '<row Id="3" PostTypeId="2" Score="1" Body="no parent" />\n'
             '<row PostTypeId="1" Score="1" Title="no id" />\n</posts>').encode()
    links = b'<postlinks><row Id="1" PostId="x" RelatedPostId="1" LinkTypeId="3" /></postlinks>'
    result = run_build(tmp_path / "out", input_root=_site(tmp_path, posts, links), datasets=ALL)
    assert len(result.rows[se.TITLE_BODY]) == 1
    assert result.reasons(se.TITLE_BODY) == {"malformed_row": 2}
    # The two malformed questions are rejected records of both question datasets; the
    # answer without a parent is one of title_answer.
    assert result.reasons(se.TITLE_ANSWER) == {"malformed_row": 3, "no_answer": 1}
    for dataset in ALL:
        equations = result.manifest["datasets"][dataset]["accounting"]
        assert equations["records"]["holds"] and equations["rows"]["holds"], (dataset, equations)
    assert result.reasons(se.DUPLICATES) == {"malformed_row": 1}


def test_not_a_7z_archive_is_an_unreadable_file(tmp_path):
    root = tmp_path / "in" / "stackexchange"
    root.mkdir(parents=True)
    (root / "broken.stackexchange.com.7z").write_bytes(b"<html>Quota exceeded</html>")
    result = run_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[se.TITLE_BODY])
    assert result.reasons(se.TITLE_BODY) == {"unreadable_file": 1}
    assert result.rows[se.TITLE_BODY] == []


def test_exclude_tags_option(tmp_path):
    posts = ("<posts>\n" + GOOD_QUESTION.format(id=1).replace("/>", 'Tags="|meta|x|" />') + "\n"
             + GOOD_QUESTION.format(id=2).replace("/>", 'Tags="&lt;y&gt;" />') + "\n</posts>").encode()
    result = run_build(tmp_path / "out", input_root=_site(tmp_path, posts), datasets=[se.TITLE_BODY],
                       source_options={"stackexchange": {"exclude_tags": "meta"}})
    assert [r["record_id"] for r in result.rows[se.TITLE_BODY]] == ["2"]
    assert result.reasons(se.TITLE_BODY) == {"excluded_tag": 1}


def test_source_transform_with_testpipeline_and_assert_that():
    """The source's own graph, checked with Beam's testing utilities (no sink)."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.corpus.source import SourceContext

    root = se.SOURCE.sample_root()
    ctx = SourceContext(input_root=root, source_dir=files.join(root, "stackexchange"),
                        datasets=(se.TITLE_ANSWER,))
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = se.SOURCE.expand(p, ctx)
        ids = out.rows[se.TITLE_ANSWER] | beam.FlatMap(
            lambda rows: [(r["subset"], r["record_id"]) for r in rows.to_pylist()])
        assert_that(ids, equal_to([
            ("coffee.stackexchange.com", "1/3"), ("coffee.stackexchange.com", "4/5"),
            ("coffee.stackexchange.com", "12/14"), ("bicycles.stackexchange.com", "1/2"),
            ("bicycles.stackexchange.com", "5/6"), ("stackoverflow.com", "101/102"),
            ("stackoverflow.com", "103/105")]))


def test_an_unpacked_dump_read_in_byte_ranges_gives_the_same_pairs(cstheory_build, upstream_samples, tmp_path,
                                                                   capsys):
    """A big unpacked Posts.xml is split among workers; the pairs are those of one reader,
    and the progress report counts both files as read once all their ranges are."""
    root = tmp_path / "in" / "stackexchange" / SITE
    root.mkdir(parents=True)
    for table in ("Posts.xml", "PostLinks.xml"):
        shutil.copy(upstream_samples / "stackexchange" / SITE / table, root / table)
    result = run_build(tmp_path / "out", input_root=tmp_path / "in", datasets=ALL,
                       source_options={"stackexchange": {"split_mb": "0.01"}})  # ~10 KB ranges
    summary = [line for line in capsys.readouterr().err.splitlines() if line.startswith("progress: pipeline")]
    assert len(summary) == 1 and "read 2 of 2 input files" in summary[0]
    for ds in ALL:
        assert result.pairs(ds) == cstheory_build.pairs(ds)
        assert result.reasons(ds) == cstheory_build.reasons(ds)
        equations = result.manifest["datasets"][ds]["accounting"]
        assert equations["records"]["holds"] and equations["rows"]["holds"]
    assert result.manifest["input_rows"] == cstheory_build.manifest["input_rows"]


def test_a_broken_row_line_in_a_byte_range_is_a_counted_reject(tmp_path):
    posts = ("\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<posts>\r\n"
             + "\r\n".join(GOOD_QUESTION.format(id=i) for i in range(1, 40))
             + '\r\n  <row Id="99" PostTypeId="1" Title="unclosed\r\n</posts>').encode("utf-8")
    result = run_build(tmp_path / "out", input_root=_site(tmp_path, posts), datasets=[se.TITLE_BODY],
                       source_options={"stackexchange": {"split_mb": "0.001"}})
    assert len(result.rows[se.TITLE_BODY]) == 39
    assert result.reasons(se.TITLE_BODY) == {"malformed_row": 1}
    # The line is named by its byte offset in the file, whichever range read it.
    (reject,) = result.rejects[se.TITLE_BODY]
    broken = posts.index(b'  <row Id="99"')
    assert reject["record_id"] == f"byte {broken}"
    assert result.manifest["datasets"][se.TITLE_BODY]["accounting"]["records"]["holds"]


@pytest.mark.parametrize("lines,together", [
    (['<row Id="1" Title="a &amp; b"/>', '<row Id="2">  <x/></row>  ', '<rowx Id="3"/>'], True),
    (['<row Id="1">', '<row Id="2"/></row>'], False),  # the first runs into the second
    (['<row Id="1"/><!--', '<row Id="2"/>-->'], False),  # a comment hides the second
    (['<row Id="1"><![CDATA[', '<row Id="2"/>]]></row>'], False),
    (['<row Id="1"/>text', '<row Id="2"/>'], False),
    (['<row Id="1"/><row Id="3"/>', '<row Id="2"/>'], False),  # two rows on one line
    (['<row Id="1"/> <?pi x?>', '<row Id="2"/>'], False),
    (['<row Id="1" Id="1"/>', '<row Id="2"/>'], False),
])
def test_row_lines_parsed_together_only_when_each_is_its_own_row(lines, together):
    """Lines parsed as one document give what each gives alone, or are left to be parsed
    one by one."""
    from pipelines.sources.stackexchange.parse import _elements_one_per_line
    elements = _elements_one_per_line([line.encode() for line in lines])
    assert (elements is not None) is together
    if together:
        alone = [dict(etree.fromstring(line.encode(), se.rules._ROW_LINE_PARSER).attrib) for line in lines]
        assert [dict(element.attrib) for element in elements] == alone


def test_a_row_line_running_into_the_next_is_rejected_with_it_not_read_as_one(tmp_path):
    """Row lines are parsed a batch at a time; a line whose element only closes on the
    next line is malformed alone, and so is that next line: both are rejected."""
    lines = [GOOD_QUESTION.format(id=i) for i in range(1, 40)]
    lines[20] = lines[20].replace(" />", ">")
    lines[21] = lines[21] + "</row>"
    posts = ("<posts>\r\n" + "\r\n".join(lines) + "\r\n</posts>").encode()
    result = run_build(tmp_path / "out", input_root=_site(tmp_path, posts), datasets=[se.TITLE_BODY],
                       source_options={"stackexchange": {"split_mb": "0.004"}})  # two ranges
    assert len(result.rows[se.TITLE_BODY]) == 37
    assert sorted(r["record_id"] for r in result.rejects[se.TITLE_BODY]) == sorted(
        f"byte {posts.index(lines[i].encode())}" for i in (20, 21))
    assert result.manifest["datasets"][se.TITLE_BODY]["accounting"]["records"]["holds"]


def _archives(tmp_path: Path, archives: dict) -> Path:
    root = tmp_path / "in" / "stackexchange"
    root.mkdir(parents=True)
    for name, members in archives.items():
        if members is None:
            (root / name).write_bytes(b"")
            continue
        with py7zr.SevenZipFile(root / name, "w") as archive:
            for member, data in members.items():
                archive.writestr(data, member)
    return tmp_path / "in"


def test_archive_without_posts_and_empty_archive_are_recorded(tmp_path):
    """ReadFiles judges whole files: a site archive without Posts.xml is a ``no_member``
    reject and a .7z without any byte an ``empty_file`` one (both gave nothing before)."""
    posts = ("<posts>\n" + GOOD_QUESTION.format(id=1) + "\n</posts>").encode()
    root = _archives(tmp_path, {"a.stackexchange.com.7z": {"Posts.xml": posts},
                                "b.stackexchange.com.7z": {"Users.xml": b"<users />"},
                                "c.stackexchange.com.7z": None})
    result = run_build(tmp_path / "out", input_root=root, datasets=[se.TITLE_BODY])
    assert [r["record_id"] for r in result.rows[se.TITLE_BODY]] == ["1"]
    assert {(r["reason"], r["source_file"]) for r in result.rejects[se.TITLE_BODY]} == {
        ("no_member", "stackexchange/b.stackexchange.com.7z"),
        ("empty_file", "stackexchange/c.stackexchange.com.7z")}
    assert result.manifest["datasets"][se.TITLE_BODY]["accounting"]["records"]["holds"]


def test_postlinks_archive_is_not_read_without_duplicate_questions(tmp_path):
    """stackoverflow.com-PostLinks.7z holds no Posts.xml: it is read only for duplicate
    links (otherwise it would be a ``no_member`` reject)."""
    posts = ("<posts>\n" + GOOD_QUESTION.format(id=1) + "\n</posts>").encode()
    links = b'<postlinks>\n<row Id="1" PostId="1" RelatedPostId="2" LinkTypeId="3" />\n</postlinks>'
    root = _archives(tmp_path, {"stackoverflow.com-Posts.7z": {"Posts.xml": posts},
                                "stackoverflow.com-PostLinks.7z": {"PostLinks.xml": links}})
    result = run_build(tmp_path / "out", input_root=root, datasets=[se.TITLE_BODY])
    assert [r["record_id"] for r in result.rows[se.TITLE_BODY]] == ["1"]
    assert result.rejects.get(se.TITLE_BODY, []) == []


@given(st.lists(st.tuples(st.sampled_from(["a.stackexchange.com", "b.stackexchange.com"]),
                          st.integers(1, 4), st.integers(1, 60), st.integers(-3, 3)),
                min_size=1, max_size=40, unique_by=lambda answer: (answer[0], answer[2])))
def test_best_answers_of_a_join_task_follow_the_rule(answers):
    """The vectorised choice in a join task equals better_answer applied answer by answer."""
    import functools

    import pyarrow as pa

    table = pa.Table.from_pylist([
        {"key": se.rules.post_key(site, parent), "site": site, "parent": parent, "id": str(post_id),
         "id_number": post_id, "score": score, "body": f"<p>{post_id}</p>", "source_file": "f"}
        for site, parent, post_id, score in answers], schema=se.ANSWERS)
    by_question = {}
    for row in table.to_pylist():
        by_question.setdefault((row["site"], row["parent"]), []).append(row)
    expected = {key: functools.reduce(se.rules.better_answer, rows)["id"] for key, rows in by_question.items()}
    chosen = {(row["site"], row["parent"]): row["id"] for row in se.rules.best_answers(table).to_pylist()}
    assert chosen == expected


class TestStackExchangeSample(SourceCase):
    SOURCE = "stackexchange"
    ROWS = {"stackexchange_title_body": 10, "stackexchange_title_answer": 6, "stackexchange_duplicate_questions": 4}
