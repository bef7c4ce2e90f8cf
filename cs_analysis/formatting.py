"""Formatting helpers shared by dashboards and HTML renderers (no widgets).

Used by :mod:`cs_analysis.dashboard` (which re-exports them) and by the analyses'
own HTML output (e.g. :meth:`cs_analysis.journey.MapComparison.html`), so that an
analysis never needs ipywidgets to format a number or escape a value.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pandas as pd

__all__ = ["esc", "fmt_count", "fmt_date", "fmt_int", "fmt_money", "fmt_month", "fmt_pct",
           "formula_safe", "is_missing", "to_csv"]

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


def fmt_money(x, currency: str = "USD", lang: str | None = None) -> str:
    """Money with a currency sign or code, compact (``$1.2M``, ``¥350K``).

    In Japanese (``lang="ja"``) yen are written in full with no decimals (``¥1,234,567``:
    Japanese readers do not use K/M, and there are no sub-yen amounts); other currencies
    stay compact. Yen never show decimals in either language.
    """
    if is_missing(x):
        return "–"
    sign = {"USD": "$", "JPY": "¥", "EUR": "€", "GBP": "£"}.get(currency, "")
    value = float(x)
    if currency == "JPY" and lang == "ja":
        return f"{'-' if value < 0 else ''}¥{abs(value):,.0f}"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= div:
            text = f"{value / div:.1f}{suffix}"
            break
    else:
        text = f"{value:,.0f}"
    return f"{sign}{text}" if sign else f"{text} {currency}"


#: Counter words (助数詞) of the things dashboards count, in Japanese.
_COUNTERS_JA = {"accounts": "社", "customers": "社", "companies": "社", "users": "人",
                "people": "人", "responses": "件", "tickets": "件", "rows": "行",
                "days": "日", "months": "か月", "cohorts": "コホート"}


def fmt_count(x, unit: str = "", lang: str | None = None) -> str:
    """A count with its unit: ``1,234 accounts``, in Japanese ``1,234社``.

    Japanese uses a counter word (``unit`` is the English word; unknown units are appended
    as given).
    """
    if is_missing(x):
        return "–"
    number = f"{int(round(x)):,}"
    if lang == "ja":
        counter = _COUNTERS_JA.get(unit, unit)
        return f"{number}{counter}"
    return f"{number} {unit}" if unit else number


def _as_date(d):
    if isinstance(d, pd.Timestamp):
        return None if pd.isna(d) else d.date()
    if isinstance(d, dt.datetime):
        return d.date()
    return d if isinstance(d, dt.date) else None


def fmt_date(d, lang: str | None = None) -> str:
    """A date as ``3 Mar 2024``, or ``2024年3月3日`` in Japanese.

    (Datetimes lose their time; anything else as text, missing as ``–``).
    """
    day = _as_date(d)
    if day is None:
        return "–" if is_missing(d) else str(d)
    if lang == "ja":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {day.strftime('%b')} {day.year}"


def fmt_month(d, lang: str | None = None) -> str:
    """A month as ``Mar 2024``, or ``2024年3月`` in Japanese."""
    day = _as_date(d)
    if day is None:
        return "–" if is_missing(d) else str(d)
    if lang == "ja":
        return f"{day.year}年{day.month}月"
    return f"{day.strftime('%b')} {day.year}"


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
