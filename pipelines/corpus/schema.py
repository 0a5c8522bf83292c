"""The corpus row: built once from ``schemas/corpus_row.json`` and checked before writing.

Every row a source emits is a plain ``dict`` with the fields of the schema. Rows are
validated by :func:`validate_row` just before they reach the sink, so a schema problem
is reported with the offending record named instead of failing inside the Parquet writer.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import pyarrow as pa

ROW_FIELDS = ("anchor", "positive", "negative", "dataset", "subset", "source_file", "record_id")


@lru_cache(maxsize=None)
def load_schema_document(name: str) -> dict:
    """Return the parsed JSON schema document ``schemas/<name>.json``."""
    text = resources.files("pipelines.schemas").joinpath(f"{name}.json").read_text("utf-8")
    return json.loads(text)


def _arrow_type(type_name: str) -> pa.DataType:
    if type_name == "string":
        return pa.string()
    raise ValueError(f"unsupported field type in schema: {type_name!r}")


@lru_cache(maxsize=None)
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
              subset: str = "") -> pa.Table:
    """:func:`make_row` for whole columns: a table of rows in the row schema from columns
    (arrays) of texts, provenance and record ids; ``negative`` ``None`` for pair datasets."""
    count = len(anchor)
    return pa.table({
        "anchor": anchor, "positive": positive,
        "negative": pa.nulls(count, pa.string()) if negative is None else negative,
        "dataset": pa.array([dataset] * count, pa.string()),
        "subset": pa.array([subset] * count, pa.string()),
        "source_file": source_file, "record_id": record_id,
    }, schema=row_arrow_schema())


def make_row(dataset: str, anchor: str, positive: str, negative: str | None = None, *,
             subset: str = "", source_file: str, record_id: str) -> dict:
    """Build a row dict in schema order. Texts are expected to be normalised already."""
    return {
        "anchor": anchor,
        "positive": positive,
        "negative": negative,
        "dataset": dataset,
        "subset": subset,
        "source_file": source_file,
        "record_id": record_id,
    }


@lru_cache(maxsize=None)
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


class RowTables:
    """Gather dict records (rows from :func:`make_row`, by default) into Arrow tables, so
    that a source can hand them on in batches: one Beam element per table instead of per
    record.

    Args:
        rows_per_table: records of a full table.
        schema: the tables' schema; the corpus row schema when ``None``.
    """

    def __init__(self, rows_per_table: int = 8192, schema: pa.Schema | None = None):
        self.rows_per_table = rows_per_table
        self._schema = schema if schema is not None else row_arrow_schema()
        self._rows: list[dict] = []

    def add(self, row: dict) -> pa.Table | None:
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
