"""TriviaQA: (question, passage of an evidence document that contains the answer) pairs.

Files (under ``IN/triviaqa/``, as unpacked from ``triviaqa-rc.tar.gz`` and optionally
``triviaqa-unfiltered.tar.gz``):
    ``triviaqa-rc/qa/{web,wikipedia}-{train,dev}.json``  question files, each one
        pretty-printed JSON object ``{"Data": [record, ...], "Domain", "Split", ...}``
    ``triviaqa-rc/evidence/web/<n>/<n>_<m>.txt``         web evidence (plain UTF-8 text)
    ``triviaqa-rc/evidence/wikipedia/<Title>.txt``       Wikipedia evidence
    ``triviaqa-unfiltered/unfiltered-web-{train,dev}.json``  the unfiltered release: read
        only with ``releases=rc,unfiltered``; its ``Filename``s resolve against the rc
        ``evidence/`` folder (it has none of its own)
The rc layout with ``qa/`` and ``evidence/`` directly under ``IN/triviaqa/`` is accepted
too; evidence is then looked up in the ``evidence/`` beside the ``qa/`` folder the
question came from. Any file may be compressed (sniffed from the bytes). Not candidates
and not read: ``*-test-without-answers.json`` (no answers) and ``verified-*-dev.json``
(hand-checked subsets of the dev files, which would repeat dev questions).

Parse: question files are several GB when evidence is inlined, so they are never loaded
whole. Every record starts on a line that is exactly 8 spaces and ``{`` and ends on a line
starting with 8 spaces and ``}``; those lines are collected and each record is parsed on
its own (:func:`parse.iter_record_texts`). Record problems are rejects: ``bad_encoding``,
``bad_json``, ``not_an_object``, ``malformed_record`` (``QuestionId`` or ``Question``
not a string, ``EntityPages``/``SearchResults`` not lists), ``missing_answer`` (a train
or dev record without ``Answer``), ``no_answer_aliases`` (no alias left after
normalisation). A file that has bytes but no record line at all (not the release
layout) is ``malformed_file``; from the core's reader, a file without any byte is
``empty_file`` and one that ends inside a record ``unreadable_file`` (the records before
it are kept). Evidence entries without a string ``Filename`` are not references and are
left out.

Evidence: ``EntityPages[].Filename`` is relative to ``evidence/wikipedia``,
``SearchResults[].Filename`` to ``evidence/web``. The same question (same ``QuestionId``)
is listed in the web and the Wikipedia files; a Beam ``GroupByKey`` on ``QuestionId``
merges its entries (first file name wins for the text; references are united). The
references are then grouped by evidence file, and each referenced file is read once, by
the worker that holds its group, and matched against every question that cites it: a
Beam join keyed by file name that only ever opens the files some question needs (the rc
release has hundreds of thousands of evidence files; listing them all into the graph
would not scale). A referenced file that does not exist is counted once as ``missing_evidence_file``
(the release is known to lack some); an evidence file with a ``Filename`` that would
leave the evidence folder is ``bad_evidence_filename``; one that cannot be read or
decoded as UTF-8 is ``unreadable_evidence_file``. Finally the passages found meet their
question in a ``CoGroupByKey`` on ``QuestionId``.

Records (:mod:`pipelines.corpus.accounting`): a record is one record of a question file (a
question as one file lists it). It ends as a pair, a reject (parse rejects,
``no_evidence``, ``answer_not_in_evidence``, ``no_evidence_file``) or the skip
``question_in_another_file``: the entries of a ``QuestionId`` are merged into one
question, which stands for all of them, so every entry but the first by file name is
that skip. A ``malformed_file`` is one record read and rejected, and so is each evidence
file reject (``missing_evidence_file``, ``bad_evidence_filename``,
``unreadable_evidence_file``): evidence files are not records otherwise.

Pair rules (``docs/corpus-spec.md``; which evidence and how much of it is a **project
rule**), one function each:
    :func:`rules.normalize_answer`   how answers and evidence are compared
    :func:`rules.find_answer`        where in an evidence text the answer first occurs
    :func:`rules.cut_passage`        the passage kept around it
    :func:`rules.evidence_rank`      which evidence gives the pair when several contain
                                     the answer
    :func:`rules.question_passage_pair`  trivia_qa: (question, passage)
A question whose evidence never contains an answer alias gives no pair
(``answer_not_in_evidence``), nor one without any evidence reference (``no_evidence``) or
whose referenced files are all missing or unreadable (``no_evidence_file``).

Documented count: 73,346. The rc train questions number 76,496 (web) and 61,888
(Wikipedia), mostly the same questions, so about 77k distinct train questions; rc kept
only questions whose evidence contains the answer, so nearly every one finds a passage
and the default build should land a few percent above the documented count (inside the
registry's 5% tolerance); missing evidence files and answers that only match after
TriviaQA's looser normalisation account for the questions that give no pair.

Source options (``--source-option trivia_qa.<key>=<value>``):
    ``splits``         comma-separated, default ``train`` (the documented count is train);
                       ``train,dev`` adds the dev questions.
    ``releases``       ``rc`` (default) or ``rc,unfiltered`` / ``unfiltered``: which
                       question files to read.
    ``prefer``         ``wikipedia`` (default) or ``web``: the evidence kind tried first
                       (see :func:`rules.evidence_rank`).
    ``passage_words``  length of the passage in words, default 100.

Modules: :mod:`.parse` reads the question files (records cut out and checked one at a
time), :mod:`.rules` holds the pair rules and the Beam steps that apply them (evidence
files read and matched); this module builds the pipeline (:meth:`TriviaQA.expand`).
"""
from __future__ import annotations

import functools

import apache_beam as beam

from pipelines.corpus.rejects import REJECTED
from pipelines.corpus.source import Source, SourceContext, SourceOutput, positive_int
from pipelines.engine import ReadFiles, files

from .parse import _RC_FILE, _UNFILTERED_FILE, WEB, WIKIPEDIA, ReadQuestionFile
from .rules import DATASET, _MatchEvidence, _merge_question, _pair_question, _references

SPLITS = ("train", "dev")
RELEASES = ("rc", "unfiltered")
DEFAULT_SPLITS = frozenset({"train"})
DEFAULT_RELEASES = frozenset({"rc"})
DEFAULT_PREFER = WIKIPEDIA
DEFAULT_PASSAGE_WORDS = 100

class TriviaQA(Source):
    name = "trivia_qa"
    counts_records = True
    folder = "triviaqa"
    datasets = (DATASET,)
    description = "TriviaQA rc (question files and evidence texts), question/evidence passages"

    def _options(self, ctx: SourceContext) -> dict:
        return {
            "splits": ctx.option("splits", DEFAULT_SPLITS, functools.partial(parse_names, SPLITS)),
            "releases": ctx.option("releases", DEFAULT_RELEASES, functools.partial(parse_names, RELEASES)),
            "prefer": ctx.option("prefer", DEFAULT_PREFER, choices=(WIKIPEDIA, WEB)),
            "passage_words": ctx.option("passage_words", DEFAULT_PASSAGE_WORDS, positive_int),
        }

    def find_question_files(self, ctx: SourceContext) -> list[tuple[str, int, str]]:
        """The question files to read, as ``(path, size, evidence folder)``."""
        options = self._options(ctx)
        found, rc_roots = [], []
        for qa_dir in (files.join(ctx.source_dir, "triviaqa-rc", "qa"), files.join(ctx.source_dir, "qa")):
            for path, size in files.list_files(files.join(qa_dir, "*")):
                match = _RC_FILE.match(path.rsplit("/", 1)[-1])
                if match and "rc" in options["releases"] and match.group("split") in options["splits"]:
                    found.append((path, size, files.join(qa_dir.rsplit("/", 1)[0], "evidence")))
                if match:
                    rc_roots.append(files.join(qa_dir.rsplit("/", 1)[0], "evidence"))
        if "unfiltered" in options["releases"]:
            rc_evidence = rc_roots[0] if rc_roots else files.join(ctx.source_dir, "triviaqa-rc", "evidence")
            for path, size in files.list_files(files.join(ctx.source_dir, "triviaqa-unfiltered", "*")):
                match = _UNFILTERED_FILE.match(path.rsplit("/", 1)[-1])
                if match and match.group("split") in options["splits"]:
                    found.append((path, size, rc_evidence))
        return sorted(found)

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        question_files = self.find_question_files(ctx)
        evidence = set()
        for _path, _size, root in question_files:
            evidence.update(files.list_dir(root))
        return sorted({(path, size) for path, size, _root in question_files} | evidence)

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        options = self._options(ctx)
        question_files = self.find_question_files(ctx)
        roots = {ctx.relative(path): root for path, _size, root in question_files}
        read = pipeline | "trivia_qa/ReadQuestions" >> ReadFiles(
            [path for path, _size, _root in question_files], ReadQuestionFile(roots),
            input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict)
        merged = (
            read.records
            | "trivia_qa/KeyByQuestionId" >> beam.Map(lambda q: (q["qid"], q))
            | "trivia_qa/GroupQuestionEntries" >> beam.GroupByKey()
            | "trivia_qa/MergeQuestion" >> beam.FlatMap(_merge_question).with_outputs(REJECTED, main="questions")
        )
        matched = (
            merged.questions
            | "trivia_qa/KeyByEvidenceFile" >> beam.FlatMap(_references)
            | "trivia_qa/GroupByEvidenceFile" >> beam.GroupByKey()
            | "trivia_qa/MatchEvidence" >> beam.ParDo(_MatchEvidence(ctx.input_root, options["passage_words"]))
            .with_outputs(REJECTED, main="outcomes")
        )
        pairs = (
            {"question": merged.questions | "trivia_qa/KeyQuestions" >> beam.Map(lambda q: (q["qid"], q)),
             "outcome": matched.outcomes}
            | "trivia_qa/JoinPassages" >> beam.CoGroupByKey()
            | "trivia_qa/Pair" >> beam.FlatMap(_pair_question, options["prefer"])
            .with_outputs(REJECTED, main="rows")
        )
        return SourceOutput(rows={DATASET: pairs.rows},
                            rejects=[read[REJECTED], merged[REJECTED], matched[REJECTED], pairs[REJECTED]])


def parse_names(allowed: tuple[str, ...], value: str) -> frozenset:
    """Option cast: comma-separated names, each one of ``allowed``, as a frozenset."""
    names = frozenset(s.strip() for s in value.split(",") if s.strip())
    if not names or not names <= set(allowed):
        raise ValueError(f"expected a comma-separated subset of {', '.join(allowed)}")
    return names


SOURCE = TriviaQA()
