"""StackExchange attribution: every row's CC BY-SA version, link and author, decided by the
post whose text the row holds; through the real source on generated dumps in the upstream
format, on the real cstheory.meta excerpt and on the bundled sample."""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

import pytest
from lxml import etree

from pipelines.corpus import licences
from pipelines.sources import stackexchange as se
from pipelines.sources.stackexchange import attribution
from tests.helpers import read_output, run_build
from tests.sample_corpus import sample_corpus
from tests.sources.test_stackexchange import ALL, SITE, _site

EXAMPLE = "example.stackexchange.com"


# -- the rules, one by one -------------------------------------------------------------

@pytest.mark.parametrize("created,edited,licence", [
    ("2011-04-07T23:59:59.997", None, "cc-by-sa-2.5"),
    ("2011-04-08T00:00:00.000", None, "cc-by-sa-3.0"),
    ("2011-04-07T10:00:00.000", "2011-04-08T00:00:01.000", "cc-by-sa-3.0"),
    ("2009-06-01T10:00:00.000", "2011-04-07T23:00:00.000", "cc-by-sa-2.5"),
    ("2018-05-01T23:59:59.999", None, "cc-by-sa-3.0"),
    ("2018-05-02T00:00:00.000", None, "cc-by-sa-4.0"),
    ("2018-05-01T12:00:00.000", "2018-05-02T08:00:00.000", "cc-by-sa-4.0"),
    ("2010-01-01T00:00:00.000", "2018-05-01T23:59:59.999", "cc-by-sa-3.0"),
])
def test_the_licence_follows_the_later_of_creation_and_last_edit(created, edited, licence):
    attrs = {"CreationDate": created} | ({"LastEditDate": edited} if edited else {})
    assert attribution.post_licence(attrs) == (licence, None)


@pytest.mark.parametrize("stated,created,licence", [
    ("CC BY-SA 2.5", "2022-01-01T00:00:00.000", "cc-by-sa-2.5"),
    ("CC BY-SA 3.0", "2009-01-01T00:00:00.000", "cc-by-sa-3.0"),
    ("CC BY-SA 4.0", "2010-01-01T00:00:00.000", "cc-by-sa-4.0"),
])
def test_content_licence_overrides_the_dates(stated, created, licence):
    assert attribution.post_licence({"ContentLicense": stated, "CreationDate": created}) == (licence, None)


@pytest.mark.parametrize("attrs,problem", [
    ({"ContentLicense": "CC BY 4.0", "CreationDate": "2022-01-01T00:00:00.000"}, "'CC BY 4.0' is not CC BY-SA"),
    ({"ContentLicense": "", "CreationDate": "2022-01-01T00:00:00.000"}, "ContentLicense '' is not"),
    ({}, "no ContentLicense and no CreationDate"),
    ({"CreationDate": "2011-13-01T00:00:00.000"}, "CreationDate '2011-13-01T00:00:00.000' is not a date"),
    ({"CreationDate": "2011-01-01T00:00:00.000", "LastEditDate": "soon"}, "LastEditDate 'soon' is not a date"),
])
def test_a_licence_that_cannot_be_told_is_never_guessed(attrs, problem):
    licence, why = attribution.post_licence(attrs)
    assert licence is None and problem in why


def test_every_licence_a_row_can_carry_is_a_known_licence():
    for licence in {*attribution.CONTENT_LICENCES.values(), attribution.FIRST_LICENCE,
                    *(licence for _day, licence in attribution.LICENCE_CHANGES)}:
        assert licences.get(licence).attribution


def test_author_is_the_display_name_else_the_user_id():
    assert attribution.post_author({"OwnerDisplayName": "Dana", "OwnerUserId": "7"}) == "Dana"
    assert attribution.post_author({"OwnerUserId": "7"}) == "user 7"
    assert attribution.post_author({"OwnerUserId": "-1"}) == "user -1"  # the Community user
    assert attribution.post_author({"OwnerDisplayName": " "}) is None
    assert attribution.post_author({}) is None


# -- a generated dump, built by the real source ----------------------------------------

def _row(post_id: int, post_type: int, created: str | None, *, edited=None, stated=None, owner=None,
         name=None, parent=None, score=1) -> str:
    """One ``<row/>`` of Posts.xml, attributes in the dump's order."""
    attrs = {"Id": post_id, "PostTypeId": post_type, "ParentId": parent, "CreationDate": created,
             "Score": score, "Body": f"<p>The body of post {post_id}, long enough to qualify.</p>",
             "OwnerUserId": owner, "OwnerDisplayName": name, "LastEditDate": edited,
             "Title": f"Question number {post_id} with a long title" if post_type == 1 else None,
             "ContentLicense": stated}
    return "  <row " + " ".join(f"{key}={quoteattr(str(value))}" for key, value in attrs.items()
                                if value is not None) + " />"


def _table(root: str, rows: list[str]) -> bytes:
    """A dump table as the dumps write it: BOM, XML declaration, CRLF, one row a line."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', f"<{root}>", *rows, f"</{root}>"]
    return ("\ufeff" + "\r\n".join(lines)).encode("utf-8")


# question id -> (its attributes, the licence its title_body row carries, or None: rejected)
QUESTIONS = {
    1: ({"created": "2011-04-07T23:59:59.997", "owner": "11"}, "cc-by-sa-2.5"),
    2: ({"created": "2011-04-08T00:00:00.000", "owner": "12"}, "cc-by-sa-3.0"),
    3: ({"created": "2011-04-07T10:00:00.000", "edited": "2011-04-08T00:00:01.000", "owner": "13"}, "cc-by-sa-3.0"),
    4: ({"created": "2018-05-01T23:59:59.999", "name": "Deleted Dana"}, "cc-by-sa-3.0"),
    5: ({"created": "2018-05-02T00:00:00.000", "owner": "15"}, "cc-by-sa-4.0"),
    6: ({"created": "2018-05-01T12:00:00.000", "edited": "2018-05-02T08:00:00.000", "owner": "16"}, "cc-by-sa-4.0"),
    7: ({"created": "2009-06-01T10:00:00.000", "edited": "2011-04-07T23:00:00.000"}, "cc-by-sa-2.5"),
    8: ({"created": "2010-01-01T00:00:00.000", "stated": "CC BY-SA 4.0", "owner": "18"}, "cc-by-sa-4.0"),
    9: ({"created": "2022-01-01T00:00:00.000", "stated": "CC BY-SA 2.5", "owner": "19"}, "cc-by-sa-2.5"),
    10: ({"created": "2022-01-01T00:00:00.000", "stated": "CC BY 4.0", "owner": "20"}, None),
}
# answer id -> (its question, its attributes, the licence its title_answer row carries)
ANSWERS = {
    101: (1, {"created": "2018-05-02T00:00:00.000", "owner": "31"}, "cc-by-sa-4.0"),
    102: (2, {"created": "2011-04-08T09:00:00.000", "name": "Old Account"}, "cc-by-sa-3.0"),
    105: (5, {"created": "2018-05-02T00:00:00.000", "stated": "CC BY-NC 4.0", "owner": "35"}, None),
    107: (7, {"created": "2011-04-07T00:00:00.000", "owner": "37"}, "cc-by-sa-2.5"),
    110: (10, {"created": "2022-01-02T00:00:00.000", "stated": "CC BY-SA 4.0", "owner": "40"}, "cc-by-sa-4.0"),
}
# link id -> (PostId, RelatedPostId): the row is attributed to PostId
LINKS = {1: (1, 5), 2: (10, 2), 3: (9, 8)}


def _author(attrs: dict) -> str | None:
    return attrs.get("name") or (f"user {attrs['owner']}" if attrs.get("owner") else None)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("attribution")
    posts = [_row(qid, 1, **attrs) for qid, (attrs, _licence) in QUESTIONS.items()]
    posts += [_row(aid, 2, parent=qid, **attrs) for aid, (qid, attrs, _licence) in ANSWERS.items()]
    links = [f'  <row Id="{lid}" CreationDate="2022-01-01T00:00:00.000" PostId="{post}" '
             f'RelatedPostId="{related}" LinkTypeId="3" />' for lid, (post, related) in LINKS.items()]
    root = _site(tmp_path, _table("posts", posts), _table("postlinks", links))
    one = run_build(tmp_path / "out", input_root=root, datasets=ALL)
    # A big unpacked table is read in byte ranges, one <row/> line at a time: same rows.
    ranges = run_build(tmp_path / "ranges", input_root=root, datasets=ALL,
                       source_options={"stackexchange": {"split_mb": "0.001"}})
    return one, ranges


def test_title_body_rows_carry_the_questions_licence_link_and_author(generated):
    result, _ranges = generated
    rows = {r["record_id"]: r for r in result.rows[se.TITLE_BODY]}
    expected = {str(qid): (licence, f"https://{EXAMPLE}/q/{qid}", _author(attrs))
                for qid, (attrs, licence) in QUESTIONS.items() if licence}
    assert {rid: (r["licence"], r["attribution_url"], r["author"]) for rid, r in rows.items()} == expected
    assert rows["4"]["author"] == "Deleted Dana" and rows["7"]["author"] is None


def test_title_answer_rows_are_attributed_to_the_answer(generated):
    result, _ranges = generated
    got = {r["record_id"]: (r["licence"], r["attribution_url"], r["author"]) for r in result.rows[se.TITLE_ANSWER]}
    assert got == {f"{qid}/{aid}": (licence, f"https://{EXAMPLE}/a/{aid}", _author(attrs))
                   for aid, (qid, attrs, licence) in ANSWERS.items() if licence}
    # Question 1 is CC BY-SA 2.5, its answer 4.0: the row holds the answer's text.
    assert got["1/101"][0] == "cc-by-sa-4.0"
    # Question 10's own licence is unknown; its answer's is not, and decides this row.
    assert "10/110" in got


def test_duplicate_rows_are_attributed_to_the_question_whose_title_is_the_anchor(generated):
    result, _ranges = generated
    rows = {r["anchor"]: r for r in result.rows[se.DUPLICATES]}
    assert {(r["licence"], r["attribution_url"], r["author"]) for r in rows.values()} == {
        ("cc-by-sa-2.5", f"https://{EXAMPLE}/q/1", "user 11"),   # 1 -> 5 (5 is 4.0)
        ("cc-by-sa-2.5", f"https://{EXAMPLE}/q/9", "user 19"),   # 9 -> 8, by ContentLicense
    }
    assert rows["Question number 1 with a long title"]["positive"] == "Question number 5 with a long title"


def test_an_unknown_licence_is_a_rejected_record_with_its_reason(generated):
    result, _ranges = generated
    unknown = {ds: [(r["record_id"], r["detail"]) for r in result.rejects[ds] if r["reason"] == "unknown_licence"]
               for ds in ALL}
    assert unknown == {
        se.TITLE_BODY: [("10", "question 10: ContentLicense 'CC BY 4.0' is not CC BY-SA 2.5, 3.0 or 4.0")],
        se.TITLE_ANSWER: [("5", "answer 105: ContentLicense 'CC BY-NC 4.0' is not CC BY-SA 2.5, 3.0 or 4.0")],
        se.DUPLICATES: [("link 2: 10->2", "question 10: ContentLicense 'CC BY 4.0' is not CC BY-SA 2.5, 3.0 or 4.0")],
    }
    for dataset in ALL:
        equations = result.manifest["datasets"][dataset]["accounting"]
        assert equations["records"]["holds"] and equations["rows"]["holds"], (dataset, equations)


def test_byte_ranges_give_the_same_attribution(generated):
    one, ranges = generated
    for dataset in ALL:
        assert sorted(map(_sorted_items, ranges.rows[dataset])) == sorted(map(_sorted_items, one.rows[dataset]))
        assert ranges.reasons(dataset) == one.reasons(dataset)


def _sorted_items(row: dict) -> tuple:
    return tuple(sorted((key, value) for key, value in row.items() if key != "source_file"))


def test_a_site_archive_names_the_site_of_the_links(tmp_path):
    """stackoverflow.com's tables are archives of their own (stackoverflow.com-Posts.7z):
    the links are https://stackoverflow.com/..."""
    import py7zr

    root = tmp_path / "in" / "stackexchange"
    root.mkdir(parents=True)
    posts = _table("posts", [_row(1, 1, "2023-06-12T00:00:00.000", stated="CC BY-SA 4.0", owner="5")])
    with py7zr.SevenZipFile(root / "stackoverflow.com-Posts.7z", "w") as archive:
        archive.writestr(posts, "Posts.xml")
    result = run_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[se.TITLE_BODY])
    ((licence, link, author),) = {(r["licence"], r["attribution_url"], r["author"])
                                  for r in result.rows[se.TITLE_BODY]}
    assert (licence, link, author) == ("cc-by-sa-4.0", "https://stackoverflow.com/q/1", "user 5")


# -- the real excerpt ------------------------------------------------------------------

def _independent_licences(posts_xml) -> dict:
    """Each post's licence by the published dates, compared as ISO date strings (the
    excerpt is a 2019 dump: no ContentLicense)."""
    out = {}
    for row in etree.parse(str(posts_xml)).getroot():
        assert row.get("ContentLicense") is None
        day = max(row.get("CreationDate")[:10], (row.get("LastEditDate") or "")[:10])
        out[row.get("Id")] = ("cc-by-sa-2.5" if day < "2011-04-08" else
                              "cc-by-sa-3.0" if day < "2018-05-02" else "cc-by-sa-4.0")
    return out


@pytest.fixture(scope="module")
def cstheory(upstream_samples, tmp_path_factory):
    return run_build(tmp_path_factory.mktemp("cstheory-attribution") / "out",
                     input_root=upstream_samples, datasets=ALL)


def test_real_excerpt_rows_carry_the_licence_of_their_post(cstheory, upstream_samples):
    licence_of = _independent_licences(upstream_samples / "stackexchange" / SITE / "Posts.xml")
    posts = {se.TITLE_BODY: lambda rid: rid, se.TITLE_ANSWER: lambda rid: rid.split("/")[1],
             se.DUPLICATES: lambda rid: rid.split(": ")[1].split("->")[0]}
    for dataset, post_of in posts.items():
        assert cstheory.rows[dataset]
        for row in cstheory.rows[dataset]:
            post = post_of(row["record_id"])
            assert row["licence"] == licence_of[post], (dataset, row["record_id"])
            kind = "a" if dataset == se.TITLE_ANSWER else "q"
            assert row["attribution_url"] == f"https://{SITE}/{kind}/{post}"
    # Both sides of 2011-04-08 occur in the excerpt.
    assert {r["licence"] for r in cstheory.rows[se.TITLE_BODY]} == {"cc-by-sa-2.5", "cc-by-sa-3.0"}
    assert not any(r["reason"] == "unknown_licence" for ds in ALL for r in cstheory.rejects[ds])


def test_real_excerpt_hand_checked_attribution(cstheory):
    def attributed(dataset, record_id):
        (row,) = [r for r in cstheory.rows[dataset] if r["record_id"] == record_id]
        return row["licence"], row["attribution_url"], row["author"]

    # Question 3: created 2010-08-16, last edited 2010-08-19, by user 80.
    assert attributed(se.TITLE_BODY, "3") == ("cc-by-sa-2.5", f"https://{SITE}/q/3", "user 80")
    # Question 1 was edited on 2017-03-16 (3.0); its best answer 100, by user 78, on 2010-09-06.
    assert attributed(se.TITLE_ANSWER, "1/100") == ("cc-by-sa-2.5", f"https://{SITE}/a/100", "user 78")
    assert attributed(se.TITLE_ANSWER, "52/1587") == ("cc-by-sa-3.0", f"https://{SITE}/a/1587", "user 567")
    # The duplicate 1 -> 463 is attributed to question 1 (edited 2017-03-16), whose title is the anchor.
    assert attributed(se.DUPLICATES, "link 122497: 1->463") == ("cc-by-sa-3.0", f"https://{SITE}/q/1", "user 80")


# -- the bundled sample: every dataset's rows carry a licence --------------------------

@pytest.fixture(scope="module")
def sample():
    return read_output(sample_corpus())


def test_sample_rows_of_other_datasets_carry_their_registry_licence(sample):
    from pipelines.corpus import registry

    for dataset, rows in sample.rows.items():
        spec = registry.get(dataset)
        if spec.source == "stackexchange":
            continue
        assert rows and {r["licence"] for r in rows} == {spec.licence}, dataset
    assert {r["licence"] for r in sample.rows["msmarco_triplets"]} == {"msmarco-terms"}
    assert all(r["attribution_url"] is None and r["author"] is None for r in sample.rows["msmarco_triplets"])


def test_sample_rows_link_to_their_upstream_item_where_the_input_gives_one(sample):
    squad = {r["attribution_url"] for r in sample.rows["squad"]}
    assert squad and all(link.startswith("https://en.wikipedia.org/wiki/") for link in squad)
    nq = {r["attribution_url"] for r in sample.rows["natural_questions"]}
    assert "https://en.wikipedia.org//w/index.php?title=Lake_Baikal&oldid=829358121" in nq
    assert all(link is None or "&amp;" not in link for link in nq)
    gooaq = [r["attribution_url"] for r in sample.rows["gooaq"]]
    assert gooaq and all(link is None or link.startswith("http") for link in gooaq)


def test_sample_stackexchange_rows_carry_their_posts_licence(sample):
    by_site = {}
    for dataset in ALL:
        for row in sample.rows[dataset]:
            by_site.setdefault(row["subset"], set()).add(row["licence"])
            assert row["attribution_url"].startswith(f"https://{row['subset']}/")
    # coffee's 2019 dump has no ContentLicense: posts of 2019 are 4.0 by their dates;
    # stackoverflow.com states 3.0 and 4.0 post by post.
    assert by_site["coffee.stackexchange.com"] == {"cc-by-sa-4.0"}
    assert by_site["stackoverflow.com"] <= {"cc-by-sa-3.0", "cc-by-sa-4.0"}
