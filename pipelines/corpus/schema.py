"""The corpus row: built once from ``schemas/corpus_row.json`` and checked before writing.

Every row a source emits is a plain ``dict`` with the fields of the schema (or an Arrow
table of them). Rows are validated by :func:`validate_row` just before they reach the
sink, so a schema problem is reported with the offending record named instead of failing
inside the Parquet writer.

Each row carries its attribution: ``licence`` (a licence id of
:mod:`pipelines.corpus.licences`), ``attribution_url`` and ``author``. A source sets them
where its rows differ (StackExchange: per post); a row that leaves ``licence`` unset gets
its dataset's registry licence in the build's normalisation step.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Iterator

import pyarrow as pa

ROW_FIELDS = ("anchor", "positive", "negative", "dataset", "subset", "source_file", "record_id",
              "licence", "attribution_url", "author")


@cache
def load_schema_document(name: str) -> dict:
    """Return the parsed JSON schema document ``schemas/<name>.json``."""
    text = resources.files("pipelines.schemas").joinpath(f"{name}.json").read_text("utf-8")
    return json.loads(text)


def _arrow_type(type_name: str) -> pa.DataType:
    if type_name == "string":
        return pa.string()
    raise ValueError(f"unsupported field type in schema: {type_name!r}")


@cache
def row_arrow_schema() -> pa.Schema:
    """The Arrow schema of a shard, in column order anchor, positive, negative, ..."""
    doc = load_schema_document("corpus_row")
    fields = [
        pa.field(f["name"], _arrow_type(f["type"]), nullable=f["nullable"],
                 metadata={"description": f["description"]})
        for f in doc["fields"]
    ]
    names = tuple(f.name for f in fields)
    if names != ROW_FIELDS:
        raise ValueError(f"schemas/corpus_row.json fields {names} differ from {ROW_FIELDS}")
    return pa.schema(fields, metadata={"schema": doc["name"], "version": str(doc["version"])})


def make_rows(dataset: str, anchor, positive, negative=None, *, source_file, record_id,
              subset: str = "", licence=None, attribution_url=None, author=None) -> pa.Table:
    """:func:`make_row` for whole columns: a table of rows in the row schema from columns
    (arrays) of texts, provenance and record ids; ``negative`` ``None`` for pair datasets.
    ``licence`` is one id for every row or a column; it, ``attribution_url`` and ``author``
    are null columns when ``None`` (the licence is filled in by the normalisation)."""
    count = len(anchor)

    def column(value):
        if value is None:
            return pa.nulls(count, pa.string())
        return pa.array([value] * count, pa.string()) if isinstance(value, str) else value

    return pa.table({
        "anchor": anchor, "positive": positive, "negative": column(negative),
        "dataset": column(dataset), "subset": column(subset),
        "source_file": source_file, "record_id": record_id,
        "licence": column(licence), "attribution_url": column(attribution_url), "author": column(author),
    }, schema=row_arrow_schema())


def make_row(dataset: str, anchor: str, positive: str, negative: str | None = None, *,
             subset: str = "", source_file: str, record_id: str, licence: str | None = None,
             attribution_url: str | None = None, author: str | None = None) -> dict:
    """Build a row dict in schema order. Texts are expected to be normalised already.

    Args:
        licence: the row's licence id when it is not the dataset's (``None``: the
            normalisation fills in the dataset's registry licence).
        attribution_url: a link to the upstream item the texts come from, if the input gives one.
        author: the texts' author as the input names them, if it does.
    """
    return {
        "anchor": anchor,
        "positive": positive,
        "negative": negative,
        "dataset": dataset,
        "subset": subset,
        "source_file": source_file,
        "record_id": record_id,
        "licence": licence,
        "attribution_url": attribution_url,
        "author": author,
    }


def web_link(value) -> str | None:
    """``value`` as a row's ``attribution_url`` when it is an http(s) link, else ``None``
    (an upstream field may be null, empty or hold something else)."""
    if isinstance(value, str) and value.strip().startswith(("https://", "http://")):
        return value.strip()
    return None


@cache
def dictionary_columns() -> tuple[str, ...]:
    """The columns ``schemas/corpus_row.json`` marks ``dictionary``: few distinct values,
    dictionary-encoded in the shards (and in the runs spilled before them)."""
    return tuple(f["name"] for f in load_schema_document("corpus_row")["fields"] if f.get("dictionary"))


@cache
def field_rules() -> tuple[tuple[str, bool, bool], ...]:
    """``(name, nullable, non_empty)`` of every field of ``schemas/corpus_row.json``."""
    return tuple((f["name"], f["nullable"], f["non_empty"])
                 for f in load_schema_document("corpus_row")["fields"])


def validate_row(row: Any) -> str | None:
    """Return ``None`` for a valid row, otherwise a sentence saying what is wrong."""
    if not isinstance(row, dict):
        return f"row is a {type(row).__name__}, not a dict"
    if len(row) != len(ROW_FIELDS) or not all(name in row for name in ROW_FIELDS):
        extra = sorted(set(row) - set(ROW_FIELDS))
        if extra:
            return f"unexpected fields {extra}"
    for name, nullable, non_empty in field_rules():
        if name not in row:
            return f"missing field {name!r}"
        value = row[name]
        if value is None:
            if not nullable:
                return f"field {name!r} is null"
            continue
        if not isinstance(value, str):
            return f"field {name!r} is a {type(value).__name__}, not a string"
        if non_empty and not value:
            return f"field {name!r} is empty"
    return None


def describe_row(row: Any) -> str:
    """A short name for a row in error messages: dataset, file and record id."""
    if isinstance(row, dict):
        return (f"{row.get('dataset')!s}:{row.get('source_file')!s}#{row.get('record_id')!s}")
    return repr(row)[:200]


def records_table(records: list[dict], schema: pa.Schema) -> pa.Table:
    """Dict records as one Arrow table of ``schema`` (a field a record lacks is null; keys
    outside the schema are left out)."""
    return pa.table({name: [record.get(name) for record in records] for name in schema.names},
                    schema=schema)


def rows_as_table(items) -> Iterator:
    """How a join function hands on what its rules gave: each tagged reject among ``items``
    as it comes, and their row dicts as one Arrow table of the row schema at the end (none
    when there is no row)."""
    rows = []
    for item in items:
        if isinstance(item, dict):
            rows.append(item)
        else:
            yield item
    if rows:
        yield records_table(rows, row_arrow_schema())


class RowTables:
    """Gather records (rows from :func:`make_row`, by default) into Arrow tables, so that a
    source can hand them on in batches: one Beam element per table instead of per record.
    A record is a dict, or a tuple of its values in the schema's order (no dict to build
    per record; the tuples are turned into columns in one step).

    Args:
        rows_per_table: records of a full table.
        schema: the tables' schema; the corpus row schema when ``None``.
    """

    def __init__(self, rows_per_table: int = 8192, schema: pa.Schema | None = None):
        self.rows_per_table = rows_per_table
        self._schema = schema if schema is not None else row_arrow_schema()
        self._rows: list = []

    def add(self, row: dict | tuple) -> pa.Table | None:
        """Add one record; return a table when ``rows_per_table`` records are gathered."""
        self._rows.append(row)
        if len(self._rows) >= self.rows_per_table:
            return self.flush()
        return None

    def flush(self) -> pa.Table | None:
        """The records gathered so far as a table (``None`` when there are none)."""
        if not self._rows:
            return None
        rows, self._rows = self._rows, []
        if isinstance(rows[0], tuple):
            columns = zip(*rows)
            return pa.Table.from_arrays([pa.array(column, field.type) for column, field in zip(columns, self._schema)],
                                        schema=self._schema)
        return records_table(rows, self._schema)


def gather_tables(items, schema: pa.Schema | None = None, rows_per_table: int = 1 << 14):
    """Gather the dict records among ``items`` into tables of ``schema`` (see
    :class:`RowTables`); anything else (a tagged reject) is passed on at once. When
    ``items`` raises (a file breaks off), the records gathered so far are handed on first."""
    gathered = RowTables(rows_per_table, schema)
    try:
        for item in items:
            table = gathered.add(item) if isinstance(item, dict) else item
            if table is not None:
                yield table
    except Exception:
        table = gathered.flush()
        if table is not None:
            yield table
        raise
    table = gathered.flush()
    if table is not None:
        yield table


# Records of a full table gathered by :func:`gather_columns`'s readers.
ROWS_PER_TABLE = 1 << 14


def gather_columns(items, columns: tuple[list, ...], to_table):
    """Tables of the records a reader appends to ``columns`` itself, a list per column
    (no dict or tuple per record, see :func:`gather_tables`).

    Args:
        items: the reader: it appends each record's values to ``columns`` and yields its
            rejects, and ``None`` once ``columns`` hold a full table's records
            (:data:`ROWS_PER_TABLE`, or more).
        columns: the lists the reader fills (the first one has a value per record).
        to_table: ``to_table(*lists) -> pa.Table``, given a copy of each list.
    Yields:
        The rejects, and a table whenever the reader says the columns are full, and at
        the end. When ``items`` raises (a file breaks off), the records gathered so far
        are handed on first.
    """
    def flush():
        lists = [list(column) for column in columns]
        for column in columns:
            column.clear()
        return to_table(*lists)

    try:
        for item in items:
            if item is not None:
                yield item
            elif columns[0]:
                yield flush()
    except Exception:
        if columns[0]:
            yield flush()
        raise
    if columns[0]:
        yield flush()
