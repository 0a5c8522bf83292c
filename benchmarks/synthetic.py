"""Realistic synthetic upstream inputs for the benchmarks, in the upstream formats.

Every generator is seeded and streams its output, so inputs of several GB can be made
without holding them in memory.
"""
from __future__ import annotations

import random
from pathlib import Path
from xml.sax.saxutils import quoteattr

_WORDS = ("the a of to and in is it you that for on with as are this be at have or from by "
          "function value error python list file data server query table index memory thread "
          "install version package update return string number array object class method "
          "why how what when does can should would could use using get set make run build").split()


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize()


def _body(rng: random.Random, paragraphs: int) -> str:
    parts = [f"<p>{_sentence(rng, 10, 40)}.</p>" for _ in range(paragraphs)]
    if rng.random() < 0.4:
        parts.append("<pre><code>if x &lt; 10 &amp;&amp; y:\n    run()\n</code></pre>")
    return "\n".join(parts)


def write_stackexchange_posts(path: Path, questions: int, answers_per_question: float = 1.5,
                              seed: int = 0) -> int:
    """Write a ``Posts.xml`` in the dump format (BOM, CRLF, HTML bodies as attributes).

    Returns the number of ``<row>`` elements written.
    """
    rng = random.Random(seed)
    rows = 0
    next_id = 1
    with open(path, "w", encoding="utf-8-sig", newline="\r\n") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for _ in range(questions):
            qid = next_id
            next_id += 1
            title = _sentence(rng, 4, 14) + "?"
            out.write(f'  <row Id="{qid}" PostTypeId="1" CreationDate="2020-01-01T00:00:00.000" '
                      f'Score="{rng.randint(-2, 40)}" ViewCount="{rng.randint(1, 9999)}" '
                      f'Body={quoteattr(_body(rng, rng.randint(1, 4)))} OwnerUserId="{rng.randint(1, 10**6)}" '
                      f'LastActivityDate="2020-01-02T00:00:00.000" Title={quoteattr(title)} '
                      f'Tags="&lt;python&gt;&lt;list&gt;" AnswerCount="1" CommentCount="0" '
                      f'ContentLicense="CC BY-SA 4.0" />\n')
            rows += 1
            for _ in range(int(answers_per_question + rng.random())):
                out.write(f'  <row Id="{next_id}" PostTypeId="2" ParentId="{qid}" '
                          f'CreationDate="2020-01-01T00:00:00.000" Score="{rng.randint(-1, 30)}" '
                          f'Body={quoteattr(_body(rng, rng.randint(1, 3)))} OwnerUserId="{rng.randint(1, 10**6)}" '
                          f'LastActivityDate="2020-01-02T00:00:00.000" CommentCount="0" '
                          f'ContentLicense="CC BY-SA 4.0" />\n')
                next_id += 1
                rows += 1
        out.write("</posts>")
    return rows


def write_stackexchange_postlinks(path: Path, questions: int, links: int, seed: int = 0) -> None:
    """Write a ``PostLinks.xml`` whose links point at question ids of the same generator."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8-sig", newline="\r\n") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<postlinks>\n')
        for n in range(links):
            out.write(f'  <row Id="{n + 1}" CreationDate="2020-01-01T00:00:00.000" '
                      f'PostId="{rng.randint(1, questions * 2)}" RelatedPostId="{rng.randint(1, questions * 2)}" '
                      f'LinkTypeId="{rng.choice((1, 3))}" />\n')
        out.write("</postlinks>")


def _mojibake(text: str) -> str:
    """UTF-8 read as Latin-1, as MS MARCO's collection has it."""
    return text.encode("utf-8").decode("latin-1")


def write_msmarco(folder: Path, queries: int, passages_per_query: int = 10,
                  triples_per_query: int = 40, seed: int = 0) -> dict:
    """Write ``collection.tsv``, ``queries.train.tsv``, ``qrels.train.tsv`` and
    ``qidpidtriples.train.full.2.tsv`` in the published formats (TSV, no header).

    Every query has one judged passage; its triples pair that passage with negatives drawn
    from the whole collection. Returns the file sizes.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    passages = queries * passages_per_query
    with open(folder / "collection.tsv", "w", encoding="utf-8") as out:
        for pid in range(passages):
            text = f"{_sentence(rng, 30, 90)} \u2019s {_sentence(rng, 5, 20)}."
            out.write(f"{pid}\t{_mojibake(text)}\n")
    with open(folder / "queries.train.tsv", "w", encoding="utf-8") as out:
        for qid in range(queries):
            out.write(f"{qid}\t{_sentence(rng, 3, 9).lower()}\n")
    with open(folder / "qrels.train.tsv", "w", encoding="utf-8") as out:
        for qid in range(queries):
            out.write(f"{qid}\t0\t{qid * passages_per_query}\t1\n")
    with open(folder / "qidpidtriples.train.full.2.tsv", "w", encoding="utf-8") as out:
        for qid in range(queries):
            for _ in range(triples_per_query):
                out.write(f"{qid}\t{qid * passages_per_query}\t{rng.randrange(passages)}\n")
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def pack_7z(folder: Path, archive: Path) -> None:
    """Pack the files of ``folder`` into a ``.7z`` (LZMA2, fast preset), as the dumps are."""
    import py7zr

    with py7zr.SevenZipFile(archive, "w", filters=[{"id": py7zr.FILTER_LZMA2, "preset": 1}]) as out:
        for path in sorted(folder.iterdir()):
            out.write(path, path.name)


def write_wikianswers_part(path: Path, clusters: int, seed: int = 0) -> int:
    """Write one gzip part of the OQA paraphrase corpus: a cluster per line, TAB-separated
    ``q:`` items (some repeated with other case), an ``a:`` item for one cluster in nine.
    Returns the number of question items written."""
    import gzip

    rng = random.Random(seed)
    items = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
        for _ in range(clusters):
            size = max(1, int(rng.expovariate(1 / 12)))
            questions = [_sentence(rng, 4, 12) + "?" for _ in range(size)]
            if size > 2 and rng.random() < 0.3:
                questions.append(questions[0].upper())
            fields = [f"q:{q}" for q in questions]
            if rng.random() < 0.11:
                fields.append(f"a:{_sentence(rng, 5, 30)}.")
            out.write("\t".join(fields) + "\n")
            items += len(questions)
    return items


def write_yahoo_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Write a ``yahoo_answers_csv`` split: no header, every field quoted, inner quotes
    doubled, newlines stored as backslash-n, HTML line breaks in answers, some fields empty."""
    rng = random.Random(seed)

    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for _ in range(rows):
            title = _sentence(rng, 4, 14) + "?"
            content = "" if rng.random() < 0.45 else f'{_sentence(rng, 5, 40)}.\\n"{_sentence(rng, 2, 5)}"'
            answer = "" if rng.random() < 0.02 else f"{_sentence(rng, 10, 60)}.<br />{_sentence(rng, 3, 20)}."
            out.write(",".join((quoted(str(rng.randint(1, 10))), quoted(title), quoted(content),
                                quoted(answer))) + "\n")


def write_paq(folder: Path, questions: int, passages_per_question: float = 0.4, seed: int = 0) -> None:
    """Write PAQ's three inputs: ``PAQ.filtered.jsonl`` (NQ-open lines), ``PAQ.metadata.jsonl.gz``
    (one record per question, listing the passages it was generated from; every 50th
    question is not in the filtered list) and ``psgs_w100.tsv.gz`` (DPR's header, CSV-quoted
    passage texts of about 100 words, titles)."""
    import gzip
    import json

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    passages = max(1, int(questions * passages_per_question))
    with gzip.open(folder / "psgs_w100.tsv.gz", "wt", encoding="utf-8", compresslevel=1) as out:
        out.write("id\ttext\ttitle\n")
        for pid in range(1, passages + 1):
            text = " ".join(_sentence(rng, 8, 14) + "." for _ in range(8)).replace('"', '""')
            out.write(f'{pid}\t"{text}"\t{_sentence(rng, 1, 3)}\n')
    with open(folder / "PAQ.filtered.jsonl", "w", encoding="utf-8") as listed, \
            gzip.open(folder / "PAQ.metadata.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as metadata:
        for n in range(questions):
            question = f"{_sentence(rng, 4, 10).lower()} {n}"
            answer = _sentence(rng, 1, 3)
            if n % 50:
                listed.write(json.dumps({"question": question, "answer": [answer]}) + "\n")
            answers = [{"passage_id": str(rng.randint(1, passages)), "offset": rng.randint(0, 400),
                        "text": answer, "extractor": rng.choice(["L", "M"])}
                       for _ in range(rng.choice((1, 1, 1, 2, 3)))]
            metadata.write(json.dumps({"question": question, "subsets": ["L1"], "answer": [answer],
                                       "passage_score": round(rng.random(), 4), "answers": answers}) + "\n")


# -- full-shape generators (benchmarks.rehearsal) -------------------------------------------
# These write each remaining source in its published format, with record sizes near the
# real ones (the rehearsal scales record counts, so the bytes per record decide how close
# the input's size comes to the release's). Words are drawn with ``choices`` (one call per
# text), which keeps multi-GB inputs to minutes.

def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high)))


def _text(rng: random.Random, sentences: int, low: int = 8, high: int = 20) -> str:
    return " ".join(_words(rng, low, high).capitalize() + "." for _ in range(sentences))


def _dump_body(rng: random.Random, paragraphs: int) -> str:
    parts = [f"<p>{_text(rng, rng.randint(1, 3))}</p>" for _ in range(paragraphs)]
    if rng.random() < 0.5:
        parts.insert(rng.randint(0, len(parts)),
                     "<pre><code>for (i = 0; i &lt; n; i++) {\n    total += values[i];\n}\n</code></pre>")
    return "\n".join(parts)


def write_stackexchange_dump(folder: Path, questions: int, answers_per_question: float,
                             links: int, duplicate_share: float, seed: int = 0) -> dict:
    """Write a site's ``Posts.xml`` and ``PostLinks.xml`` with about the dump's row sizes
    (Stack Overflow's 104 GB for 58M posts: 1.8 KB a row) and its attributes (edit dates, accepted answers, licences of every version).

    Links join two questions of the site; ``duplicate_share`` of them are duplicates
    (LinkTypeId 3). Returns the counts written.
    """
    from array import array

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    question_ids = array("q")
    next_id = 1
    answers = 0
    with open(folder / "Posts.xml", "w", encoding="utf-8-sig", newline="\r\n") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for _ in range(questions):
            qid = next_id
            question_ids.append(qid)
            year = rng.randint(2008, 2024)
            count = int(answers_per_question * 2 * rng.random() + 0.5)
            edited = (f'LastEditorUserId="{rng.randint(1, 10**7)}" LastEditDate="{year}-06-02T10:00:00.000" '
                      if rng.random() < 0.4 else "")
            accepted = f'AcceptedAnswerId="{qid + 1}" ' if count and rng.random() < 0.5 else ""
            out.write(f'  <row Id="{qid}" PostTypeId="1" {accepted}CreationDate="{year}-03-01T12:34:56.789" '
                      f'Score="{rng.randint(-3, 60)}" ViewCount="{rng.randint(5, 500000)}" '
                      f'Body={quoteattr(_dump_body(rng, rng.randint(3, 9)))} '
                      f'OwnerUserId="{rng.randint(1, 10**7)}" {edited}'
                      f'LastActivityDate="{year}-07-01T00:00:00.000" Title={quoteattr(_words(rng, 5, 15).capitalize() + "?")} '
                      f'Tags="&lt;{rng.choice(_WORDS)}&gt;&lt;{rng.choice(_WORDS)}&gt;" AnswerCount="{count}" '
                      f'CommentCount="{rng.randint(0, 9)}" ContentLicense="CC BY-SA {rng.choice(("2.5", "3.0", "4.0"))}" />\n')
            next_id += 1
            for _ in range(count):
                out.write(f'  <row Id="{next_id}" PostTypeId="2" ParentId="{qid}" '
                          f'CreationDate="{year}-03-02T08:00:00.000" Score="{rng.randint(-2, 80)}" '
                          f'Body={quoteattr(_dump_body(rng, rng.randint(2, 7)))} '
                          f'OwnerUserId="{rng.randint(1, 10**7)}" LastActivityDate="{year}-03-02T08:00:00.000" '
                          f'CommentCount="{rng.randint(0, 5)}" ContentLicense="CC BY-SA 4.0" />\n')
                next_id += 1
                answers += 1
        out.write("</posts>")
    with open(folder / "PostLinks.xml", "w", encoding="utf-8-sig", newline="\r\n") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<postlinks>\n')
        for n in range(links):
            post, related = rng.choice(question_ids), rng.choice(question_ids)
            kind = 3 if rng.random() < duplicate_share else 1
            out.write(f'  <row Id="{n + 1}" CreationDate="2019-01-01T00:00:00.000" PostId="{post}" '
                      f'RelatedPostId="{related}" LinkTypeId="{kind}" />\n')
        out.write("</postlinks>")
    return {"questions": questions, "answers": answers, "links": links}


def write_msmarco_tables(folder: Path, train_queries: int, judged_queries: int, passages: int,
                         triples_per_judged: int, seed: int = 0) -> None:
    """Write MS MARCO's tables as published, unpacked: ``collection.tsv`` (mojibake passages
    of about 60 words), ``queries.{train,dev,eval}.tsv``, ``qrels.train.tsv`` (one
    relevant passage for each of the first ``judged_queries``) and
    ``qidpidtriples.train.full.2.tsv`` (``triples_per_judged`` BM25 triples per judged
    query, its relevant passage against negatives from the whole collection)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "collection.tsv", "w", encoding="utf-8") as out:
        for pid in range(passages):
            text = _text(rng, 3) + " It\u2019s " + _words(rng, 5, 15) + "."
            out.write(f"{pid}\t{_mojibake(text)}\n")
    for name, first, count in (("train", 0, train_queries), ("dev", 10**7, max(1, train_queries // 8)),
                               ("eval", 2 * 10**7, max(1, train_queries // 8))):
        with open(folder / f"queries.{name}.tsv", "w", encoding="utf-8") as out:
            out.writelines(f"{first + n}\t{_words(rng, 3, 9)}\n" for n in range(count))
    relevant = [rng.randrange(passages) for _ in range(judged_queries)]
    with open(folder / "qrels.train.tsv", "w", encoding="utf-8") as out:
        for qid, pid in enumerate(relevant):
            out.write(f"{qid}\t0\t{pid}\t1\n")
    with open(folder / "qidpidtriples.train.full.2.tsv", "w", encoding="utf-8") as out:
        for qid, pid in enumerate(relevant):
            out.write("".join(f"{qid}\t{pid}\t{rng.randrange(passages)}\n" for _ in range(triples_per_judged)))


def write_gooaq(folder: Path, rows: int, seed: int = 0) -> None:
    """Write ``gooaq.jsonl`` and ``split.json``: 62% of the rows in train (3% of those
    without a long answer), a few in dev and test, the rest (mostly knowledge and
    conversion rows, whose ``answer`` is null) in no split, as the release has it."""
    import json

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train, dev, test = [], [], []
    with open(folder / "gooaq.jsonl", "w", encoding="utf-8") as out:
        for n in range(rows):
            draw = rng.random()
            long_answer = draw < 0.60 or (0.62 <= draw < 0.70)
            if long_answer and rng.random() < 0.15:
                kind, answer = "collection", repr([_text(rng, 1) for _ in range(rng.randint(2, 6))])
            elif long_answer:
                kind, answer = "feat_snip", f"{_text(rng, 2)} ... {_text(rng, 1)}"
            else:
                kind, answer = rng.choice(("knowledge", "unit_conv", "time_conv", "curr_conv")), None
            out.write(json.dumps({"id": n, "question": _words(rng, 4, 12) + "?",
                                  "short_answer": None if answer else _words(rng, 1, 3), "answer": answer,
                                  "answer_type": kind,
                                  "answer_url": f"https://example.com/{n}#:~:text={rng.choice(_WORDS)}"
                                  if answer else None}) + "\n")
            if draw < 0.62:
                train.append([n, round(rng.random(), 3)])
            elif draw < 0.6205:
                dev.append(n)
            elif draw < 0.621:
                test.append(n)
    (folder / "split.json").write_text(json.dumps({"dev": dev, "test": test, "train": train}), "utf-8")


AMAZON_CATEGORIES = {  # share of the records, roughly the release's category sizes
    "Appliances": 0.01, "Arts_Crafts_and_Sewing": 0.02, "Automotive": 0.06, "Baby": 0.02,
    "Beauty": 0.03, "Cell_Phones_and_Accessories": 0.05, "Clothing_Shoes_and_Jewelry": 0.03,
    "Electronics": 0.22, "Grocery_and_Gourmet_Food": 0.02, "Health_and_Personal_Care": 0.06,
    "Home_and_Kitchen": 0.13, "Industrial_and_Scientific": 0.01, "Musical_Instruments": 0.02,
    "Office_Products": 0.03, "Patio_Lawn_and_Garden": 0.03, "Pet_Supplies": 0.03, "Software": 0.01,
    "Sports_and_Outdoors": 0.11, "Tools_and_Home_Improvement": 0.08, "Toys_and_Games": 0.04,
    "Video_Games": 0.03}


def write_amazon_qa(folder: Path, records: int, seed: int = 0) -> None:
    """Write the 21 ``qa_<Category>.json.gz`` files of the 2016 release: one Python dict
    literal per line (single quotes, double where the text holds one), some relative
    answer times without ``unixTime``, HTML entities in some texts."""
    import gzip

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for category, share in AMAZON_CATEGORIES.items():
        with gzip.open(folder / f"qa_{category}.json.gz", "wt", encoding="utf-8", compresslevel=6) as out:
            for _ in range(max(1, round(records * share))):
                record = {"questionType": rng.choice(("yes/no", "open-ended")),
                          "asin": f"B{rng.randrange(10**9):09d}"}
                if rng.random() < 0.1:
                    record["answerTime"] = f"{rng.randint(1, 30)} days ago"
                else:
                    record.update(answerTime="Jun 27, 2014", unixTime=1403852400)
                record["question"] = _words(rng, 5, 20).capitalize() + ("'s fit?" if rng.random() < 0.2 else "?")
                if record["questionType"] == "yes/no":
                    record["answerType"] = rng.choice("YN?")
                record["answer"] = _text(rng, rng.randint(1, 3)) + (" &amp; more" if rng.random() < 0.05 else "")
                out.write(repr(record) + "\n")


def write_searchqa_clue(rng: random.Random, clue_id: int, results: int) -> tuple[str, str]:
    """One SearchQA clue file: ``(file name, pretty-printed JSON)``, with ``results``
    search results of about 40 words of snippet each, some without a snippet."""
    import json

    show, category, value = rng.randint(1, 7000), rng.choice(_WORDS), rng.choice((200, 400, 600, 800, 1000))
    record = {"category": category.upper(), "air_date": "2004-12-31", "question": _text(rng, 1, 8, 20),
              "value": f"${value}", "answer": _words(rng, 1, 3), "round": "Jeopardy!", "show_number": str(show),
              "id": clue_id,
              "search_results": [{"url": f"/url?q=https://example.org/{rng.randrange(10**6)}&sa=U&ved=0ahUKEwi",
                                  "snippet": None if rng.random() < 0.05 else _text(rng, 2, 12, 25),
                                  "title": _words(rng, 3, 8), "related_links": None} for _ in range(results)]}
    return f"{clue_id:06d}-{show}_jeopardy_{category}_{value}.json", json.dumps(record, indent=4)


def _eli5_scores(rng: random.Random, count: int) -> list[int]:
    """Answer scores, best first: the second answer scores at least half the best one's
    for a fifth of the questions, so that the pair rule gives about 1.2 pairs a question."""
    best = rng.randint(4, 500)
    rest = sorted((int(best * 0.45 * rng.random()) for _ in range(count - 1)), reverse=True)
    if rest and rng.random() < 0.2:
        rest[0] = int(best * 0.7)
    return [best] + rest


def write_eli5_kilt(path: Path, questions: int, seed: int = 0, first_id: int = 0) -> None:
    """Write KILT ELI5 lines: ``{"id", "input", "output": [answers..., {"provenance"}]}``
    with five to ten answers of about 100 words, scores falling off."""
    import json

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for n in range(questions):
            scores = _eli5_scores(rng, rng.randint(5, 10))
            answers = [{"answer": _text(rng, rng.randint(3, 9)) + (" &gt; quoted" if rng.random() < 0.05 else ""),
                        "meta": {"score": score}} for score in scores]
            out.write(json.dumps({"id": f"e{first_id + n:07x}", "input": _words(rng, 5, 16).capitalize() + "?",
                                  "output": answers + [{"provenance": []}]}) + "\n")


def write_eli5_category(path: Path, questions: int, seed: int = 0, first_id: int = 0) -> None:
    """Write ELI5-Category records, as the Hugging Face export writes them (gzip JSON
    lines): the HF ELI5 shape with ``category`` and column-oriented answers."""
    import gzip
    import json

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
        for n in range(questions):
            count = rng.randint(1, 6)
            scores = _eli5_scores(rng, count)
            texts = [_text(rng, rng.randint(2, 8)) for _ in range(count)]
            out.write(json.dumps({"q_id": f"e{first_id + n:07x}", "title": _words(rng, 5, 16).capitalize() + "?",
                                  "selftext": "", "category": rng.choice(("Physics", "Biology", "Economics")),
                                  "subreddit": "explainlikeimfive",
                                  "answers": {"a_id": [f"a{n}x{k}" for k in range(count)], "text": texts,
                                              "score": scores, "text_urls": [[] for _ in range(count)]},
                                  "title_urls": ["dummy"], "selftext_urls": ["dummy"]}) + "\n")


def write_quora(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``quora_duplicate_questions.tsv``: the header, then ``rows`` pairs, 37% of them
    duplicates. A question keeps its qid where it recurs: 64% of the question slots are a
    question seen nowhere else, the rest are drawn from a small set of recurring questions
    (1.33 distinct questions per pair in all, as in the release), so that about a third of
    the duplicates' questions also appear in a non-duplicate pair. Texts holding quotes
    are CSV-quoted."""
    rng = random.Random(seed)
    recurring = max(2, int(rows * 0.09))
    fresh = recurring
    texts: dict[int, str] = {}

    def question(qid: int) -> str:
        if qid not in texts:
            text = _words(rng, 5, 18).capitalize() + "?"
            texts[qid] = f'"{text[:-1]} ""{rng.choice(_WORDS)}""?"' if rng.random() < 0.03 else text
        return texts[qid]

    def draw() -> int:
        nonlocal fresh
        if rng.random() < 0.64:
            fresh += 1
            return fresh
        return rng.randint(1, recurring)

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n")
        for n in range(rows):
            first, second = draw(), draw()
            while second == first:
                second = draw()
            out.write(f"{n}\t{first}\t{second}\t{question(first)}\t{question(second)}\t"
                      f"{int(rng.random() < 0.37)}\n")


def write_nq_simplified(path: Path, examples: int, seed: int = 0) -> None:
    """Write the simplified Natural Questions train file (gzip JSON lines of about 55 KB,
    a whole page as space-separated tokens): half the examples without a long answer,
    a third of the rest a table, the others a ``<P>`` paragraph."""
    import gzip
    import json

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
        for n in range(examples):
            tokens, candidates = ["<H1>", *rng.choices(_WORDS, k=3), "</H1>"], []
            for _ in range(rng.randint(60, 110)):
                start = len(tokens)
                if rng.random() < 0.15:
                    cells = rng.choices(_WORDS, k=rng.randint(12, 40))
                    tokens += ["<Table>", "<Tr>"]
                    for cell in cells:
                        tokens += ["<Td>", cell, "</Td>"]
                    tokens += ["</Tr>", "</Table>"]
                else:
                    tokens += ["<P>", *rng.choices(_WORDS, k=rng.randint(40, 120)), "</P>"]
                candidates.append({"start_token": start, "end_token": len(tokens), "top_level": True})
            text = " ".join(tokens)
            draw = rng.random()
            if draw < 0.49:
                index = -1
            else:
                want = "<Table>" if draw < 0.67 else "<P>"
                fitting = [i for i, c in enumerate(candidates) if tokens[c["start_token"]] == want] or [0]
                index = rng.choice(fitting)
            span = candidates[index] if index >= 0 else {"start_token": -1, "end_token": -1}
            out.write(json.dumps({
                "document_text": text, "long_answer_candidates": candidates,
                "question_text": _words(rng, 4, 10),
                "annotations": [{"annotation_id": rng.getrandbits(63),
                                 "long_answer": {"start_token": span["start_token"], "end_token": span["end_token"],
                                                 "candidate_index": index},
                                 "short_answers": [], "yes_no_answer": "NONE"}],
                "document_url": f"https://en.wikipedia.org//w/index.php?title=Page_{n}&amp;oldid={n}",
                "example_id": rng.getrandbits(63) - 2**62}) + "\n")


def write_squad(path: Path, questions: int, version: str, seed: int = 0) -> None:
    """Write a SQuAD train file (one JSON document): articles of paragraphs of about 120
    words with five questions each; in v2.0 a third of the questions are unanswerable."""
    import json

    rng = random.Random(seed)
    data, written = [], 0
    while written < questions:
        paragraphs = []
        for _ in range(rng.randint(3, 12)):
            context = _text(rng, 7)
            qas = []
            for _ in range(min(5, questions - written)):
                answer = context.split(" ")[rng.randrange(20)]
                entry = {"question": _words(rng, 5, 14).capitalize() + "?", "id": f"{rng.getrandbits(96):024x}",
                         "answers": [{"text": answer, "answer_start": context.find(answer)}], "is_impossible": False}
                if version == "2.0" and rng.random() < 0.33:
                    entry = {"plausible_answers": entry["answers"], "question": entry["question"],
                             "id": entry["id"], "answers": [], "is_impossible": True}
                elif version == "1.1":
                    del entry["is_impossible"]
                qas.append(entry)
                written += 1
            paragraphs.append({"qas": qas, "context": context})
            if written >= questions:
                break
        data.append({"title": _words(rng, 1, 3).title().replace(" ", "_"), "paragraphs": paragraphs})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": f"v{version}", "data": data}), "utf-8")


def write_triviaqa_rc(folder: Path, questions: int, seed: int = 0) -> int:
    """Write the unpacked ``triviaqa-rc`` release: ``qa/{web,wikipedia}-{train,dev}.json``
    (pretty-printed with the release's 4-space indent) and ``evidence/`` text files of
    about 6 KB. Four in five train questions are in both question files (merged by the
    build); each cites one or two Wikipedia pages (shared between questions) and up to
    three web pages of its own; the answer is in its evidence for 95% of them. Returns
    the number of evidence files."""
    import json

    rng = random.Random(seed)
    wiki_pages = max(1, int(questions * 0.6))
    evidence = folder / "evidence"
    (evidence / "wikipedia").mkdir(parents=True, exist_ok=True)
    answers = [f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}zz{n}" for n in range(questions)]
    page_answers: dict[int, list[str]] = {}
    records = {"web": [], "wikipedia": []}
    files = 0
    for n in range(questions):
        qid = f"tq_{n}"
        pages = rng.sample(range(wiki_pages), k=min(wiki_pages, rng.randint(1, 2)))
        found = rng.random() < 0.95
        if found:
            page_answers.setdefault(pages[0], []).append(answers[n])
        web = []
        for m in range(rng.randint(0, 3)):
            name = f"{n % 1000}/{n}_{m}.txt"
            (evidence / "web" / str(n % 1000)).mkdir(parents=True, exist_ok=True)
            body = _text(rng, 40)
            if found and m == 0:
                body += f" The answer is {answers[n]}. " + _text(rng, 10)
            (evidence / "web" / name).write_text(body, "utf-8")
            files += 1
            web.append({"Description": _words(rng, 5, 12), "Filename": name, "Rank": m,
                        "Title": _words(rng, 2, 6), "Url": f"http://example.org/{n}/{m}"})
        record = {"Answer": {"Aliases": [answers[n]], "NormalizedAliases": [answers[n].lower()],
                             "NormalizedValue": answers[n].lower(), "Type": "FreeForm", "Value": answers[n]},
                  "EntityPages": [{"DocSource": "TagMe", "Filename": f"Page_{p}.txt", "Title": f"Page {p}"}
                                  for p in pages],
                  "Question": _words(rng, 6, 16).capitalize() + "?", "QuestionId": qid,
                  "QuestionSource": "http://www.example.org/", "SearchResults": web}
        domain = rng.choices(("web", "wikipedia", "both"), (0.12, 0.08, 0.8))[0]
        for name in (("web", "wikipedia") if domain == "both" else (domain,)):
            records[name].append(record)
    for page in range(wiki_pages):
        hits = "".join(f" It is known as {a}. {_text(rng, 4)}" for a in page_answers.get(page, ()))
        (evidence / "wikipedia" / f"Page_{page}.txt").write_text(_text(rng, 30) + hits + _text(rng, 10), "utf-8")
        files += 1
    (folder / "qa").mkdir(parents=True, exist_ok=True)
    for domain, listed in records.items():
        dev = listed[: max(1, len(listed) // 9)]
        for split, data in (("train", listed), ("dev", dev)):
            document = {"Data": data, "Domain": domain.title(), "Split": split, "VerifiedEval": False,
                        "Version": 1.0}
            (folder / "qa" / f"{domain}-{split}.json").write_text(json.dumps(document, indent=4), "utf-8")
    return files
