"""Stage flow of a journey (reach, conversion, days, stalls) and the shared goals over time.

Definitions: :mod:`cs_analysis.journey` (module docstring) and :func:`stage_flow`,
:func:`goal_progress`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cs_analysis.errors import ArgumentError, check_choice, check_int
from cs_analysis.journey.maps import SMALL_SAMPLE, Goal, JourneyMap, Signal, Stage, load_map
from cs_analysis.journey.stakeholders import stakeholder_split
from cs_analysis.results import Result
from cs_analysis.time import (
    is_observable,
    local_date,
    local_dates,
    on_or_before,
    period_bounds,
    period_expr,
    period_label,
    period_number,
    period_of,
    resolve_as_of,
)

_SMALL = SMALL_SAMPLE


# ======================================================================================
# Stage flow
# ======================================================================================
_STAKEHOLDER_SPLITS = ("decision_style", "champion_domain")


def _signal_stages(journey: JourneyMap) -> list[tuple[int, Stage]]:
    return [(i, s) for i, s in enumerate(journey.stages) if s.signal is not None]


def _criteria_for(stages: Sequence[tuple[int, Stage]]) -> dict | None:
    out = []
    for i, s in stages:
        sig = s.signal
        if sig.kind == "milestone":
            cond: dict = {"milestone": sig.milestone}
        elif sig.kind == "events":
            cond = {"events": list(sig.events) or "any", "at_least": sig.at_least}
            if sig.within_days:
                cond["within_days"] = sig.within_days
        elif sig.kind == "active_users":
            cond = {"active_users": sig.at_least}
            if sig.events:
                cond["events"] = list(sig.events)
        else:
            continue
        out.append({"name": f"stage_{i}", "label": s.name, "all": [cond]})
    if not out:
        return None
    return {"clock_start": "signup_date", "stages": out}


def _account_base(ws, as_of: dt.date, by: Sequence[str]) -> pd.DataFrame:
    acc_cols = [c for c in by if c not in _STAKEHOLDER_SPLITS]
    t = ws.table("accounts", columns=["account_id", "signup_date", *acc_cols])
    t = t.filter(t.signup_date <= as_of).select("account_id", "signup_date", *acc_cols)
    acc = t.to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    acc["signup_date"] = pd.to_datetime(acc["signup_date"]).astype("datetime64[us]")
    acc["churn_date"] = pd.Series(pd.NaT, index=acc.index, dtype="datetime64[us]")
    if ws.has("subscriptions"):
        from cs_analysis.retention import account_lifetimes

        lt = account_lifetimes(ws, as_of=as_of)
        churn = pd.Series(pd.to_datetime(lt["churn_date"]).astype("datetime64[us]").to_numpy(),
                          index=lt["account_id"].astype("str"))
        acc["churn_date"] = churn.reindex(acc["account_id"]).to_numpy()
    for split in by:
        if split in _STAKEHOLDER_SPLITS:
            acc[split] = stakeholder_split(ws, as_of=as_of, split=split).reindex(
                acc["account_id"]).fillna("(unknown)").to_numpy()
    return acc.sort_values("account_id").reset_index(drop=True)


def _survey_times(ws, as_of: dt.date, sig: Signal) -> pd.Series:
    """First qualifying response per account, from its signup day to the as-of day (local)."""
    t = ws.table("survey_responses", columns=["account_id", "survey", "score", "responded_at"])
    t = t.filter(t.survey == sig.survey)
    if sig.touchpoint:
        if "touchpoint" not in t.columns:
            from cs_analysis.workspace import WorkspaceError

            raise WorkspaceError("this workspace's survey_responses table has no column "
                                 "touchpoint, which a survey signal with a touchpoint needs")
        t = t.filter(t.touchpoint == sig.touchpoint)
    if sig.min_score is not None:
        t = t.filter(t.score >= sig.min_score)
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    acc = acc.select("account_id", _signup=acc.signup_date)
    j = t.join(acc, "account_id")
    tz = ws.timezone
    j = j.filter(local_date(j.responded_at, tz) >= j._signup,
                 on_or_before(j.responded_at, as_of, tz))
    out = j.group_by("account_id").agg(at=j.responded_at.min()).to_pandas()
    return pd.Series(pd.to_datetime(out["at"]).astype("datetime64[us]").to_numpy(),
                     index=out["account_id"].astype("str"))


def _reach_times(ws, journey: JourneyMap, as_of: dt.date, by: Sequence[str]
                 ) -> tuple[pd.DataFrame, list[tuple[int, Stage]]]:
    """Accounts with one reached-time column per signal stage.

    Columns ``account_id, signup_date, churn_date``, the by columns, and ``stage_<i>``:
    when stage ``i`` was reached while a customer (NaT otherwise).
    """
    from cs_analysis.onboarding import time_to_value

    acc = _account_base(ws, as_of, by)
    stages = _signal_stages(journey)
    crit = _criteria_for(stages)
    if crit is not None:
        ttv = time_to_value(ws, crit, as_of=as_of)
        for name, g in ttv.groupby("stage", sort=False):
            at = pd.Series(pd.to_datetime(g["reached_at"]).astype("datetime64[us]").to_numpy(),
                           index=g["account_id"].astype("str"))
            acc[name] = at.reindex(acc["account_id"]).to_numpy()
    churn_day = acc["churn_date"]
    for i, s in stages:
        if s.signal.kind == "survey":
            at = _survey_times(ws, as_of, s.signal).reindex(acc["account_id"]).to_numpy()
            acc[f"stage_{i}"] = at
        at = pd.to_datetime(acc[f"stage_{i}"]).astype("datetime64[us]")
        # reached while a customer: on a local day before the churn date
        ok = churn_day.isna() | (local_dates(at, ws.timezone) < churn_day)
        acc[f"stage_{i}"] = at.where(ok)
    return acc, stages


def _flow_rows(acc: pd.DataFrame, stages, as_of: dt.date, stall_days: int, small: int,
               journey: JourneyMap, tz: str) -> list[dict]:
    from cs_analysis.survival import kaplan_meier

    as_of_ts = pd.Timestamp(as_of)
    churned = acc["churn_date"].notna()
    end = acc["churn_date"].where(churned, as_of_ts)
    rows = []
    prev_col, prev_name = None, "signup"
    signal_pos = {i for i, _ in stages}
    for i, s in enumerate(journey.stages):
        if i not in signal_pos:
            rows.append({"position": i + 1, "stage": s.name, "signal": "", "has_signal": False,
                         "from_stage": "", "accounts": len(acc)})
            continue
        col = f"stage_{i}"
        prev_at = acc["signup_date"] if prev_col is None else acc[prev_col]
        prev = prev_at.notna()
        this = acc[col].notna()
        # whole local days: the signup is a date, a reached time a UTC timestamp
        prev_day = prev_at.dt.normalize() if prev_col is None else local_dates(prev_at, tz)
        this_day = local_dates(acc[col], tz)
        conv = prev & this
        event_days = (this_day - prev_day).dt.days.clip(lower=0)
        cens_days = (end - prev_day).dt.days.clip(lower=0)
        time = event_days.where(this, cens_days)[prev].to_numpy(dtype=float)
        event = this[prev].to_numpy(dtype=int)
        km = kaplan_meier(time, event) if len(time) else None
        waiting = prev & ~this & ~churned
        since = (as_of_ts - prev_day).dt.days
        n_prev = int(prev.sum())
        rows.append({
            "position": i + 1, "stage": s.name, "signal": s.signal.describe(),
            "has_signal": True, "from_stage": prev_name, "accounts": len(acc),
            "reached": int(this.sum()), "reached_share": _div(this.sum(), len(acc)),
            "from_reached": n_prev, "converted": int(conv.sum()),
            "conversion": _div(conv.sum(), n_prev),
            "median_days": km.quantile(0.5) if km else math.nan,
            "p25_days": km.quantile(0.25) if km else math.nan,
            "p75_days": km.quantile(0.75) if km else math.nan,
            "waiting": int(waiting.sum()),
            "stalled": int((waiting & (since > stall_days)).sum()),
            "stalled_share": _div((waiting & (since > stall_days)).sum(), n_prev),
            "churned_before": int((prev & ~this & churned).sum()),
            "small_sample": n_prev < small,
        })
        prev_col, prev_name = col, s.name
    return rows


def _div(a, b) -> float:
    return float(a) / float(b) if b else math.nan


#: Columns of :func:`stage_flow` (after the ``by`` column).
FLOW_COLUMNS = ["position", "stage", "signal", "has_signal", "from_stage", "accounts",
                 "reached", "reached_share", "from_reached", "converted", "conversion",
                 "median_days", "p25_days", "p75_days", "waiting", "stalled", "stalled_share",
                 "churned_before", "small_sample"]


@dataclass(frozen=True)
class JourneyReach(Result):
    """Result of :func:`journey_reach`: when each account reached each signal stage.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per account: ``account_id``, ``signup_date``, ``churn_date``, the ``by``
        columns and ``stage_<i>`` (the stored UTC instant stage ``i`` was reached; NaT
        when not reached while a customer).
    journey : str
        Fingerprint of the map (:meth:`JourneyMap.fingerprint`).
    as_of : datetime.date
    by : tuple of str
        The split columns carried.
    """

    frame: pd.DataFrame
    journey: str
    as_of: dt.date
    by: tuple[str, ...] = ()

    title = "Accounts reaching each stage"

    def narrow(self, ids) -> JourneyReach:
        """The same reach, restricted to the accounts ``ids`` (all for None)."""
        if ids is None:
            return self
        keep = self.frame["account_id"].astype("str").isin(pd.Index(ids).astype("str"))
        return dataclasses.replace(self, frame=self.frame[keep])

    def summary(self) -> pd.DataFrame:
        """Accounts and accounts that reached each signal stage."""
        cols = [c for c in self.frame.columns if c.startswith("stage_")]
        return pd.DataFrame({"column": cols,
                             "reached": [int(self.frame[c].notna().sum()) for c in cols],
                             "accounts": len(self.frame)})


def journey_reach(ws, journey, by: str | Sequence[str] | None = None, *, as_of=None
                  ) -> JourneyReach:
    """When each account reached each stage of a journey that has a data signal.

    One row per account (signed up by the as-of date): ``account_id``, ``signup_date``,
    ``churn_date`` (NaT while a customer), the ``by`` columns (as for
    :func:`stage_flow`) and ``stage_<i>`` per signal stage (``i`` its 0-based position
    in the map): when it was reached while a customer, NaT otherwise. This is what
    :func:`stage_flow` aggregates; the rows do not depend on which other accounts are in
    scope, so a dashboard computes them once and narrows them (``reach=``).

    Parameters
    ----------
    ws : Workspace
    journey : JourneyMap or what :func:`load_map` accepts
    by : str or list of str, optional
        Split columns to carry (``segment``, ``decision_style``, ``champion_domain``, ...).
    as_of : date or str, optional
        Default: the workspace's as-of date.
    """
    journey = load_map(journey)
    as_of = resolve_as_of(ws, as_of)
    by_cols = [by] if isinstance(by, str) else list(by or [])
    acc, _ = _reach_times(ws, journey, as_of, by_cols)
    return JourneyReach(acc, journey.fingerprint(), as_of, tuple(by_cols))


def stage_flow(ws, journey, by: str | None = None, *, as_of=None, stall_days: int = 30,
               small_sample: int = _SMALL, reach: JourneyReach | None = None
               ) -> pd.DataFrame:
    """How accounts move through a journey's stages: reach, conversion, days, stalls.

    Definitions (module docstring): a stage is **reached** at the first moment its data
    signal holds while the account is a customer (milestones, event sets and active
    users via :func:`cs_analysis.onboarding.time_to_value`; survey touchpoints here).
    For each stage with a signal, the previous one is the previous stage *with a signal*
    (for the first, the signup). **conversion** = accounts that reached both / accounts
    that reached the previous one. **Days** between the two: whole days between the
    dates reached (0 when this one came first); accounts that reached the previous stage
    but not this one are censored at their churn date or at the as-of date; median and
    quartiles from the Kaplan-Meier estimate (smallest t with S(t) <= 1 - p; NaN when
    the curve never gets there). **waiting**: reached the previous stage, not this one,
    still a customer; **stalled**: waiting for more than ``stall_days`` days since
    reaching the previous stage; **churned_before**: reached the previous stage, churned
    without reaching this one.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; accounts signing up after the as-of date are
        left out.
    journey : JourneyMap or what :func:`load_map` accepts
    by : str, optional
        An ``accounts`` column (e.g. ``segment``), ``decision_style`` (the account's most
        common stakeholder decision style) or ``champion_domain`` (``business``,
        ``technical``, ``both`` or ``none``: the domains of the account's champions at
        the as-of date, see :func:`stakeholder_map`). Missing values form ``"(missing)"``.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    stall_days : int
        Days of waiting after which an account counts as stalled.
    small_sample : int
        Rows whose ``from_reached`` is below this are flagged ``small_sample``.
    reach : JourneyReach, optional
        :func:`journey_reach` of this journey and as-of date (with the ``by`` column),
        possibly narrowed (:meth:`JourneyReach.narrow`): aggregated instead of asking
        the engine.

    Returns
    -------
    pandas.DataFrame
        One row per (group and) stage in map order: the ``by`` column, ``position``
        (1-based, in the map), ``stage``, ``signal`` (in words; '' without one),
        ``has_signal``, ``from_stage``, ``accounts`` (in the group), ``reached``,
        ``reached_share``, ``from_reached``, ``converted``, ``conversion``,
        ``median_days``, ``p25_days``, ``p75_days``, ``waiting``, ``stalled``,
        ``stalled_share``, ``churned_before``, ``small_sample``. Stages without a
        signal have only ``position``, ``stage``, ``has_signal`` and ``accounts``.
    """
    journey = load_map(journey)
    stall_days = check_int("stall_days", stall_days, minimum=0)
    small_sample = check_int("small_sample", small_sample, minimum=0)
    as_of = resolve_as_of(ws, as_of)
    by_cols = [by] if by else []
    if reach is None:
        acc, stages = _reach_times(ws, journey, as_of, by_cols)
    else:
        stages = _signal_stages(journey)
        made = (getattr(reach, "journey", None), getattr(reach, "as_of", None))
        frame = getattr(reach, "frame", pd.DataFrame())
        missing = [c for c in [*by_cols, *(f"stage_{i}" for i, _ in stages)]
                   if c not in frame]
        if made != (journey.fingerprint(), as_of) or missing:
            raise ArgumentError("reach must be journey_reach() of this journey and as-of "
                                "date" + (f" with the column(s) {missing}" if missing else ""))
        acc = frame.copy()
    if by:
        acc[by] = acc[by].astype("object").where(acc[by].notna(), "(missing)").astype("str")
        groups = [(str(k), g) for k, g in acc.groupby(by, sort=True)]
    else:
        groups = [(None, acc)]
    rows = []
    for key, g in groups:
        for r in _flow_rows(g, stages, as_of, stall_days, small_sample, journey,
                            ws.timezone):
            rows.append({by: key, **r} if by else r)
    cols = ([by] if by else []) + FLOW_COLUMNS
    out = pd.DataFrame(rows).reindex(columns=cols)
    for c in ("accounts", "reached", "from_reached", "converted", "waiting", "stalled",
              "churned_before"):
        out[c] = out[c].astype("Int64")
    out["has_signal"] = out["has_signal"].astype(bool)
    out["small_sample"] = out["small_sample"].astype("boolean")
    return out


# ======================================================================================
# Shared goals over time
# ======================================================================================
_GRAINS = ("month", "quarter")


#: Columns of :func:`goal_progress` (the ``by`` column goes after ``metric``).
GOAL_COLUMNS = ["goal", "layer", "metric", "period", "period_label", "period_start",
                 "value", "numerator", "denominator", "lower", "upper", "target",
                 "direction", "met", "small_sample"]


def goal_progress(ws, journey, *, grain: str = "quarter", by: str | None = None, as_of=None,
                  goals: Sequence[str] | None = None, small_sample: int = _SMALL
                  ) -> pd.DataFrame:
    """The agreed goal metrics per period, against their targets.

    Definitions (also :data:`GOAL_METRICS` and :meth:`Goal.definition`):

    - ``stage_share``: of the accounts signing up in the period, the share that reached
      the goal's stage (its data signal, as in :func:`stage_flow`) within
      ``within_days`` days of signup; accounts that churned first count as not reached.
      Only periods whose last day is at least ``within_days`` before the as-of date are
      returned (every account of the cohort had the full window).
    - ``active_share``: of the accounts paying on the period's last day (a subscription
      covers it: ``start_date <= d < end_date``), the share with at least ``at_least``
      usage events (of ``events``; any when not given) dated in the period. Only
      observable periods (last day on or before the as-of date). Counted in the engine.
    - ``nps`` / ``csat`` / ``ces``: the score of the period's responses
      (:func:`cs_analysis.surveys.nps` etc.: one response per respondent per wave, with
      their intervals).

    ``met`` says whether the value reaches the target in the goal's direction.

    Parameters
    ----------
    ws : Workspace
    journey : JourneyMap or what :func:`load_map` accepts
        Its ``goals`` are tracked (and its stages give ``stage_share`` signals).
    grain : {"quarter", "month"}
    by : str, optional
        An ``accounts`` column to split by (e.g. ``segment``).
    as_of : date or str, optional
    goals : list of str, optional
        Only these goals (default all).
    small_sample : int
        Rows with a denominator (responses for surveys) below this are flagged.

    Returns
    -------
    pandas.DataFrame
        One row per goal, (group,) and period: ``goal``, ``layer``, ``metric``, the ``by``
        column, ``period`` (number), ``period_label``, ``period_start``, ``value``,
        ``numerator`` (NaN for NPS / CES), ``denominator`` (accounts, or responses),
        ``lower`` / ``upper`` (survey intervals; NaN otherwise), ``target``,
        ``direction``, ``met``, ``small_sample``.
    """
    from cs_analysis import surveys

    journey = load_map(journey)
    small_sample = check_int("small_sample", small_sample, minimum=0)
    grain = check_choice("grain", grain, _GRAINS)
    as_of = resolve_as_of(ws, as_of)
    chosen = [g for g in journey.goals if goals is None or g.name in goals]
    frames = []
    for g in chosen:
        if g.metric == "stage_share":
            df = _stage_share(ws, journey, g, grain, by, as_of)
        elif g.metric == "active_share":
            df = _active_share(ws, g, grain, by, as_of)
        else:
            fn = {"nps": surveys.nps, "csat": surveys.csat, "ces": surveys.ces}[g.metric]
            # the period argument is being renamed `grain` across the package
            kw = "grain" if "grain" in inspect.signature(fn).parameters else "period"
            s = fn(ws, by=by, as_of=as_of, **{kw: grain})
            s = s[s["period"].map(lambda p: period_bounds(p, grain)[1] <= as_of)]
            df = pd.DataFrame({
                **({by: s[by].astype("str")} if by else {}),
                "period": s["period"].astype("int64"),
                "value": s[g.metric].astype(float),
                "numerator": s["top2_box"].astype(float) if g.metric == "csat" else np.nan,
                "denominator": s["responses"].astype("int64"),
                "lower": s["lower"].astype(float), "upper": s["upper"].astype(float)})
        df = df.assign(goal=g.name, layer=g.layer, metric=g.metric, target=float(g.target),
                       direction=g.direction)
        frames.append(df)
    cols = GOAL_COLUMNS[:3] + ([by] if by else []) + GOAL_COLUMNS[3:]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out["period"] = out["period"].astype("int64")
    out["period_label"] = [period_label(p, grain) for p in out["period"]]
    out["period_start"] = pd.to_datetime([period_bounds(p, grain)[0] for p in out["period"]])
    up = out["direction"] == "at_least"
    out["met"] = (out["value"] >= out["target"]).where(up, out["value"] <= out["target"])
    out["met"] = out["met"].where(out["value"].notna()).astype("boolean")
    out["small_sample"] = out["denominator"] < small_sample
    out = out.reindex(columns=cols)
    out = out.sort_values(["goal", *([by] if by else []), "period"]).reset_index(drop=True)
    return out


def _stage_share(ws, journey: JourneyMap, goal: Goal, grain, by, as_of) -> pd.DataFrame:
    i = journey.index(goal.stage)
    one = dataclasses.replace(journey, stages=(journey.stages[i],), goals=())
    acc, _ = _reach_times(ws, one, as_of, [by] if by else [])
    reached_at = acc["stage_0"]
    days = (local_dates(reached_at, ws.timezone) - acc["signup_date"]).dt.days
    ok = reached_at.notna() & (days <= goal.within_days)
    acc = acc.assign(period=period_number(acc["signup_date"], grain), ok=ok)
    observable = acc["period"].map(
        lambda p: period_bounds(p, grain)[1] + dt.timedelta(days=goal.within_days) <= as_of)
    acc = acc[observable]
    keys = ([by] if by else []) + ["period"]
    if by:
        acc = acc.assign(**{by: acc[by].astype("object").where(acc[by].notna(), "(missing)")
                            .astype("str")})
    g = acc.groupby(keys, sort=True).agg(numerator=("ok", "sum"), denominator=("ok", "size"))
    g = g.reset_index()
    g["value"] = g["numerator"] / g["denominator"]
    g["numerator"] = g["numerator"].astype(float)
    return g.assign(lower=np.nan, upper=np.nan)


def _active_share(ws, goal: Goal, grain, by, as_of) -> pd.DataFrame:
    """``active_share`` per (group and) period, counted in the engine.

    Periods are cut in the workspace's time zone (an event at 07:00 on 1 May in Tokyo is a
    May event); only account x period rows come back.
    """
    import ibis

    tz = ws.timezone
    cols = [*([by] if by else []), "period", "value", "numerator", "denominator", "lower",
            "upper"]
    subs = ws.table("subscriptions", columns=["account_id", "start_date"])
    has_end = "end_date" in subs.columns
    first = subs.aggregate(first=subs.start_date.min()).to_pandas()["first"].iloc[0]
    if pd.isna(first):
        return pd.DataFrame(columns=cols)
    periods = [p for p in range(period_of(first, grain), period_of(as_of, grain) + 1)
               if is_observable(p, grain, as_of)]
    if not periods:
        return pd.DataFrame(columns=cols)
    cal = ibis.memtable({"period": periods,
                         "day": [period_bounds(p, grain)[1] for p in periods]},
                        schema={"period": "int64", "day": "date"})
    # accounts paying on the period's last day d: start_date <= d < end_date
    cover = subs.cross_join(cal).filter(subs.start_date <= cal.day)
    if has_end:
        cover = cover.filter(cover.end_date.isnull() | (cover.end_date > cover.day))
    paying = cover.select("account_id", "period").distinct()
    acc = ws.table("accounts", columns=["account_id", *([by] if by else [])])
    paying = paying.join(acc.select("account_id", *([by] if by else [])), "account_id")
    ev = ws.table("usage_events", columns=["account_id", "event_at",
                                           *(["event_name"] if goal.events else [])])
    if goal.events:
        ev = ev.filter(ev.event_name.isin(list(goal.events)))
    ev = ev.filter(on_or_before(ev.event_at, as_of, tz))
    ev = ev.mutate(period=period_expr(ev.event_at, grain, tz))
    counts = ev.group_by(["account_id", "period"]).agg(events=ev.count())
    counts = counts.filter(counts.events >= goal.at_least).select(
        "account_id", "period", active=ibis.literal(1))
    j = paying.left_join(counts, ["account_id", "period"])
    keys = [*([by] if by else []), "period"]
    out = (j.group_by([j[k] for k in keys])
           .agg(numerator=j.active.fill_null(0).sum(), denominator=j.count())
           .to_pandas())
    if out.empty:
        return pd.DataFrame(columns=cols)
    if by:
        out[by] = out[by].astype("object").where(out[by].notna(), "(missing)").astype("str")
        out = out.groupby([by, "period"], as_index=False)[["numerator", "denominator"]].sum()
    out["numerator"] = out["numerator"].astype(float)
    out["denominator"] = out["denominator"].astype("int64")
    out["value"] = out["numerator"] / out["denominator"].where(out["denominator"] > 0)
    out = out.sort_values(keys).reset_index(drop=True)
    return out.assign(lower=np.nan, upper=np.nan)[cols]
