"""Text normalisation shared by every dataset, and the transform that applies it to rows.

Every text that reaches a shard has gone through :func:`normalize_text`:
Unicode NFC, control characters removed, all whitespace runs collapsed to one space,
stripped. Sources whose upstream field is HTML call :func:`html_to_text` first (tags
removed, entities decoded); decoding entities is an improvement over the original
conversion, which only removed tags, so ``&amp;`` reaches the model as ``&``.

:class:`NormalizeRows` runs on every dataset's rows before the sink: it normalises the
three text fields, applies the dataset's :class:`TextPolicy` (empty and too-long texts),
gives a row without a licence its dataset's (the registry's ``licence``) and checks the
row schema. Each drop becomes a rejected record with a reason. Rows come
one by one (dicts) or as Arrow tables; the rows of a dataset whose source normalised
every text where it read it (``SourceOutput.normalized``: a passage once, not once per
triplet that uses it) are only checked.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.corpus import accounting
from pipelines.corpus.rejects import REJECTED, count_reject, make_reject
from pipelines.corpus.schema import describe_row, validate_row

# Block-level elements end a run of text: "<p>a</p><p>b</p>" is "a b", while
# inline elements do not split words: "x<code>y</code>z" is "xyz".
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd details div dl dt figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr img li main nav ol p pre section summary table "
    "tbody td tfoot th thead tr ul".split()
)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)", re.S | re.I)
# Attributes may quote '>', so a tag is '<', a name, then quoted or plain attribute text.
_ATTRIBUTES = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_BLOCK_TAG = re.compile(rf"</?(?:{'|'.join(sorted(_BLOCK_TAGS))})\b{_ATTRIBUTES}>", re.I)
_ANY_TAG = re.compile(rf"</?(?:[A-Za-z][A-Za-z0-9:-]*|[!?]){_ATTRIBUTES}>")
_WHITESPACE = re.compile(r"\s+")
# C0/C1 controls except TAB/LF/CR (which are whitespace), and the BOM/zero-width no-break space.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")


def html_to_text(markup: str) -> str:
    """Render an HTML fragment as plain text.

    Comments, ``<script>`` and ``<style>`` contents are removed, block-level tags become a
    space and inline tags vanish; entities are decoded *after* tag removal, so code that
    shows ``&lt;div&gt;`` keeps the literal text ``<div>``. Whitespace is collapsed.

    Args:
        markup: HTML as found in the upstream field (already XML- or JSON-decoded).
    Returns:
        The normalised text (see :func:`normalize_text`); empty when nothing is left.
    """
    if not markup:
        return ""
    text = markup
    if "<!--" in text:
        text = _COMMENT.sub(" ", text)
    if "<s" in text or "<S" in text:
        text = _SCRIPT_STYLE.sub(" ", text)
    if "<" in text:
        text = _ANY_TAG.sub("", _BLOCK_TAG.sub(" ", text))
    if "&" in text:
        text = html.unescape(text)
    return normalize_text(text)


def normalize_text(text: str | None) -> str:
    """NFC, drop control characters, collapse whitespace to single spaces, strip.

    Args:
        text: any string; ``None`` is treated as empty.
    Returns:
        The normalised string, possibly empty.
    """
    if not text:
        return ""
    printable = text.isprintable()  # no control character, no whitespace but U+0020
    if not printable:
        text = _CONTROL.sub("", text)  # before NFC: a removed control may join a mark to a base
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if printable and "  " not in text and text[0] != " " and text[-1] != " ":
        return text  # already normalised, as most texts are by the time they reach a row
    return _WHITESPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class TextPolicy:
    """Length rules a dataset applies to each text after normalisation.

    Attributes:
        min_chars: a text shorter than this is rejected (``<field>_empty`` when it is
            empty, ``<field>_too_short`` otherwise).
        max_chars: texts longer than this are rejected as ``<field>_too_long`` or cut,
            depending on ``truncate``. ``None`` means no limit.
        truncate: cut over-long texts at ``max_chars`` (on a word boundary when one is
            near) instead of rejecting the row.
    """

    min_chars: int = 1
    max_chars: int | None = 100_000
    truncate: bool = False


def truncate_text(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars``, at the last space in the final 10% if any."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ", int(max_chars * 0.9))
    return cut[:space] if space > 0 else cut


def apply_policy(row: dict, policy: TextPolicy, normalized: bool = False) -> tuple[dict | None, str | None, str]:
    """Normalise the texts of ``row`` (unless ``normalized``: they already are) and apply
    ``policy``.

    Returns:
        ``(row, None, "")`` when the row is kept (``row`` itself when no text changed,
        otherwise a new dict; the input is never modified), or ``(None, reason, detail)``.
    """
    out = row
    for field in ("anchor", "positive", "negative"):
        value = row.get(field)
        if value is None and field == "negative":
            continue
        text = normalize_text(value) if isinstance(value, str) and not normalized else value
        if isinstance(text, str):
            if not text:
                return None, f"{field}_empty", f"{field} is empty after normalisation"
            if len(text) < policy.min_chars:
                return None, f"{field}_too_short", f"{field} has {len(text)} < {policy.min_chars} characters"
            if policy.max_chars is not None and len(text) > policy.max_chars:
                if not policy.truncate:
                    return None, f"{field}_too_long", f"{field} has {len(text)} > {policy.max_chars} characters"
                text = truncate_text(text, policy.max_chars)
        if text is not value:
            if out is row:
                out = dict(row)
            out[field] = text
    problem = validate_row(out)
    if problem:
        return None, "schema_error", f"{describe_row(row)}: {problem}"
    return out, None, ""


TEXT_FIELDS = ("anchor", "positive", "negative")


# A text that may change under normalize_text: a character outside printable ASCII (a
# control, whitespace other than a space, anything NFC might compose), two spaces in a row,
# or a space at either end. Every other text is its own normal form.
_MAY_CHANGE = r"[^\x20-\x7e]|  |^ | $"


def normalize_column(column, prepare=None) -> pa.Array:
    """:func:`normalize_text` of every value of a string column (nulls stay null).

    The texts that cannot change (printable ASCII without a space at an end or two in a
    row, :data:`_MAY_CHANGE`) are found by Arrow; only the others are normalised one by
    one in Python.

    Args:
        column: a string array or chunked array.
        prepare: a function applied to each text before :func:`normalize_text` (MS MARCO's
            mojibake repair); it must give printable ASCII back unchanged.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    normalize = normalize_text if prepare is None else (lambda text: normalize_text(prepare(text)))
    may_change = pc.fill_null(pc.match_substring_regex(column, _MAY_CHANGE), False)
    changing = pc.sum(may_change).as_py() or 0
    if changing == 0:
        return column.cast(pa.string())
    if changing == len(column) - column.null_count:
        return pa.array([None if value is None else normalize(value) for value in column.to_pylist()],
                        pa.string())
    fixed = pa.array([normalize(value) for value in column.filter(may_change).to_pylist()], pa.string())
    return pc.replace_with_mask(column.cast(pa.string()), may_change, fixed)


def _surely_kept(table: pa.Table, policy: TextPolicy, not_null: tuple[str, ...],
                 non_empty: tuple[str, ...]) -> pa.Array:
    """Rows of a normalised table that :func:`apply_policy` keeps unchanged: every text
    within the policy's lengths, the other fields present (and non-empty where the
    schema says so). The others go through :func:`apply_policy` one by one (for their
    exact reason, or their truncation)."""
    mask = None
    for name in TEXT_FIELDS:
        ok = _length_ok(table[name], max(1, policy.min_chars), policy.max_chars)
        if name == "negative":  # null for pair datasets: fine (Kleene logic: null or x)
            ok = pc.or_kleene(pc.is_null(table[name]), ok)
        mask = ok if mask is None else pc.and_kleene(mask, ok)
    for name in not_null:
        mask = pc.and_kleene(mask, pc.is_valid(table[name]))
    for name in non_empty:  # a null is not empty: not_null decides whether it may be null
        column = table[name]
        ok = pc.greater(pc.binary_length(column), 0)
        mask = pc.and_kleene(mask, pc.or_kleene(pc.is_null(column), ok) if column.null_count else ok)
    return pc.fill_null(mask, False)


def _length_ok(column, min_chars: int, max_chars: int | None):
    """Whether each text has ``min_chars`` to ``max_chars`` characters. Decided from the
    byte length (a character is 1 to 4 UTF-8 bytes) where that settles it, which spares
    counting the characters of every text; counted only when some text is in doubt."""
    size = pc.binary_length(column)
    surely = pc.greater_equal(size, 4 * min_chars if min_chars > 1 else min_chars)
    if max_chars is not None:
        surely = pc.and_(surely, pc.less_equal(size, max_chars))
    if pc.all(pc.fill_null(surely, True)).as_py():
        return surely
    length = pc.utf8_length(column)
    ok = pc.greater_equal(length, min_chars)
    if max_chars is not None:
        ok = pc.and_(ok, pc.less_equal(length, max_chars))
    return ok


class NormalizeRows(beam.DoFn):
    """Normalise a dataset's rows; rows that fail the policy or the schema go to ``rejected``.

    Args:
        dataset: the dataset id (used for metrics names).
        policy: the dataset's :class:`TextPolicy`.
        normalized: the source normalised every text where it read it
            (:attr:`SourceOutput.normalized`); only the policy and the schema are checked.
        licence: the dataset's licence id, given to every row whose ``licence`` is null
            (``None``: rows must carry their own).
    """

    def __init__(self, dataset: str, policy: TextPolicy, normalized: bool = False,
                 licence: str | None = None):
        self.dataset = dataset
        self.policy = policy
        self.normalized = normalized
        self.licence = licence

    def setup(self):
        from pipelines.corpus.schema import field_rules

        self._not_null = tuple(name for name, nullable, _non_empty in field_rules()
                               if not nullable and name not in TEXT_FIELDS)
        self._non_empty = tuple(name for name, _nullable, non_empty in field_rules()
                                if non_empty and name not in TEXT_FIELDS)

    def process(self, row):
        if isinstance(row, pa.Table):
            yield from self._process_table(row)
            return
        accounting.count_row_in(self.dataset)
        if self.licence is not None and isinstance(row, dict) and row.get("licence") is None:
            row = {**row, "licence": self.licence}
        kept, reason, detail = apply_policy(row, self.policy, self.normalized)
        if kept is not None:
            yield kept
            return
        yield self._reject(row, reason, detail)

    def _process_table(self, table: pa.Table):
        if table.num_rows == 0:
            return
        accounting.count_row_in(self.dataset, table.num_rows)
        if self.licence is not None and table["licence"].null_count:
            table = table.set_column(table.schema.get_field_index("licence"), table.schema.field("licence"),
                                     pc.fill_null(table["licence"], self.licence))
        # Texts of the rows checked one by one below are normalised by then either way.
        if not self.normalized:
            for name in TEXT_FIELDS:
                table = table.set_column(table.schema.get_field_index(name), name,
                                         normalize_column(table[name]))
        ok = _surely_kept(table, self.policy, self._not_null, self._non_empty)
        if pc.all(ok).as_py():
            yield table
            return
        yield table.filter(ok)
        kept_rows = []
        for row in table.filter(pc.invert(ok)).to_pylist():
            kept, reason, detail = apply_policy(row, self.policy, normalized=True)
            if kept is not None:
                kept_rows.append(kept)
            else:
                yield self._reject(row, reason, detail)
        if kept_rows:
            yield pa.Table.from_pylist(kept_rows, schema=table.schema)

    def _reject(self, row, reason: str, detail: str):
        accounting.count_row_dropped(self.dataset)
        source_file = row.get("source_file") if isinstance(row, dict) else None
        record_id = row.get("record_id") if isinstance(row, dict) else None
        reject = make_reject(
            self.dataset, reason, source_file=source_file or "?", record_id=record_id or "",
            detail=detail, excerpt=row,
        )
        count_reject(reject)
        return beam.pvalue.TaggedOutput(REJECTED, reject)
