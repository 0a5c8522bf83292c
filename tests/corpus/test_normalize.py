"""Normalisation: HTML to text, Unicode and whitespace, and the per-dataset policy."""
import unicodedata

from hypothesis import given, strategies as st

from pipelines.corpus.normalize import TextPolicy, apply_policy, html_to_text, normalize_text, truncate_text
from pipelines.corpus.schema import make_row


def test_block_tags_separate_words_and_inline_tags_do_not():
    assert html_to_text("<p>one</p><p>two</p>") == "one two"
    assert html_to_text("x<code>y</code>z") == "xyz"
    assert html_to_text("a<br/>b<br />c") == "a b c"


def test_entities_are_decoded_after_tags_are_removed():
    assert html_to_text("<p>if a &lt;b&gt; then &amp;&amp;</p>") == "if a <b> then &&"
    assert html_to_text("caf&eacute; &#8217;s &nbsp;x") == "café ’s x"


def test_comments_scripts_and_quoted_angle_brackets():
    assert html_to_text('<!-- hidden --><a title="a>b">link</a><script>evil()</script>') == "link"


def test_normalize_text_nfc_controls_and_whitespace():
    assert normalize_text("Cafe\u0301\u00a0\t bar\r\n\x00baz\ufeff ") == "Café bar baz"
    assert normalize_text(None) == ""


@given(st.text())
def test_normalize_text_is_idempotent_and_clean(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == once.strip()
    assert "  " not in once
    assert unicodedata.is_normalized("NFC", once)
    assert not any(c in once for c in "\t\n\r\x00\x85")


@given(st.text())
def test_html_to_text_never_leaves_whitespace_runs(markup):
    text = html_to_text(markup)
    assert text == text.strip() and "  " not in text


@given(st.text(min_size=1), st.integers(min_value=1, max_value=50))
def test_truncate_never_exceeds_the_limit(text, limit):
    assert len(truncate_text(text, limit)) <= limit


def _row(anchor, positive, negative=None):
    return make_row("d", anchor, positive, negative, source_file="f", record_id="1", licence="quora-terms")


def test_policy_rejects_empty_short_and_long_texts_with_reasons():
    policy = TextPolicy(min_chars=3, max_chars=10)
    assert apply_policy(_row("  ", "positive"), policy)[1] == "anchor_empty"
    assert apply_policy(_row("ab", "positive"), policy)[1] == "anchor_too_short"
    assert apply_policy(_row("abc", "x" * 11), policy)[1] == "positive_too_long"
    assert apply_policy(_row("abc", "def", ""), policy)[1] == "negative_empty"
    kept, reason, _ = apply_policy(_row(" a  b ", "def"), policy)
    assert reason is None and kept["anchor"] == "a b" and kept["negative"] is None


def test_policy_can_truncate_instead_of_rejecting():
    kept, reason, _ = apply_policy(_row("abc", "lorem ipsum " * 20), TextPolicy(max_chars=100, truncate=True))
    assert reason is None
    assert kept["positive"] == ("lorem ipsum " * 8).strip()  # 95 characters: cut at a space


def test_schema_problems_name_the_record():
    row = _row("a", "b")
    row["record_id"] = 7
    kept, reason, detail = apply_policy(row, TextPolicy())
    assert kept is None and reason == "schema_error"
    assert "d:f#7" in detail and "record_id" in detail


def test_a_removed_control_character_does_not_leave_text_unnormalised():
    # Removing the NUL joins the combining accent to its base: NFC must come after.
    assert normalize_text("e\x00\u0301") == "\u00e9"


_TEXTS = st.text(alphabet=st.sampled_from(["a", " ", "é", "中", "😀", "\u0085"]), max_size=9)


@given(st.lists(st.tuples(_TEXTS, _TEXTS, st.none() | _TEXTS), min_size=1, max_size=12),
       st.integers(1, 4), st.none() | st.integers(2, 7), st.booleans())
def test_rows_in_a_table_are_kept_and_rejected_as_one_by_one(texts, min_chars, max_chars, truncate):
    """The table path decides lengths from byte counts where they settle it; it must keep,
    cut and reject exactly the rows the row-by-row path does."""
    import pyarrow as pa

    from pipelines.corpus.normalize import NormalizeRows
    from pipelines.corpus.schema import row_arrow_schema

    policy = TextPolicy(min_chars=min_chars, max_chars=max_chars, truncate=truncate)
    rows = [make_row("d", normalize_text(a), normalize_text(p), None if n is None else normalize_text(n),
                     source_file="f", record_id=str(i)) for i, (a, p, n) in enumerate(texts)]
    step = NormalizeRows("d", policy, normalized=True, licence="quora-terms")
    step.setup()
    one_by_one = [out for row in rows for out in step.process(row)]
    in_table = list(step.process(pa.Table.from_pylist(rows, schema=row_arrow_schema())))

    def kept(outputs):
        return sorted((r for o in outputs if isinstance(o, (dict, pa.Table))
                       for r in (o.to_pylist() if isinstance(o, pa.Table) else [o])),
                      key=lambda r: r["record_id"])

    def reasons(outputs):
        return sorted((o.value["record_id"], o.value["reason"]) for o in outputs
                      if not isinstance(o, (dict, pa.Table)))

    assert kept(in_table) == kept(one_by_one)
    assert reasons(in_table) == reasons(one_by_one)


def test_rows_without_a_licence_get_the_datasets_and_keep_their_own():
    """Dict rows and table rows alike: a null licence becomes the dataset's, a row's own
    licence stays; a null link or author is fine, an empty one is not."""
    import pyarrow as pa

    from pipelines.corpus.normalize import NormalizeRows
    from pipelines.corpus.schema import make_rows

    step = NormalizeRows("d", TextPolicy(), licence="msmarco-terms")
    step.setup()
    own = make_row("d", "q", "p", source_file="f", record_id="2", licence="cc-by-sa-3.0",
                   attribution_url="https://example.org/2", author="someone")
    (kept_default,) = step.process(make_row("d", "q", "p", source_file="f", record_id="1"))
    (kept_own,) = step.process(own)
    assert (kept_default["licence"], kept_own["licence"]) == ("msmarco-terms", "cc-by-sa-3.0")
    assert kept_own == own and list(kept_default) == list(own)

    table = make_rows("d", pa.array(["q", "q", "q"]), pa.array(["p", "p", "p"]),
                      source_file=pa.array(["f"] * 3), record_id=pa.array(["1", "2", "3"]),
                      licence=pa.array([None, "cc-by-sa-4.0", None]),
                      author=pa.array([None, "someone", None]))
    (out,) = step.process(table)
    assert out.column("licence").to_pylist() == ["msmarco-terms", "cc-by-sa-4.0", "msmarco-terms"]
    assert out.column("author").to_pylist() == [None, "someone", None]
    assert out.schema.field("licence").equals(table.schema.field("licence"), check_metadata=True)

    (reject,) = step.process({**own, "author": ""})
    assert reject.value["reason"] == "schema_error" and "author" in reject.value["detail"]
    (reject,) = NormalizeRows("d", TextPolicy()).process(make_row("d", "q", "p", source_file="f", record_id="1"))
    assert reject.value["reason"] == "schema_error" and "licence" in reject.value["detail"]
