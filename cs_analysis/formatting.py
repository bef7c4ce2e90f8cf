"""Formatting helpers shared by dashboards and HTML renderers (no widgets).

Used by :mod:`cs_analysis.dashboard` (which re-exports them) and by the analyses'
own HTML output (e.g. :meth:`cs_analysis.journey.MapComparison.html`), so that an
analysis never needs ipywidgets to format a number or escape a value.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

__all__ = ["esc", "fmt_int", "fmt_money", "fmt_pct", "is_missing"]


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
