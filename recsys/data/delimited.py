"""Delimited MovieLens files read with errors that name the file, the line and the value.

`expect_fields` checks line 1 before parsing (a wrong separator or a missing column gets a clear message),
`read_table` is `pd.read_csv` whose failures say where the first bad value is, and `preview` shows the
first few offending ids of a list. Every failure is a `MovieLensFormatError`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.releases import MovieLensFormatError

LITERAL = {"quoting": csv.QUOTE_NONE, "na_filter": False}  # titles are text, never NaN, never quoted


def expect_fields(path: Path, sep: str, expected: int | Sequence[str], encoding: str = "utf-8") -> list[str]:
    """Check line 1 before parsing, so a wrong separator or a missing column gets a clear message."""
    if not path.exists():
        raise MovieLensFormatError(f"{path}: file is missing")
    with path.open(encoding=encoding, errors="replace") as f:
        line = f.readline().rstrip("\r\n")
    if not line:
        raise MovieLensFormatError(f"{path}: file is empty")
    fields = line.split(sep)
    other = next((s for s in ("\t", "::", "|", ",", ";") if s != sep and s in line), None)
    hint = f"; it looks {other!r}-separated" if other and len(fields) == 1 else ""
    if isinstance(expected, int):
        if len(fields) != expected:
            raise MovieLensFormatError(
                f"{path}: line 1 has {len(fields)} {sep!r}-separated field(s), expected {expected}{hint}"
            )
        return fields
    missing = [c for c in expected if c not in {f.split(":", 1)[0] for f in fields}]
    if missing:
        raise MovieLensFormatError(f"{path}: missing column(s) {missing} in header {fields}{hint}")
    return fields


def read_table(path: Path, **kwargs) -> pd.DataFrame:
    """pd.read_csv whose failures name the file (and the first bad line, when it can be found)."""
    try:
        frame = pd.read_csv(path, **kwargs)
    except ValueError as err:  # includes ParserError and UnicodeDecodeError
        raise MovieLensFormatError(f"{path}: {_locate_bad_value(path, kwargs) or err}") from err
    if frame.empty:
        raise MovieLensFormatError(f"{path}: no rows")
    return frame


def _locate_bad_value(path: Path, kwargs: dict) -> str | None:
    """Re-read as text to find the first non-numeric value in a numeric column (only runs on failure)."""
    dtype = kwargs.get("dtype")
    if not isinstance(dtype, dict):
        return None
    numeric = [column for column, kind in dtype.items() if pd.api.types.is_numeric_dtype(kind)]
    try:
        raw = pd.read_csv(path, **{**kwargs, "dtype": str, "na_filter": False})[numeric]
    except (ValueError, KeyError):
        return None
    values = raw.apply(lambda col: pd.to_numeric(col, errors="coerce"))
    bad = values.isna()
    whole = [c for c in numeric if pd.api.types.is_integer_dtype(dtype[c])]
    bad[whole] |= values[whole].mod(1).fillna(0).ne(0)  # e.g. a timestamp 880001010.5 in an integer column
    if not bad.to_numpy().any():
        return None
    row = int(bad.any(axis=1).to_numpy().argmax())
    column = bad.columns[bad.iloc[row].to_numpy().argmax()]
    line = row + 1 + (kwargs.get("header", "infer") is not None)
    kind = "a whole number" if column in whole and not np.isnan(values[column].iloc[row]) else "a number"
    return f"line {line}: {column} is {raw[column].iloc[row]!r}, not {kind}"


def preview(values: Sequence | np.ndarray, k: int = 5) -> str:
    shown = ", ".join(map(str, list(values)[:k]))
    return shown + (f" (and {len(values) - k} more)" if len(values) > k else "")
