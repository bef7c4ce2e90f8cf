"""The workspace calendar: time zone, dates of timestamps, periods, labels and the as-of date.

One module owns every calendar operation so that every analysis cuts days, months and
quarters the same way (metrics.md, Time):

- timestamps are stored in UTC; the workspace has one time zone (``ws.timezone``, the
  loader's ``timezone``, default UTC), and every calendar operation happens in that zone:
  the date of a timestamp, the month or quarter it falls in, and every comparison of a
  date (signup, kickoff, as-of) with a timestamp. An event at 07:00 on 1 May in Tokyo is a
  May event of a Tokyo workspace;
- a **period** is a calendar week (Monday to Sunday), month, quarter or year, numbered by
  one integer (:func:`period_of`): ``year * 12 + month - 1`` for months,
  ``year * 4 + quarter - 1`` for quarters, Monday-weeks since 1970-01-05 for weeks;
- a period is **observable** when its last day is on or before the as-of date.

Each operation exists twice, once as an Ibis expression for the engine and once for
Python / pandas values; the tests compare the two, with pandas' own time-zone database as
the reference for the engine's conversion.

Engine-side conversion uses only portable operations (timestamp + interval, ``CASE``): no
backend time-zone function, and no ``.quarter()`` (which Ibis compiles to a float division
on SQLite). A zone with daylight-saving time becomes a ``CASE`` over its transitions
between :data:`DST_YEARS` (a balanced tree of ``CASE``s: seven comparisons per row for
about a hundred transitions); a zone with one offset (UTC, Asia/Tokyo) is one addition,
and UTC none at all.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import pandas as pd

from cs_analysis.errors import CSAnalysisError, check_choice

__all__ = [
    "GRAINS",
    "day_start",
    "is_observable",
    "last_observable",
    "local_date",
    "local_dates",
    "local_timestamp",
    "on_or_before",
    "period_bounds",
    "period_end",
    "period_expr",
    "period_label",
    "period_number",
    "period_of",
    "period_range",
    "period_start",
    "resolve_as_of",
    "to_date",
    "utc_instant",
    "zone",
]

#: Period grains, finest first.
GRAINS = ("week", "month", "quarter", "year")
#: Years whose daylight-saving transitions the engine-side conversion knows.
DST_YEARS = (1995, 2045)
_EPOCH_MONDAY = dt.date(1970, 1, 5)


class TimeZoneError(CSAnalysisError, ValueError):
    """An unknown time zone, or one a backend cannot apply."""


# -- values ------------------------------------------------------------------------------
def to_date(value) -> dt.date | None:
    """A calendar date from a date, datetime, pandas Timestamp or ISO text (None stays None).

    A datetime's own date is taken as it is (no time-zone conversion); use
    :func:`local_dates` for UTC timestamps.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "date") and callable(value.date):  # pandas Timestamp, numpy
        return value.date()
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise CSAnalysisError(
            f"{value!r} is not a date; expected YYYY-MM-DD (e.g. 2024-04-01)") from None


def resolve_as_of(ws, as_of=None) -> dt.date:
    """The as-of date an analysis uses: ``as_of`` if given, else the workspace's.

    The workspace default (``ws.as_of``) is the latest date on which something was
    observed (metrics.md, Time); scheduled future dates never move it.
    """
    return ws.as_of if as_of is None else to_date(as_of)


@functools.lru_cache(maxsize=64)
def zone(tz: str | None) -> ZoneInfo:
    """The :class:`zoneinfo.ZoneInfo` of an IANA name (``None`` or empty: UTC)."""
    name = tz or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeZoneError(
            f"unknown time zone {name!r}; expected an IANA name such as 'UTC', "
            "'Asia/Tokyo' or 'America/New_York'") from None


def utc_instant(d, tz: str | None) -> dt.datetime:
    """The UTC instant (naive, as stored) at which local day ``d`` starts in ``tz``."""
    d = to_date(d)
    local = dt.datetime(d.year, d.month, d.day, tzinfo=zone(tz))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def local_dates(values, tz: str | None) -> pd.Series:
    """Local calendar dates (``datetime64`` at midnight) of stored UTC timestamps.

    Dates (no time part given as ``date`` objects) and nulls pass through; the conversion
    uses pandas' time-zone database, independent of the engine-side :func:`local_date`.
    """
    s = pd.Series(values)
    ts = pd.to_datetime(s)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    name = tz or "UTC"
    zone(name)  # a clear error for unknown names
    if name != "UTC":
        ts = ts.dt.tz_localize("UTC").dt.tz_convert(name).dt.tz_localize(None)
    return ts.dt.normalize()


# -- periods (Python side) ------------------------------------------------------------
def _grain(grain: str) -> str:
    return check_choice("grain", grain, GRAINS)


def period_of(d, grain: str) -> int:
    """Period number of date ``d`` (see the module docstring)."""
    d = to_date(d)
    grain = _grain(grain)
    if grain == "month":
        return d.year * 12 + d.month - 1
    if grain == "quarter":
        return d.year * 4 + (d.month - 1) // 3
    if grain == "year":
        return d.year
    return (d - _EPOCH_MONDAY).days // 7


def period_start(p: int, grain: str) -> dt.date:
    """First day of period ``p``."""
    p, grain = int(p), _grain(grain)
    if grain == "month":
        return dt.date(p // 12, p % 12 + 1, 1)
    if grain == "quarter":
        return dt.date(p // 4, (p % 4) * 3 + 1, 1)
    if grain == "year":
        return dt.date(p, 1, 1)
    return _EPOCH_MONDAY + dt.timedelta(days=7 * p)


def period_end(p: int, grain: str) -> dt.date:
    """Last day of period ``p``."""
    return period_start(int(p) + 1, grain) - dt.timedelta(days=1)


def period_bounds(p: int, grain: str) -> tuple[dt.date, dt.date]:
    """First and last day of period ``p``."""
    return period_start(p, grain), period_end(p, grain)


def period_label(p: int, grain: str) -> str:
    """``2024-03`` (month), ``2024-Q1`` (quarter), ``2024-W05`` (ISO week), ``2024`` (year)."""
    p, grain = int(p), _grain(grain)
    if grain == "month":
        return f"{p // 12:04d}-{p % 12 + 1:02d}"
    if grain == "quarter":
        return f"{p // 4:04d}-Q{p % 4 + 1}"
    if grain == "year":
        return f"{p:04d}"
    year, week, _ = period_start(p, "week").isocalendar()
    return f"{year:04d}-W{week:02d}"


def period_range(first: int, last: int) -> list[int]:
    """Period numbers from ``first`` to ``last`` inclusive."""
    return list(range(int(first), int(last) + 1))


def last_observable(as_of, grain: str) -> int:
    """The latest period whose last day is on or before ``as_of``."""
    as_of = to_date(as_of)
    p = period_of(as_of, grain)
    return p if period_end(p, grain) <= as_of else p - 1


def is_observable(p: int, grain: str, as_of) -> bool:
    """Whether period ``p`` has ended by ``as_of`` (its last day is on or before it)."""
    return period_end(p, grain) <= to_date(as_of)


def period_number(values, grain: str, tz: str | None = None) -> pd.Series:
    """Period numbers of dates, or of stored UTC timestamps read in ``tz`` (pandas side).

    Pass ``tz`` for ``*_at`` timestamps (their local date decides the period) and leave it
    None for ``*_date`` columns.
    """
    grain = _grain(grain)
    d = local_dates(values, tz) if tz is not None else pd.to_datetime(pd.Series(values))
    if grain == "month":
        out = d.dt.year * 12 + d.dt.month - 1
    elif grain == "quarter":
        out = d.dt.year * 4 + (d.dt.month - 1) // 3
    elif grain == "year":
        out = d.dt.year
    else:
        out = (d - pd.Timestamp(_EPOCH_MONDAY)).dt.days // 7
    return out.astype("Int64") if out.isna().any() else out.astype("int64")


# -- engine side -----------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _offsets(tz: str | None) -> tuple[int, tuple[tuple[dt.datetime, int], ...]]:
    """UTC offset (s) before the first transition, and ``(utc instant, offset after)``."""
    z = zone(tz)
    lo, hi = DST_YEARS
    start = dt.datetime(lo, 1, 1, tzinfo=dt.UTC)
    first = int(start.astimezone(z).utcoffset().total_seconds())
    changes: list[tuple[dt.datetime, int]] = []
    current = first
    # walk in 1-day steps, then find the exact minute of each change by bisection
    t = start
    end = dt.datetime(hi + 1, 1, 1, tzinfo=dt.UTC)
    step = dt.timedelta(days=1)
    while t < end:
        nxt = t + step
        off = int(nxt.astimezone(z).utcoffset().total_seconds())
        if off != current:
            a, b = t, nxt
            while b - a > dt.timedelta(minutes=1):
                mid = a + (b - a) / 2
                if int(mid.astimezone(z).utcoffset().total_seconds()) == current:
                    a = mid
                else:
                    b = mid
            b = b.replace(second=0, microsecond=0)
            while int(b.astimezone(z).utcoffset().total_seconds()) == current:
                b += dt.timedelta(minutes=1)
            changes.append((b.replace(tzinfo=None), off))
            current = off
        t = nxt
    return first, tuple(changes)


def local_timestamp(col, tz: str | None):
    """Ibis expression: the wall-clock time in ``tz`` of a stored UTC timestamp column.

    Raises
    ------
    TimeZoneError
        When the backend cannot add an interval to a timestamp (SQLite before 3.42) and
        the zone is not UTC: the message names the operation and the backend.
    """
    first, changes = _offsets(tz)
    if not changes and first == 0:
        return col
    if not changes:
        return col + ibis.interval(seconds=first)
    # the offset in force on segment i: offs[0] before the first change, offs[i] from
    # change i - 1 on; a balanced tree of CASEs finds it in ~log2(changes) comparisons
    # per row (a flat CASE over ~100 transitions costs one comparison per transition
    # passed, about 60 for today's dates)
    offs = [first, *(off for _, off in changes)]
    instants = [ibis.timestamp(instant) for instant, _ in changes]

    def shift(lo: int, hi: int):
        if lo == hi:
            return ibis.interval(seconds=offs[lo])
        mid = (lo + hi + 1) // 2       # segments lo..mid-1 lie before change mid - 1
        return ibis.ifelse(col < instants[mid - 1], shift(lo, mid - 1), shift(mid, hi))

    return col + shift(0, len(offs) - 1)


def local_date(col, tz: str | None):
    """Ibis expression: the local calendar date in ``tz`` of a UTC timestamp (or a date).

    A ``date`` column is returned unchanged: dates are already calendar days.
    """
    if col.type().is_date():
        return col
    return local_timestamp(col, tz).date()


def day_start(d, tz: str | None):
    """Ibis timestamp literal: the stored (UTC) instant at which local day ``d`` starts.

    ``col >= day_start(d, tz)`` means "on or after local day d", and
    ``col < day_start(d + 1 day, tz)`` "on or before local day d", without converting the
    column (so an index on it still helps).
    """
    return ibis.timestamp(utc_instant(d, tz))


def on_or_before(col, d, tz: str | None):
    """Ibis predicate: timestamp (or date) ``col`` falls on or before local day ``d``."""
    d = to_date(d)
    if col.type().is_date():
        return col <= d
    return col < day_start(d + dt.timedelta(days=1), tz)


def period_expr(col, grain: str, tz: str | None = None):
    """Ibis expression: the period number (int64) of a date, or of a UTC timestamp in ``tz``.

    Uses only ``year()``, ``month()`` and integer arithmetic (no ``quarter()``), and for
    weeks the day count since a Monday, so every backend cuts periods the same way.
    """
    grain = _grain(grain)
    d = local_date(col, tz) if not col.type().is_date() else col
    if grain == "month":
        out = d.year() * 12 + d.month() - 1
    elif grain == "quarter":
        out = d.year() * 4 + (d.month() - 1) // 3
    elif grain == "year":
        out = d.year()
    else:
        out = d.delta(ibis.date(_EPOCH_MONDAY), unit="day") // 7
    return out.cast("int64")


def check_grain(grain: str, allowed: Sequence[str] = GRAINS) -> str:
    """``grain`` if it is one of ``allowed``, else a clear error."""
    return check_choice("grain", grain, allowed)
