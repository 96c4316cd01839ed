"""Tables that stay whole off a terminal.

Off a terminal rich assumes 80 columns and cuts wide tables (Table 1 lost its
model column in ``make demo > log``). :func:`print_table` prints the rich
table on a terminal and a Markdown table anywhere else (given, or converted
from the rich table), never cut.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

__all__ = ["print_table", "rich_to_markdown"]


def _cell(value) -> str:
    text = value.plain if isinstance(value, Text) else str(value)
    if "[" in text and "]" in text and not isinstance(value, Text):
        text = Text.from_markup(text).plain
    return text.replace("|", "\\|").replace("\n", " ")


def rich_to_markdown(table: Table) -> str:
    """A rich :class:`~rich.table.Table` as a Markdown table (title as a line above it)."""
    header = [_cell(c.header) for c in table.columns]
    cells = [[_cell(v) for v in c._cells] for c in table.columns]
    rows = list(zip(*cells)) if cells else []
    lines = [f"{_cell(table.title)}", ""] if table.title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---:" if c.justify == "right" else "---" for c in table.columns) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def print_table(console, table: Table, markdown: str | None = None) -> None:
    """``table`` on a terminal; else ``markdown`` (or the table converted), printed in full."""
    if console.is_terminal:
        console.print(table)
        return
    console.print(markdown if markdown is not None else rich_to_markdown(table), markup=False, highlight=False,
                  soft_wrap=True, crop=False)
