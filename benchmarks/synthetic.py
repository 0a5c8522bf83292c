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
