"""The terms each dataset is published under, and which of them a build may use.

Every dataset of the registry names one :class:`Licence` by id (``DatasetSpec.licence``).
A licence says where its terms are published and whether they allow commercial use:
``yes``, ``no`` or ``unknown``; unknown counts as no, because nobody can show a user
that the use is allowed. ``corpus build --licences commercial`` builds only datasets
whose terms say yes; ``--licences ID,ID`` builds only those with the licences named.
See ``docs/licences.md``.

StackExchange content is CC BY-SA 2.5, 3.0 or 4.0 post by post; its dataset licence is
the family (``cc-by-sa``), and each row carries its own version (the ``licence`` column).
"""
from __future__ import annotations

from dataclasses import dataclass

YES, NO, UNKNOWN = "yes", "no", "unknown"
COMMERCIAL = "commercial"


@dataclass(frozen=True)
class Licence:
    """Terms a dataset is published under.

    Attributes:
        id: short id, used by ``--licences`` and in the rows' ``licence`` column.
        name: the licence's name as its publisher gives it.
        url: where the terms are published.
        commercial: ``yes``, ``no`` or ``unknown`` (counted as no).
        attribution: the terms require crediting the work and its authors.
        note: one sentence on what decides the answer, where it is not the licence's name.
    """

    id: str
    name: str
    url: str
    commercial: str
    attribution: bool = False
    note: str = ""

    @property
    def allows_commercial(self) -> bool:
        return self.commercial == YES


LICENCES: tuple[Licence, ...] = (
    Licence("cc-by-sa", "CC BY-SA 2.5, 3.0 or 4.0 (per post)",
            "https://stackoverflow.com/help/licensing", YES, attribution=True,
            note="Each post is licensed by its date or its ContentLicense attribute; rows name "
                 "the version, the post and its author."),
    Licence("cc-by-sa-2.5", "CC BY-SA 2.5", "https://creativecommons.org/licenses/by-sa/2.5/", YES,
            attribution=True),
    Licence("cc-by-sa-3.0", "CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0/", YES,
            attribution=True),
    Licence("cc-by-sa-4.0", "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/", YES,
            attribution=True),
    Licence("msmarco-terms", "MS MARCO terms and conditions (non-commercial research)",
            "https://microsoft.github.io/msmarco/", NO,
            note="The data is offered for non-commercial research purposes only."),
    Licence("paq-cc-by-sa-3.0", "CC BY-SA 3.0 (PAQ question-answer pairs and metadata)",
            "https://github.com/facebookresearch/PAQ#licence", YES, attribution=True,
            note="The pairs are licensed CC BY-SA; the repository's code and models are CC BY-NC."),
    Licence("wikianswers-unstated", "no licence stated (WikiAnswers paraphrase corpus)",
            "https://github.com/afader/oqa#wikianswers-corpus", UNKNOWN,
            note="Questions crawled from WikiAnswers, released for research without stated terms."),
    Licence("gooaq-terms", "GooAQ terms (non-commercial)", "https://github.com/allenai/gooaq", NO,
            note="The README restricts the data to non-commercial use."),
    Licence("amazon-qa-unstated", "no licence stated (Amazon question/answer data)",
            "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/qa/", UNKNOWN,
            note="Released for research by its collectors; Amazon's content without stated terms."),
    Licence("yahoo-webscope-terms", "Yahoo! Webscope data agreement (research only)",
            "https://webscope.sandbox.yahoo.com/catalog.php?datatype=l", NO,
            note="Webscope data is licensed to academic researchers for research use."),
    Licence("searchqa-unstated", "no licence stated (SearchQA)",
            "https://github.com/nyu-dl/dl4ir-searchQA", UNKNOWN,
            note="Jeopardy! clues with Google snippets, released without stated terms."),
    Licence("eli5-unstated", "no licence stated (ELI5, Reddit content)",
            "https://github.com/facebookresearch/ELI5", UNKNOWN,
            note="Reddit posts; the repository's code licence does not cover the content."),
    Licence("quora-terms", "Quora's terms of service (non-commercial)",
            "https://quoradata.quora.com/First-Quora-Dataset-Release-Question-Pairs", NO,
            note="The release is subject to Quora's terms, which allow non-commercial use."),
    Licence("triviaqa-unstated", "no data licence stated (TriviaQA)",
            "https://nlp.cs.washington.edu/triviaqa/", UNKNOWN,
            note="The code is Apache-2.0; the questions and evidence documents carry no stated terms."),
)

_BY_ID = {licence.id: licence for licence in LICENCES}


def get(licence_id: str) -> Licence:
    """The licence ``licence_id``; ``KeyError`` naming the known ids."""
    try:
        return _BY_ID[licence_id]
    except KeyError:
        raise KeyError(f"unknown licence {licence_id!r}; known: {', '.join(_BY_ID)}") from None


def licence_ids() -> list[str]:
    return list(_BY_ID)


@dataclass(frozen=True)
class LicenceSelection:
    """Which licences a build accepts: ``commercial`` (terms that say yes) or a set of ids.

    A licence family (``cc-by-sa``) is accepted only when named itself: its rows may carry
    any of its versions.
    """

    commercial_only: bool = False
    ids: frozenset = frozenset()

    @classmethod
    def parse(cls, value: str) -> "LicenceSelection":
        """``commercial`` or a comma-separated list of licence ids; ``ValueError`` for others."""
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("expected 'commercial' or a comma-separated list of licence ids")
        if names == [COMMERCIAL]:
            return cls(commercial_only=True)
        unknown = [name for name in names if name not in _BY_ID]
        if unknown:
            raise ValueError(f"unknown licence {', '.join(unknown)}; expected 'commercial' or ids "
                             f"among {', '.join(_BY_ID)}")
        return cls(ids=frozenset(names))

    def refusal(self, licence: Licence) -> str | None:
        """Why a dataset under ``licence`` is not built, or ``None`` when it is accepted."""
        if self.commercial_only:
            if licence.allows_commercial:
                return None
            return (f"licence {licence.id}: commercial use "
                    f"{'not allowed' if licence.commercial == NO else 'not stated (counted as not allowed)'}")
        if licence.id in self.ids:
            return None
        return f"licence {licence.id} not in --licences"

    def describe(self) -> str:
        return COMMERCIAL if self.commercial_only else ",".join(sorted(self.ids))
