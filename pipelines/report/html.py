"""A small HTML page builder for the report: escaped text, tables, embedded PNG images.

Everything is escaped on the way in, except the snippets this module makes itself
(:meth:`Page.verdict`, :meth:`Page.link`), which are marked as :class:`Markup`.
"""
from __future__ import annotations

import base64
import html

from pipelines.report.charts import verdict_colour

STYLE = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
header { background: #263238; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; }
nav { padding: 8px 32px; background: #eceff1; font-size: 14px; }
nav a { margin-right: 16px; color: #1565c0; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1150px; }
h2 { border-bottom: 2px solid #cfd8dc; padding-bottom: 4px; margin-top: 36px; }
h3 { margin-top: 24px; font-size: 16px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; background: #fff; }
th, td { border: 1px solid #cfd8dc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eceff1; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; }
.cards { display: flex; gap: 16px; flex-wrap: wrap; margin: 12px 0; }
.card { background: #fff; border: 1px solid #cfd8dc; border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card .value { font-size: 22px; font-weight: bold; }
.card .label { font-size: 12px; color: #607d8b; }
.note { background: #fff8e1; border-left: 4px solid #ffb300; padding: 8px 12px; }
figure { margin: 12px 0; }
figure img { max-width: 100%; border: 1px solid #e0e0e0; background: #fff; }
details { margin: 12px 0; }
summary { cursor: pointer; color: #1565c0; }
"""


class Markup(str):
    """HTML made by this module: inserted as it is, not escaped."""


def _cell(value) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value))


class Page:
    """An HTML page built section by section.

    Args:
        title: the page title, also its top heading.
    """

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []

    def heading(self, text: str, anchor: str) -> None:
        """Start a section (listed in the navigation bar)."""
        self.sections.append((anchor, text))
        self.parts.append(f'<h2 id="{html.escape(anchor)}">{html.escape(text)}</h2>')

    def subheading(self, text: str) -> None:
        self.parts.append(f"<h3>{html.escape(text)}</h3>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def cards(self, items: list[tuple[str, str]]) -> None:
        """Large numbers with a label under each.

        Args:
            items: ``(label, value)`` pairs.
        """
        cards = "".join(f'<div class="card"><div class="value">{html.escape(value)}</div>'
                        f'<div class="label">{html.escape(label)}</div></div>' for label, value in items)
        self.parts.append(f'<div class="cards">{cards}</div>')

    @staticmethod
    def verdict(verdict: str) -> Markup:
        """A coloured badge for a verdict."""
        return Markup(f'<span class="verdict" style="background:{verdict_colour(verdict)}">'
                      f"{html.escape(verdict)}</span>")

    @staticmethod
    def link(text: str, url: str) -> Markup:
        """A link to a page outside the report (nothing is loaded from it)."""
        return Markup(f'<a href="{html.escape(url)}" rel="noreferrer">{html.escape(text)}</a>')

    @staticmethod
    def _table_html(columns, rows, numeric=(), header: bool = True) -> str:
        head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>" if header else ""
        body = "".join(
            "<tr>" + "".join(f'<td class="num">{_cell(v)}</td>' if i in numeric else f"<td>{_cell(v)}</td>"
                             for i, v in enumerate(row)) + "</tr>" for row in rows)
        return f"<table>{head}{body}</table>"

    def table(self, columns, rows, numeric=(), header: bool = True) -> None:
        """A table.

        Args:
            columns: column titles.
            rows: rows of cell values (strings, numbers or :class:`Markup`).
            numeric: indices of the columns aligned right.
            header: show the column titles.
        """
        self.parts.append(self._table_html(columns, rows, numeric, header))

    def details(self, summary: str, columns, rows, numeric=()) -> None:
        """A table folded under a one-line summary (for long lists)."""
        self.parts.append(f"<details><summary>{html.escape(summary)}</summary>"
                          f"{self._table_html(columns, rows, numeric)}</details>")

    def image(self, png: bytes, description: str) -> None:
        """A PNG embedded in the page, with ``description`` as its alt text and caption."""
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(description)}">'
                          f"<figcaption>{html.escape(description)}</figcaption></figure>")

    def html(self) -> str:
        """The whole page."""
        nav = "".join(f'<a href="#{html.escape(a)}">{html.escape(t)}</a>' for a, t in self.sections)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<header><h1>{html.escape(self.title)}</h1></header><nav>{nav}</nav>"
                f"<main>{''.join(self.parts)}</main></body></html>\n")
