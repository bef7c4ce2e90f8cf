"""Parsing cells: text, numbers, dates and timestamps, as the module docstring describes.

Every parser takes a column of raw cells and returns ``(typed values, bad mask)``:
nothing is coerced silently; a cell that does not parse is reported by the caller.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from cs_analysis.time import local_dates


# ----------------------------------------------------------------------------------------
# Parsing cells
# ----------------------------------------------------------------------------------------
def cell_text(v) -> str:
    """One non-text cell (Excel / Parquet) as the text a CSV would hold."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    if isinstance(v, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(v)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _is_null(v) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def nullify(s: pd.Series) -> pd.Series:
    """Trim text, turn empty cells into nulls; typed columns pass unchanged."""
    if s.dtype == object:
        return s.map(lambda v: None if _is_null(v) else (v.strip() if isinstance(v, str)
                                                            else v))
    if pd.api.types.is_string_dtype(s.dtype):
        t = s.astype("str").str.strip()
        return t.mask(t == "")
    return s


def apply_values(s: pd.Series, mapping: dict[str, Any]) -> pd.Series:
    """Apply a mapping's ``values:`` (source text → canonical value) to a column."""
    if not mapping:
        return s
    if s.dtype == object:
        return s.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v)
    if pd.api.types.is_string_dtype(s.dtype):
        hit = s.isin(list(mapping))
        if not hit.any():
            return s
        out = s.astype(object)
        out[hit.to_numpy()] = s[hit].map(mapping).to_numpy()
        return out.astype("str")
    text = s.map(lambda v: None if _is_null(v) else cell_text(v))
    hit = text.isin(list(mapping))
    if not hit.any():
        return s
    out = s.astype(object)
    out[hit.to_numpy()] = text[hit].map(mapping).to_numpy()
    return out


def as_text(s: pd.Series) -> pd.Series:
    """A column as trimmed text (``str`` dtype), nulls kept."""
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return s.astype("str")
    vals = [None if _is_null(v) else cell_text(v).strip() for v in s.to_numpy()]
    return pd.Series(vals, index=s.index, dtype="str")


def _kinds(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks (text, number, datetime) of an object column's non-null cells."""
    vals = s.to_numpy()
    text = np.fromiter((isinstance(v, str) for v in vals), bool, len(vals))
    num = np.fromiter((isinstance(v, int | float | np.integer | np.floating | Decimal)
                       and not isinstance(v, bool | np.bool_) and not _is_null(v)
                       for v in vals), bool, len(vals))
    when = np.fromiter((isinstance(v, dt.date | pd.Timestamp | np.datetime64)
                        and not _is_null(v) for v in vals), bool, len(vals))
    return text, num, when


def _normalize_digits(t: pd.Series) -> pd.Series:
    """Full-width digits and signs to ASCII (only when the column has non-ASCII text)."""
    if bool(t.dropna().str.isascii().all()):
        return t
    t = t.str.normalize("NFKC").str.replace("\u2212", "-", regex=False)
    return t


# ``[0-9]`` and ``[ ]`` rather than ``\d`` and ``\s``: pandas then runs the patterns in
# pyarrow's RE2 instead of Python's ``re`` (about 20 times faster on large columns).
_NUM_RE = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_THOUSANDS_RE = r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?"


def _parse_number_text(t: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Text to float: (values with NaN for null or bad, bad mask)."""
    present = t.notna().to_numpy()
    out = np.full(len(t), np.nan)
    if not present.any():
        return out, np.zeros(len(t), bool)
    t = _normalize_digits(t)
    plain = t.str.fullmatch(_NUM_RE).fillna(False).to_numpy(bool)
    grouped = ~plain & present & t.str.fullmatch(_THOUSANDS_RE).fillna(False).to_numpy(bool)
    if plain.any():
        out[plain] = pd.to_numeric(t[plain]).to_numpy(float)
    if grouped.any():
        out[grouped] = pd.to_numeric(t[grouped].str.replace(",", "", regex=False)
                                     ).to_numpy(float)
    bad = present & ~(plain | grouped)
    return out, bad


def parse_number(s: pd.Series, whole: bool) -> tuple[pd.Series, np.ndarray]:
    """Cells to numbers (``Int64`` if ``whole``): (values, mask of unparseable cells)."""
    n = len(s)
    if pd.api.types.is_bool_dtype(s.dtype):
        values, bad = np.full(n, np.nan), s.notna().to_numpy()
    elif pd.api.types.is_numeric_dtype(s.dtype):
        values, bad = s.to_numpy(dtype=float, na_value=np.nan), np.zeros(n, bool)
    elif s.dtype == object:
        text, num, _ = _kinds(s)
        values, bad = np.full(n, np.nan), ~(text | num) & ~s.map(_is_null).to_numpy(bool)
        if num.any():
            values[num] = s[num].astype(float).to_numpy()
        if text.any():
            v, b = _parse_number_text(s[text].astype("str"))
            values[text], bad[text] = v, b
    else:
        values, bad = _parse_number_text(s.astype("str"))
    values = values.copy()
    if whole:
        ok = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**53)
        bad = bad | (~np.isnan(values) & ~ok)
        values[bad] = np.nan
        return pd.Series(values, index=s.index).astype("Int64"), bad
    bad = bad | np.isinf(values)
    values[bad] = np.nan
    return pd.Series(values, index=s.index, dtype="float64"), bad


_DEFAULT_FORMATS = [
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M",
]
_OFFSET_FORMATS = [f + "%z" for f in _DEFAULT_FORMATS[1:]]
_OFFSET_RE = (r".*[0-9]:[0-9][0-9](?::[0-9][0-9](?:\.[0-9]+)?)?"  # a time, then an offset
              r"[ ]*(?:Z|z|[+-][0-9][0-9](?::?[0-9][0-9])?)")
_SERIAL_RE = r"[0-9]{5}(?:\.[0-9]+)?"
_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "us")
_MIN_YEAR = 1900


def _strptime_cascade(t: pd.Series, formats: list[str], memo: list[str] | None, *,
                      utc: bool = False) -> np.ndarray:
    """Parse text with the first format that fits each value (NaT when none does).

    ``memo`` remembers which format worked last so a uniform column costs one pass.
    """
    out = np.full(len(t), np.datetime64("NaT", "us"))
    todo = t.notna().to_numpy().copy()
    order = list(formats)
    if memo:
        order = [f for f in memo if f in order] + [f for f in order if f not in memo]
    for fmt in order:
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        parsed = pd.to_datetime(t.iloc[idx], format=fmt, errors="coerce", utc=utc)
        if utc:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        vals = parsed.to_numpy(dtype="datetime64[us]")
        ok = ~np.isnat(vals)
        if ok.any():
            out[idx[ok]] = vals[ok]
            todo[idx[ok]] = False
            if memo is not None:
                if fmt in memo:
                    memo.remove(fmt)
                memo.insert(0, fmt)
    return out


def _parse_when_text(t: pd.Series, kind: str, formats: list[str] | None,
                     memo: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text to datetimes: (local naive values, values already in UTC, mask of the latter)."""
    n = len(t)
    local = np.full(n, np.datetime64("NaT", "us"))
    in_utc = np.zeros(n, bool)
    if not t.notna().any():
        return local, local.copy(), in_utc
    if formats:  # the mapping's formats first, then the default ones
        has_z = any("%z" in f for f in formats)
        utcv = local.copy()
        if has_z and kind == "timestamp":
            utcv = _strptime_cascade(t, [f for f in formats if "%z" in f], None, utc=True)
            in_utc = ~np.isnat(utcv)
            local = _strptime_cascade(t.mask(pd.Series(in_utc, index=t.index)),
                                      [f for f in formats if "%z" not in f], None)
        else:
            plain = [f.replace("%z", "") for f in formats] if kind == "date" else formats
            t_plain = t
            if kind == "date" and has_z:
                t_plain = t.str.replace(r"\s*(?:Z|z|[+-]\d\d(?::?\d\d)?)$", "", regex=True)
            local = _strptime_cascade(t_plain, [f for f in plain if f], None)
        rest = np.isnat(local) & ~in_utc & t.notna().to_numpy()
        if rest.any():
            idx = np.flatnonzero(rest)
            lv, uv, iu = _parse_when_text(t.iloc[idx], kind, None, memo)
            local[idx], utcv[idx], in_utc[idx] = lv, uv, iu
        return local, utcv, in_utc
    t = _normalize_digits(t)
    if not bool(t.dropna().str.isascii().all()):
        t = (t.str.replace(r"^(\d{4})年(\d{1,2})月(\d{1,2})日", r"\1-\2-\3", regex=True))
    t = t.str.replace("/", "-", regex=False)
    utcv = np.full(n, np.datetime64("NaT", "us"))
    offset = t.str.fullmatch(_OFFSET_RE).fillna(False).to_numpy(bool)
    if offset.any():
        sub = t[offset].str.replace(r"\s+(?=[Zz+-][\d:]*$)", "", regex=True)
        if kind == "timestamp":
            vals = _strptime_cascade(sub, _OFFSET_FORMATS, None, utc=True)
            utcv[offset] = vals
            in_utc = offset & ~np.isnat(utcv)
            t = t.mask(pd.Series(offset, index=t.index))
        else:  # a date keeps the date as written
            t = t.copy()
            t[offset] = sub.str.replace(r"(?:Z|z|[+-]\d\d(?::?\d\d)?)$", "", regex=True)
    local = _strptime_cascade(t, _DEFAULT_FORMATS, memo)
    rest = np.isnat(local) & t.notna().to_numpy()
    if rest.any():
        sub = t[rest]
        serial = sub.str.fullmatch(_SERIAL_RE).fillna(False).to_numpy(bool)
        if serial.any():
            idx = np.flatnonzero(rest)[serial]
            local[idx] = _from_serial(pd.to_numeric(sub[serial]).to_numpy(float))
        compact = sub.str.fullmatch(r"[0-9]{8}").fillna(False).to_numpy(bool)
        if compact.any():
            idx = np.flatnonzero(rest)[compact]
            local[idx] = _strptime_cascade(sub[compact], ["%Y%m%d"], None)
    return local, utcv, in_utc


def _from_number(x: np.ndarray) -> np.ndarray:
    """Numbers to dates: 5-digit Excel serials and 8-digit yyyymmdd; NaT otherwise."""
    out = np.full(len(x), np.datetime64("NaT", "us"))
    serial = (x >= 10_000) & (x < 100_000)
    out[serial] = _from_serial(x[serial])
    compact = (x >= 19_000_101) & (x <= 99_991_231) & (np.floor(x) == x)
    if compact.any():
        text = pd.Series(x[compact].astype("int64").astype(str))
        out[compact] = pd.to_datetime(text, format="%Y%m%d", errors="coerce").to_numpy(
            "datetime64[us]")
    return out


def _from_serial(x: np.ndarray) -> np.ndarray:
    ms = np.round(x * 86_400_000).astype("int64")
    return _EXCEL_EPOCH + ms.astype("timedelta64[ms]").astype("timedelta64[us]")


def parse_when(s: pd.Series, kind: str, formats: list[str] | None, tz: str,
                memo: list[str]) -> tuple[pd.Series, np.ndarray]:
    """Cells to naive datetimes: dates (midnight) or timestamps in UTC; (values, bad)."""
    n = len(s)
    local = np.full(n, np.datetime64("NaT", "us"))
    utcv = np.full(n, np.datetime64("NaT", "us"))
    in_utc = np.zeros(n, bool)
    present = ~s.map(_is_null).to_numpy(bool) if s.dtype == object else s.notna().to_numpy()
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        if kind == "timestamp":
            utcv = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
            in_utc = present.copy()
        else:  # the date of that instant in the workspace zone
            local = local_dates(s.dt.tz_convert("UTC").dt.tz_localize(None), tz).to_numpy(
                "datetime64[us]")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        local = s.to_numpy("datetime64[us]")
    elif pd.api.types.is_bool_dtype(s.dtype):
        pass
    elif pd.api.types.is_numeric_dtype(s.dtype):
        local = _from_number(s.to_numpy(dtype=float, na_value=np.nan))
    elif s.dtype == object:
        text, num, when = _kinds(s)
        if when.any():
            vals = s[when]
            aware = np.fromiter((getattr(v, "tzinfo", None) is not None for v in vals),
                                bool, len(vals))
            idx = np.flatnonzero(when)
            if aware.any():
                ts = pd.to_datetime(vals[aware], utc=True).tz_localize(None)
                if kind == "timestamp":
                    utcv[idx[aware]] = ts.to_numpy("datetime64[us]")
                    in_utc[idx[aware]] = True
                else:
                    local[idx[aware]] = local_dates(pd.Series(ts), tz).to_numpy(
                        "datetime64[us]")
            if (~aware).any():
                local[idx[~aware]] = pd.to_datetime(list(vals[~aware])).to_numpy(
                    "datetime64[us]")
        if num.any():
            local[np.flatnonzero(num)] = _from_number(s[num].astype(float).to_numpy())
        if text.any():
            lv, uv, iu = _parse_when_text(s[text].astype("str"), kind, formats, memo)
            idx = np.flatnonzero(text)
            local[idx], utcv[idx], in_utc[idx] = lv, uv, iu
    else:
        local, utcv, in_utc = _parse_when_text(s.astype("str"), kind, formats, memo)
    if kind == "date":
        values = local.astype("datetime64[D]").astype("datetime64[us]")
    else:
        values = np.where(in_utc, utcv, _localize(local, tz))
    parsed = ~np.isnat(values)
    years = values.astype("datetime64[Y]").astype("int64") + 1970
    early = parsed & (years < _MIN_YEAR)
    bad = present & (~parsed | early)
    values = values.copy()
    values[bad] = np.datetime64("NaT")
    return pd.Series(values, index=s.index, dtype="datetime64[us]"), bad


def _localize(local: np.ndarray, tz: str) -> np.ndarray:
    """Local naive times in ``tz`` to naive UTC (first occurrence; skipped hour shifted)."""
    if tz in ("UTC", "Etc/UTC", "GMT") or not (~np.isnat(local)).any():
        return local
    idx = pd.DatetimeIndex(local).tz_localize(tz, ambiguous=np.ones(len(local), bool),
                                              nonexistent="shift_forward")
    return idx.tz_convert("UTC").tz_localize(None).to_numpy("datetime64[us]")
