"""The form texts are compared in, for decontamination and deduplication.

Two texts match exactly when their *match forms* are equal: lower-cased, every run of
characters other than letters and digits (punctuation, symbols, spaces) replaced by one
space, and trimmed. ``"What's the capital of France?"`` and ``"what s the capital of
france"`` have the same match form. Words are the match form split at spaces.

The rule is applied to whole Arrow columns (pyarrow's compute kernels, RE2 character
classes) so that it costs the same per row as reading it; :func:`match_form` applies the
very same kernels to one text.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Unicode letters and digits (RE2's \pL and \pN); everything else separates words.
_SEPARATORS = r"[^\pL\pN]+"


def match_forms(column) -> pa.Array:
    """The match form of every text of a string column (nulls stay null)."""
    lowered = pc.utf8_lower(column)
    spaced = pc.replace_substring_regex(lowered, _SEPARATORS, " ")
    return pc.utf8_trim(spaced, " ")


def match_form(text: str) -> str:
    """The match form of one text."""
    return match_forms(pa.array([text], pa.string()))[0].as_py()


def match_words(column) -> pa.Array:
    """The words of every text's match form, as a list array (an empty text has none)."""
    return pc.split_pattern(match_forms(column), " ")
