"""CSV files for a trader's spreadsheet or accountant: values as data, not as the screen shows them.

- an absent value is an empty cell (never ``None`` or the table's dash);
- a timestamp is ISO-8601 in UTC with its offset (``2026-03-02T15:00:00+00:00``), whatever zone
  the tables display;
- a Decimal is written exactly as it is held (``100.5``, ``0.000123``): through ``format(value,
  "f")``, never through a float, so no ``100.49999999`` and no thousands separators;
- an enum is its value (``buy``, ``bracket``).

Save dialogs start in the user's documents folder, or their home folder when there is none
(:func:`default_path`): never in whatever directory Heron was started from.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QStandardPaths

from services.domain.money import decimal_str

T = TypeVar("T")

#: one exported column: its header and how to read its value from a row's object
CsvColumn = tuple[str, Callable[[T], Any]]


def cell(value: Any) -> str:
    """One value as CSV text (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_str(value) or "0"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a naive timestamp has no zone to export: {value!r}")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        raise TypeError(f"floats are not exported (money and quantities are Decimal): {value!r}")
    return str(value)


def write_csv(path: Path | str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write ``header`` and ``rows`` (values converted by :func:`cell`) as UTF-8 CSV; returns the
    number of data rows written."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(v) for v in row])
            n += 1
    return n


def write_table(path: Path | str, columns: Sequence[CsvColumn[T]], items: Iterable[T]) -> int:
    """Write one row per item, one column per ``(header, getter)``; returns the rows written."""
    return write_csv(path, [h for h, _ in columns], ([get(i) for _, get in columns] for i in items))


def save_folder() -> Path:
    """Where a save dialog starts: the documents folder when it exists, else the home folder.

    Qt names ``~/Documents`` even when it was never created, and a dialog given a folder that does
    not exist opens in the working directory."""
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    if docs and Path(docs).is_dir():
        return Path(docs)
    home = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.HomeLocation)
    return Path(home) if home and Path(home).is_dir() else Path.home()


def default_path(file_name: str) -> str:
    """``file_name`` in :func:`save_folder` (where every save dialog starts)."""
    return str(save_folder() / file_name)
