"""Formatting helpers shared by dashboards and HTML renderers (no widgets).

Used by :mod:`cs_analysis.dashboard` (which re-exports them) and by the analyses'
own HTML output (e.g. :meth:`cs_analysis.journey.MapComparison.html`), so that an
analysis never needs ipywidgets to format a number or escape a value.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

__all__ = ["esc", "fmt_int", "fmt_money", "fmt_pct", "formula_safe", "is_missing", "to_csv"]

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def esc(value: Any) -> str:
    """HTML-escape any value for display (data is untrusted)."""
    return html.escape("" if value is None else str(value), quote=True)


def is_missing(x) -> bool:
    """True for a missing scalar: None, NaN, ``pd.NA``, ``pd.NaT`` (shown as ``–``)."""
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):  # a list or array is not a missing scalar
        return False


def fmt_pct(x, digits: int = 0) -> str:
    """``0.734`` → ``73%``; missing → ``–``."""
    return "–" if is_missing(x) else f"{x * 100:.{digits}f}%"


def fmt_int(x) -> str:
    """``12345`` → ``12,345``; missing → ``–``."""
    return "–" if is_missing(x) else f"{int(round(x)):,}"


def fmt_money(x, currency: str = "USD") -> str:
    """Money with a currency sign or code, compact (``$1.2M``, ``¥350K``)."""
    if is_missing(x):
        return "–"
    sign = {"USD": "$", "JPY": "¥", "EUR": "€", "GBP": "£"}.get(currency, "")
    value = float(x)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= div:
            text = f"{value / div:.1f}{suffix}"
            break
    else:
        text = f"{value:,.0f}"
    return f"{sign}{text}" if sign else f"{text} {currency}"


def formula_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (OWASP CSV injection).

    Customer text (comments, names, ticket titles) reaches CSV exports that people open in
    Excel; a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
    prefixed with a single quote, so ``=HYPERLINK(...)`` or ``+cmd|' /C calc'!A0`` shows as
    text. Numeric columns are left alone: a negative number stays a number. Column headers
    are neutralised the same way.
    """
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s) or \
                pd.api.types.is_bool_dtype(s):
            continue
        out[col] = s.map(_neutralise)
    out.columns = [_neutralise(c) if isinstance(c, str) else c for c in out.columns]
    return out


def _neutralise(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(frame: pd.DataFrame, path=None, *, index: bool = False) -> str | None:
    """Write (or return) a frame as an export CSV: formula-safe, UTF-8 with BOM, CRLF.

    The one CSV writer of every export (dashboards, survey voices, handout tables), so
    each is safe to open in a spreadsheet and reads Japanese text in Excel.
    """
    safe = formula_safe(frame)
    if path is None:
        return "\ufeff" + safe.to_csv(index=index, lineterminator="\r\n")
    safe.to_csv(path, index=index, encoding="utf-8-sig", lineterminator="\r\n")
    return None
