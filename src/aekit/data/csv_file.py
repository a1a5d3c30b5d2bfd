"""Reader for numeric CSV (and TSV) tables, with an optional header and label column.

- The first row is a header when none of its cells is a number.
- `label_column` (a header name, or a 0-based index; negative counts from the end; a string of
  digits is an index unless it is a header name) is taken out as labels; text labels become the
  sorted class names 0, 1, ...
- Every other cell must be a number: the first bad cell is reported by line and column.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from aekit.errors import DataError, did_you_mean
from aekit.memory_budget import check_budget

PARSE_BYTES_PER_BYTE = 32  # "1," (2 bytes) becomes a 50-byte str and an 8-byte list slot, then 8 bytes of float64


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_rows(path: Path, *, delimiter: str) -> tuple[list[int], list[list[str]]]:
    """(line numbers, rows of stripped cells); blank lines are skipped."""
    lines, rows = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                if any(c.strip() for c in row):
                    lines.append(reader.line_num)
                    rows.append([c.strip() for c in row])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: could not read CSV file: {exc}.") from exc
    return lines, rows


def _label_index(label_column: str | int, header: list[str] | None, n_cols: int,
                 *, source: str) -> int:
    """Resolve label_column to a 0-based column index."""
    if isinstance(label_column, str) and header is not None and label_column in header:
        return header.index(label_column)
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        if header is None:
            raise DataError(
                f"{source}: label_column {label_column!r} is a column name but the file has no "
                f"header row; pass a 0-based column index instead (0 to {n_cols - 1})."
            )
        raise DataError(
            f"{source}: label_column {label_column!r} is not a column; the header has "
            f"{', '.join(map(repr, header))}." + did_you_mean(label_column, header)
        )
    index = int(label_column)
    if not -n_cols <= index < n_cols:
        raise DataError(
            f"{source}: label_column index {index} is out of range; expected 0 to "
            f"{n_cols - 1} (or -{n_cols} to -1) for {n_cols} columns."
        )
    return index % n_cols


def read_csv(
    path: str | Path, *, label_column: str | int | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read a CSV into (x (N, D) float64, labels (N,) or None, header or None)."""
    path = Path(path)
    source = str(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    size = os.path.getsize(path)  # parsed cells are Python strings: up to ~PARSE_BYTES_PER_BYTE bytes per file byte
    check_budget(size * PARSE_BYTES_PER_BYTE, what=f"{source}: parsing this {size}-byte CSV file",
                 hint="a CSV file is parsed whole; convert a large table to .npy")
    lines, rows = _read_rows(path, delimiter=delimiter)
    header = None
    if rows and not any(_is_number(c) for c in rows[0]):
        header, rows, lines = rows[0], rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{source}: empty data: expected at least 1 data row; got 0.")
    n_cols = len(header) if header is not None else len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != n_cols:
            raise DataError(
                f"{source}: line {lines[i]} has {len(row)} columns; expected {n_cols} "
                "(like the first row)."
            )
    label_idx = None
    labels = None
    if label_column is not None:
        label_idx = _label_index(label_column, header, n_cols, source=source)
        raw_labels = [row[label_idx] for row in rows]
        if all(_is_number(v) for v in raw_labels):
            labels = np.array([float(v) for v in raw_labels])
        else:
            labels = np.array(raw_labels, dtype=str)
        rows = [row[:label_idx] + row[label_idx + 1:] for row in rows]
    feature_names = None
    if header is not None:
        feature_names = [h for j, h in enumerate(header) if j != label_idx]
    if n_cols - (label_idx is not None) == 0:
        raise DataError(f"{source}: empty data: expected at least 1 feature column; got 0.")
    try:
        x = np.array(rows, dtype=np.float64)             # (N, D), fast path
    except ValueError:
        x = None
    if x is None:
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                if not _is_number(cell):
                    col = j + (label_idx is not None and j >= label_idx)   # 0-based, in file
                    name = f" ({header[col]!r})" if header is not None else ""
                    hint = ""
                    if i == 0 and header is None:
                        hint = " (The first row was read as data: a header has no numeric cells.)"
                    raise DataError(
                        f"{source}: non-numeric cell at line {lines[i]}, column {col + 1}"
                        f"{name}: expected a number; got {cell!r}.{hint}"
                    )
        raise DataError(f"{source}: could not convert the cells to numbers.")
    return x, labels, feature_names
