"""Account health you can check: a score whose weights are data, a backtest, renewal risk.

Public API:

- :func:`load_model` -- read and check a health model file
  (``cs_analysis/defaults/health_model.yml``): the measures, their scoring rules and
  weights, per-segment weights, the qualitative share and the band limits
  (:class:`HealthModel`; file/line errors).
- :func:`measure_values` -- each measure's raw value per paying account at a date, taken
  from the analyses that own it (adoption, onboarding, surveys, support, stakeholders,
  CSM ratings); the expensive, engine-side part, done once per date.
- :func:`score` -- points, contributions, score and band from those values (pandas
  arithmetic only: a dashboard re-scores on a slider move without touching the engine).
- :func:`health_scores` -- both in one call: one row per account.
- :func:`backtest` -- scores at past snapshot dates against what happened next: AUC with
  an account-clustered bootstrap interval, calibration by band, lift by decile, and each
  measure alone.
- :func:`suggest_weights` -- weights a regularised logistic regression suggests, fitted
  on earlier snapshots and checked on later ones beside the hand-set weights.
- :func:`renewal_risk` -- accounts renewing within a horizon ranked by risk, with reasons
  in plain words and the MRR at stake.

Definitions (metrics.md, Health)
--------------------------------
- A **score at as-of date d** uses only rows dated on or before d (timestamps as local
  dates of the workspace's time zone): each measure comes from a function called with
  ``as_of=d``. The accounts scored are those paying at d (a subscription covers d,
  :func:`cs_analysis.retention.mrr_at`). ``stakeholders.sentiment`` has no date: it is
  the value recorded now, also at past dates (a note says so when it is used).
- **Points**: each measure earns 0-100 points by its rule (thresholds, or percentile
  bands among the accounts scored at the same date). **Score** = (1 - q) x the weighted
  mean of the quantitative measures' points + q x that of the qualitative ones
  (q = ``qualitative_share``; an account with measures of one kind only is scored on
  those). A measure without a value is left out of that account's mean (its weight is
  shared among the others) unless the model gives ``if_missing`` points.
  **Contribution** of a measure = its effective weight x its points; contributions add
  up to the score. **Band**: green (score >= green limit), yellow, red.
- **Backtest label** of an account scored at snapshot t, over ``(t, t + horizon]``:
  ``churned`` (its churn date, :func:`cs_analysis.retention.account_lifetimes` seen at
  t + horizon, falls in the window), ``contracted`` (not churned, MRR at t + horizon <
  MRR at t), else ``retained``. An account that churned and came back within the window
  is not counted as churned.
- **AUC** = the probability that an account that churned (the event) scored lower than
  one that did not, ties counting half (Mann-Whitney U / (n1 n0), scipy). The interval is
  a percentile bootstrap that resamples accounts (all their snapshots together), since
  one account appears at several snapshots. **Calibration**: the event rate per band
  (Wilson interval, statsmodels). **Lift** of a risk decile = its event rate / the
  overall rate (decile 1 = the lowest scores).

Scores are associations: a low score says an account looks like those that left, not
why it would leave.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import ibis
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cs_analysis.config import default_file, read_source, short, validate
from cs_analysis.errors import (
    CSAnalysisError,
    check_alpha,
    check_choice,
    check_int,
    check_number,
)
from cs_analysis.results import Result
from cs_analysis.time import (
    last_observable,
    on_or_before,
    period_end,
    resolve_as_of,
    to_date,
)

__all__ = [
    "BANDS",
    "MEASURES",
    "Backtest",
    "HealthError",
    "HealthModel",
    "HealthScores",
    "Measure",
    "RenewalRisk",
    "SuggestedWeights",
    "Values",
    "account_history",
    "auc",
    "backtest",
    "calibration",
    "default_model_path",
    "evaluate",
    "health_scores",
    "lift",
    "load_model",
    "measure_values",
    "reasons",
    "renewal_risk",
    "risk_ratio",
    "score",
    "snapshot_values",
    "suggest_weights",
]


#: The measures the code computes: name -> (label, what the raw value is).
MEASURES: dict[str, tuple[str, str]] = {
    "usage_trend": ("Usage trend", "change of weekly active users over 12 weeks "
                    "(-1 = no use in 30 days)"),
    "breadth": ("Breadth of feature use", "share of features used in 90 days"),
    "active_users": ("Active users", "active users in 30 days / seats"),
    "onboarding_stage": ("Onboarding stage reached", "share of onboarding stages reached"),
    "nps": ("NPS answers", "mean NPS answer (0-10), last 365 days"),
    "csat": ("CSAT", "share of CSAT answers in the top-2 box, last 365 days"),
    "critical_tickets": ("Critical tickets before renewal",
                         "critical tickets opened within 90 days before a renewal due "
                         "in the next 90 days"),
    "champion_departed": ("Champion departed", "1 = an executive sponsor or owner left"),
    "decision_maker_sentiment": ("Decision-maker sentiment",
                                 "mean sentiment (-2..2) of decision makers present"),
    "csm_rating": ("CSM rating", "latest CSM rating (1-5)"),
}
#: Band names, best first.
BANDS = ("green", "yellow", "red")
NO_SCORE = "no data"
KEY_ROLES = ("executive sponsor", "owner")
DECISION_ROLES = ("decision maker", "executive sponsor")
_TICKET_WINDOW = 90
_SURVEY_WINDOW = 365
_ACCOUNT_COLS = ("account_name", "segment", "csm_owner")


class HealthError(CSAnalysisError, ValueError):
    """A bad health model, parameter or data, with what was expected."""


def default_model_path() -> Path:
    """The default health model (``cs_analysis/defaults/health_model.yml``, package data)."""
    return default_file("health_model.yml")


# ======================================================================================
# The model file
# ======================================================================================
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Threshold(_Strict):
    below: float | None = None
    points: float = Field(ge=0, le=100)


class _Points(_Strict):
    thresholds: list[_Threshold] | None = Field(default=None, min_length=1)
    percentiles: list[float] | None = Field(default=None, min_length=2)


class _MeasureFile(_Strict):
    weight: float = Field(ge=0)
    kind: Literal["quantitative", "qualitative"]
    points: _Points
    if_missing: float | None = Field(default=None, ge=0, le=100)
    label: str | None = None


class _Bands(_Strict):
    green: float = Field(ge=0, le=100)
    yellow: float = Field(ge=0, le=100)


class _ModelFile(_Strict):
    measures: dict[str, _MeasureFile] = Field(min_length=1)
    qualitative_share: float = Field(ge=0, le=1)
    bands: _Bands
    segment_weights: dict[str, dict[str, float]] = Field(default_factory=dict)
    critical_priorities: list[str] = Field(default_factory=lambda: ["P1"], min_length=1)
    description: str = ""


@dataclass(frozen=True)
class Measure:
    """One measure of the model: its scoring rule and weight.

    ``thresholds`` is a tuple of ``(below, points)`` read top down (the last ``below`` is
    ``inf``); ``percentiles`` the points of equal-sized bands, lowest values first.
    """

    name: str
    label: str
    kind: str
    weight: float
    thresholds: tuple[tuple[float, float], ...] = ()
    percentiles: tuple[float, ...] = ()
    if_missing: float | None = None

    @property
    def rule(self) -> str:
        """The scoring rule in words."""
        if self.percentiles:
            return f"{len(self.percentiles)} percentile bands: {list(self.percentiles)}"
        parts = [f"< {b:g}: {p:g}" if math.isfinite(b) else f"else {p:g}"
                 for b, p in self.thresholds]
        return "; ".join(parts)


@dataclass(frozen=True)
class HealthModel:
    """A checked health model (:func:`load_model`; ``cs_analysis/defaults/health_model.yml``)."""

    measures: tuple[Measure, ...]
    qualitative_share: float
    green: float
    yellow: float
    segment_weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    critical_priorities: tuple[str, ...] = ("P1",)
    source: str = "<mapping>"
    description: str = ""

    @property
    def names(self) -> list[str]:
        """Measure names, in file order."""
        return [m.name for m in self.measures]

    def measure(self, name: str) -> Measure:
        """The measure called ``name``."""
        for m in self.measures:
            if m.name == name:
                return m
        raise HealthError(f"the model has no measure {name!r}; it has {self.names}")

    def weights(self) -> dict[str, float]:
        """Hand-set weights by measure."""
        return {m.name: m.weight for m in self.measures}

    def with_weights(self, weights: Mapping[str, float], *,
                     qualitative_share: float | None = None) -> HealthModel:
        """The same model with other weights (and qualitative share); e.g. from sliders."""
        unknown = set(weights) - set(self.names)
        if unknown:
            raise HealthError(f"unknown measure(s) {sorted(unknown)}; the model has "
                              f"{self.names}")
        ms = tuple(replace(m, weight=check_number(f"weight of {m.name}",
                                                  weights.get(m.name, m.weight), minimum=0,
                                                  error=HealthError))
                   for m in self.measures)
        q = self.qualitative_share if qualitative_share is None else check_number(
            "qualitative_share", qualitative_share, minimum=0, maximum=1, error=HealthError)
        return replace(self, measures=ms, qualitative_share=q)

    def summary(self) -> pd.DataFrame:
        """One row per measure: label, kind, weight, rule."""
        return pd.DataFrame([{"measure": m.name, "label": m.label, "kind": m.kind,
                              "weight": m.weight, "rule": m.rule,
                              "if_missing": m.if_missing} for m in self.measures])


def load_model(source=None) -> HealthModel:
    """Read and check a health model.

    Parameters
    ----------
    source : HealthModel, str, Path or mapping, optional
        A model, a YAML file, or the parsed mapping; default
        :func:`default_model_path`.

    Returns
    -------
    HealthModel

    Raises
    ------
    HealthError
        ``health model <file>, line N (<path>): ...`` for a missing key, a value of the
        wrong type, an unknown key or measure, a rule with both or neither of
        ``thresholds`` / ``percentiles``, thresholds not increasing or without a last
        catch-all, a yellow limit above the green one, or a segment weight for an
        unknown measure.
    """
    if isinstance(source, HealthModel):
        return source
    data, ctx = read_source(source, "health model", HealthError, default_model_path())
    if not isinstance(data, Mapping):
        raise ctx.error((), f"expected a mapping with `measures:`, got {short(data)}")
    m = validate(_ModelFile, data, ctx)
    if m.bands.yellow > m.bands.green:
        raise ctx.error(("bands", "yellow"), f"the yellow limit ({m.bands.yellow:g}) must "
                        f"not be above the green one ({m.bands.green:g})")
    measures = []
    for name, spec in m.measures.items():
        at = ("measures", name)
        if name not in MEASURES:
            raise ctx.error(at, f"unknown measure {name!r}; the measures are "
                            f"{', '.join(MEASURES)}", key_line=True)
        rule = spec.points
        if (rule.thresholds is None) == (rule.percentiles is None):
            raise ctx.error(at + ("points",), "give either `thresholds:` or `percentiles:`")
        thresholds: list[tuple[float, float]] = []
        if rule.thresholds is not None:
            last = -math.inf
            for i, t in enumerate(rule.thresholds):
                final = i == len(rule.thresholds) - 1
                if t.below is None and not final:
                    raise ctx.error(at + ("points", "thresholds", i),
                                    "only the last threshold may leave out `below`")
                if final and t.below is not None:
                    raise ctx.error(at + ("points", "thresholds", i),
                                    "the last threshold must leave out `below` (it scores "
                                    "every value above the others)")
                b = math.inf if t.below is None else float(t.below)
                if b <= last:
                    raise ctx.error(at + ("points", "thresholds", i, "below"),
                                    f"thresholds must increase: {b:g} after {last:g}")
                last = b
                thresholds.append((b, float(t.points)))
        pct = tuple(float(p) for p in rule.percentiles or ())
        if any(not 0 <= p <= 100 for p in pct):
            raise ctx.error(at + ("points", "percentiles"),
                            f"points must be within 0-100, got {list(pct)}")
        measures.append(Measure(name, spec.label or MEASURES[name][0], spec.kind,
                                float(spec.weight), tuple(thresholds), pct,
                                None if spec.if_missing is None else float(spec.if_missing)))
    names = {x.name for x in measures}
    for seg, ws_ in m.segment_weights.items():
        for name, w in ws_.items():
            if name not in names:
                raise ctx.error(("segment_weights", seg, name),
                                f"unknown measure {name!r}; the model has "
                                f"{', '.join(sorted(names))}", key_line=True)
            if w < 0:
                raise ctx.error(("segment_weights", seg, name),
                                f"a weight must be >= 0, got {w:g}")
    if sum(x.weight for x in measures) <= 0:
        raise ctx.error(("measures",), "at least one measure needs a weight above 0")
    return HealthModel(tuple(measures), float(m.qualitative_share), float(m.bands.green),
                       float(m.bands.yellow),
                       {s: {k: float(v) for k, v in w.items()}
                        for s, w in m.segment_weights.items()},
                       tuple(m.critical_priorities), ctx.source, m.description)


# ======================================================================================
# Measures (engine work, once per date)
# ======================================================================================
class _Skip(Exception):
    """A measure that cannot be computed on this workspace (the message says why)."""


def _population(ws, as_of: dt.date) -> pd.DataFrame:
    """Accounts paying at ``as_of`` (a subscription covers it), with name/segment/CSM."""
    from cs_analysis.retention import mrr_at

    mrr = mrr_at(ws, as_of)
    cols = ["account_id", "signup_date", *[c for c in _ACCOUNT_COLS if ws.has("accounts", c)]]
    acc = ws.table("accounts", columns=cols)
    acc = acc.filter(acc.signup_date <= as_of).select(*cols).to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    out = mrr.merge(acc, on="account_id", how="inner")
    for c in _ACCOUNT_COLS:
        if c not in out:
            out[c] = pd.Series(pd.NA, index=out.index, dtype="object")
    return out[["account_id", *_ACCOUNT_COLS, "mrr"]].sort_values("account_id") \
        .reset_index(drop=True)


def _series(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.Series(df[col].to_numpy(float), index=df["account_id"].astype("str"))


def _m_usage_trend(ws, as_of, model, extra):
    from cs_analysis.adoption import usage_trend

    if not ws.has("usage_events"):
        raise _Skip("no usage_events table")
    ut = usage_trend(ws, as_of=as_of)
    v = ut["trend"].astype(float).where(~ut["usage_class"].isin(["new"]))
    v = v.where(~ut["usage_class"].isin(["dropped", "no_usage"]), -1.0)
    extra["usage_class"] = pd.Series(ut["usage_class"].to_numpy(),
                                     index=ut["account_id"].astype("str"))
    return pd.Series(v.to_numpy(float), index=ut["account_id"].astype("str"))


def _m_breadth(ws, as_of, model, extra):
    from cs_analysis.adoption import feature_adoption

    if not ws.has("usage_events"):
        raise _Skip("no usage_events table")
    fa = feature_adoption(ws, window="90D", as_of=as_of)
    return _series(fa.accounts, "breadth"), 0.0  # not active in 90 days: breadth 0


def _m_active_users(ws, as_of, model, extra):
    from cs_analysis.adoption import seat_utilisation

    if not ws.has("usage_events"):
        raise _Skip("no usage_events table")
    if not ws.has("subscriptions", "seats"):
        raise _Skip("subscriptions has no seats column")
    su = seat_utilisation(ws, as_of=as_of)
    return _series(su.accounts, "utilisation")


def _m_onboarding_stage(ws, as_of, model, extra):
    from cs_analysis.onboarding import time_to_value

    if not ws.has("onboarding_milestones"):
        raise _Skip("no onboarding_milestones table")
    tv = time_to_value(ws, as_of=as_of)
    tv = tv[~tv["status"].isin(["no_clock_start", "not_started"])]
    share = tv.groupby(tv["account_id"].astype("str"))["reached"].mean()
    return share.astype(float)


def _survey(ws, as_of, name: str) -> pd.DataFrame:
    from cs_analysis.surveys import responses

    if not ws.has("survey_responses"):
        raise _Skip("no survey_responses table")
    since = as_of - dt.timedelta(days=_SURVEY_WINDOW - 1)
    r = responses(ws, name, as_of=as_of, since=since)
    r["account_id"] = r["account_id"].astype("str")
    return r


def _m_nps(ws, as_of, model, extra):
    r = _survey(ws, as_of, "nps")
    score = r["score"].astype(float)
    extra["detractor_answers"] = (score <= 6).groupby(r["account_id"]).sum().astype(float)
    return score.groupby(r["account_id"]).mean()


def _m_csat(ws, as_of, model, extra):
    r = _survey(ws, as_of, "csat")
    return (r["category"] == "positive").groupby(r["account_id"]).mean().astype(float)


def _m_critical_tickets(ws, as_of, model, extra):
    from cs_analysis.support import open_critical_before_renewal

    if not ws.has("support_tickets"):
        raise _Skip("no support_tickets table")
    if not ws.has("support_tickets", "priority"):
        raise _Skip("support_tickets has no priority column")
    crit = list(model.critical_priorities)
    # the planted and documented risk: a critical ticket in the run-up to a renewal
    oc = open_critical_before_renewal(ws, _TICKET_WINDOW, crit, as_of=as_of,
                                      opened_within_days=_TICKET_WINDOW)
    recent = oc.groupby(oc["account_id"].astype("str")).size().astype(float)
    # critical tickets still open at the end of the as-of day (for the reasons)
    tz = ws.timezone
    cols = ["account_id", "opened_at", "priority"] + (
        ["resolved_at"] if ws.has("support_tickets", "resolved_at") else [])
    t = ws.table("support_tickets", columns=cols)
    pred = [t.priority.isin(crit), on_or_before(t.opened_at, as_of, tz)]
    if "resolved_at" in cols:
        pred.append(t.resolved_at.isnull() | ~on_or_before(t.resolved_at, as_of, tz))
    t = t.filter(*pred)
    df = t.group_by("account_id").agg(open=t.count()).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    extra["open_critical_tickets"] = _series(df, "open")
    return recent, 0.0


def _stakeholders(ws, as_of, need: str):
    if not ws.has("stakeholders"):
        raise _Skip("no stakeholders table")
    if not ws.has("stakeholders", need):
        raise _Skip(f"stakeholders has no {need} column")
    cols = ["account_id", "person_id", "role"]
    t = ws.table("stakeholders", columns=cols + ([need] if need not in cols else []))
    return t


def _m_champion_departed(ws, as_of, model, extra):
    t = _stakeholders(ws, as_of, "left_at")
    gone = ibis.ifelse(t.role.isin(list(KEY_ROLES)) & t.left_at.notnull()
                       & on_or_before(t.left_at, as_of, ws.timezone), 1, 0).cast("int64")
    df = t.mutate(_g=gone).group_by("account_id").agg(g=ibis._._g.max()).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    return _series(df, "g")


def _m_decision_maker_sentiment(ws, as_of, model, extra):
    _stakeholders(ws, as_of, "sentiment")  # skips without the table or the column
    gone = ws.has("stakeholders", "left_at")
    t = ws.table("stakeholders", columns=["account_id", "person_id", "role", "sentiment",
                                          *(["left_at"] if gone else [])])
    pred = [t.role.isin(list(DECISION_ROLES)), t.sentiment.notnull()]
    if gone:  # people still there at the end of the as-of day
        pred.append(t.left_at.isnull() | ~on_or_before(t.left_at, as_of, ws.timezone))
    t = t.filter(*pred)
    df = t.group_by("account_id").agg(s=t.sentiment.cast("float64").mean()).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    return _series(df, "s")


def _m_csm_rating(ws, as_of, model, extra):
    if not ws.has("health_inputs"):
        raise _Skip("no health_inputs table")
    t = ws.table("health_inputs", columns=["account_id", "as_of", "csm_rating"])
    t = t.filter(t.as_of <= as_of, t.csm_rating.notnull())
    last = t.group_by("account_id").agg(last=t.as_of.max())
    j = t.join(last, [t.account_id == last.account_id, t.as_of == last["last"]])
    df = j.group_by(t.account_id).agg(r=j.csm_rating.cast("float64").mean()).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    return _series(df, "r")


_COMPUTE = {
    "usage_trend": _m_usage_trend,
    "breadth": _m_breadth,
    "active_users": _m_active_users,
    "onboarding_stage": _m_onboarding_stage,
    "nps": _m_nps,
    "csat": _m_csat,
    "critical_tickets": _m_critical_tickets,
    "champion_departed": _m_champion_departed,
    "decision_maker_sentiment": _m_decision_maker_sentiment,
    "csm_rating": _m_csm_rating,
}
#: Measures whose value for one account depends on the other accounts in scope.
_BOOK_MEASURES = ("breadth",)
#: Extra per-account columns the reasons of :func:`renewal_risk` use.
_EXTRA = ("usage_class", "detractor_answers", "open_critical_tickets")


@dataclass(frozen=True)
class Values:
    """Raw measure values per paying account at one date (see :func:`measure_values`).

    Attributes
    ----------
    frame : pandas.DataFrame
        ``account_id``, ``account_name``, ``segment``, ``csm_owner``, ``mrr``, one column
        per computed measure (NaN = no value), ``usage_class``, ``detractor_answers``,
        ``open_critical_tickets``.
    as_of : date
    measures : tuple of str
        The measures computed.
    skipped : dict
        Measures that could not be computed, with the reason.
    """

    frame: pd.DataFrame
    as_of: dt.date
    measures: tuple[str, ...]
    skipped: Mapping[str, str]


def measure_values(ws, model=None, *, as_of=None) -> Values:
    """Each measure's raw value for every account paying at ``as_of``.

    Every measure is taken from the analysis that owns it, called with ``as_of``:
    :func:`cs_analysis.adoption.usage_trend` (``trend``; ``dropped`` / ``no_usage`` count
    as -1, ``new`` accounts have no value), :func:`~cs_analysis.adoption.feature_adoption`
    (``breadth`` over 90 days; not active = 0), :func:`~cs_analysis.adoption.seat_utilisation`
    (active users / seats), :func:`cs_analysis.onboarding.time_to_value` (share of stages
    reached), :func:`cs_analysis.surveys.responses` (mean NPS answer and CSAT top-2-box
    share over the last 365 days), :func:`cs_analysis.support.open_critical_before_renewal`
    (critical tickets opened, by ``as_of``, within 90 days before a renewal due within 90
    days of ``as_of``: the run-up to a renewal; other accounts 0); departed key people
    and decision makers' sentiment are counted per account in the engine; the CSM
    rating is the latest ``health_inputs`` row dated on or before ``as_of``.

    Parameters
    ----------
    ws : Workspace
    model : HealthModel, str, Path or mapping, optional
        Which measures to compute (default model file).
    as_of : date or str, optional
        Keyword; default the workspace's as-of date.

    Returns
    -------
    Values
    """
    model = load_model(model)
    as_of = resolve_as_of(ws, as_of)
    frame = _population(ws, as_of)
    ids = frame["account_id"]
    extra: dict[str, pd.Series] = {}
    done, skipped = [], {}
    for m in model.measures:
        try:
            got = _COMPUTE[m.name](ws, as_of, model, extra)
        except _Skip as exc:
            skipped[m.name] = str(exc)
            continue
        fill = None
        if isinstance(got, tuple):
            got, fill = got
        v = ids.map(got).astype(float)
        if fill is not None:
            v = v.fillna(fill)
        frame[m.name] = v.to_numpy()
        done.append(m.name)
    for c in _EXTRA:
        frame[c] = ids.map(extra[c]) if c in extra else np.nan
    if "open_critical_tickets" in extra:
        frame["open_critical_tickets"] = frame["open_critical_tickets"].fillna(0.0)
    return Values(frame, as_of, tuple(done), skipped)


# ======================================================================================
# Scoring (pandas arithmetic only)
# ======================================================================================
def _points(m: Measure, v: pd.Series, groups: pd.Series | None) -> np.ndarray:
    x = v.to_numpy(float)
    if m.thresholds:
        bounds = np.array([b for b, _ in m.thresholds])
        pts = np.array([p for _, p in m.thresholds])
        idx = np.searchsorted(bounds, x, side="right")  # first bound with x < bound
        out = pts[np.minimum(idx, len(pts) - 1)]
    else:
        k = len(m.percentiles)
        r = (v.groupby(groups.to_numpy()).rank(pct=True, method="average")
             if groups is not None else v.rank(pct=True, method="average"))
        band = np.clip(np.ceil(r.to_numpy(float) * k) - 1, 0, k - 1)
        out = np.asarray(m.percentiles)[np.nan_to_num(band).astype(int)]
    out = np.where(np.isnan(x), np.nan, out).astype(float)
    if m.if_missing is not None:
        out = np.where(np.isnan(out), m.if_missing, out)
    return out


def _weight_matrix(model: HealthModel, names: list[str], segment: pd.Series) -> np.ndarray:
    base = np.array([model.measure(n).weight for n in names], float)
    W = np.tile(base, (len(segment), 1))
    seg = segment.astype("object").to_numpy()
    for s, over in model.segment_weights.items():
        rows = seg == s
        if rows.any():
            for j, n in enumerate(names):
                if n in over:
                    W[rows, j] = over[n]
    return W


def _effective(model: HealthModel, names: list[str], P: np.ndarray,
               W: np.ndarray) -> np.ndarray:
    """Effective weights per account and measure (rows add up to 1, or 0 = no data)."""
    qual = np.array([model.measure(n).kind == "qualitative" for n in names])
    present = ~np.isnan(P)
    Wp = np.where(present, W, 0.0)
    wq, wl = Wp * ~qual, Wp * qual
    sq, sl = wq.sum(1, keepdims=True), wl.sum(1, keepdims=True)
    share = np.where(sl > 0, np.where(sq > 0, model.qualitative_share, 1.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        E = (np.where(sq > 0, (1 - share) * wq / sq, 0.0)
             + np.where(sl > 0, share * wl / sl, 0.0))
    return E


def _band(s: np.ndarray, model: HealthModel) -> np.ndarray:
    return np.where(np.isnan(s), NO_SCORE, np.where(s >= model.green, "green", np.where(
        s >= model.yellow, "yellow", "red")))


def score(values, model=None, *, groups: str | None = None, pulled: int = 3) -> pd.DataFrame:
    """Points, contributions, score and band from raw measure values (no engine work).

    Parameters
    ----------
    values : Values or pandas.DataFrame
        :func:`measure_values` (or its ``frame``; pooled snapshots of
        :func:`snapshot_values` too).
    model : HealthModel, str, Path or mapping, optional
    groups : str, optional
        Column within which percentile bands are cut (``"snapshot"`` for pooled
        snapshots); default: all rows together.
    pulled : int
        How many measures ``pulled_down_by`` names.

    Returns
    -------
    pandas.DataFrame
        The input columns, then per measure ``<m>_value``, ``<m>_points``,
        ``<m>_contribution``; ``score`` (0-100; NaN when no measure has a value),
        ``band`` (green / yellow / red / "no data") and ``pulled_down_by`` (the measures
        that cost the most points, most first, with their values).
    """
    model = load_model(model)
    frame = values.frame if isinstance(values, Values) else values
    names = [n for n in model.names if n in frame.columns]
    if groups is None and "snapshot" in frame.columns:
        groups = "snapshot"
    g = frame[groups] if groups is not None else None
    P = np.column_stack([_points(model.measure(n), frame[n], g) for n in names]) \
        if names else np.zeros((len(frame), 0))
    seg = frame["segment"] if "segment" in frame else pd.Series([None] * len(frame))
    E = _effective(model, names, P, _weight_matrix(model, names, seg))
    C = np.where(np.isnan(P), 0.0, E * np.nan_to_num(P))
    has = (E > 0).any(1)
    s = np.where(has, C.sum(1), np.nan)
    keep = [c for c in frame.columns if c not in names]
    cols = {c: frame[c].to_numpy() for c in keep}
    for j, n in enumerate(names):
        cols[f"{n}_value"] = frame[n].to_numpy(float)
        cols[f"{n}_points"] = P[:, j]
        cols[f"{n}_contribution"] = C[:, j]
    cols["score"] = s
    cols["band"] = _band(s, model)
    out = pd.DataFrame(cols, index=frame.index)
    out["pulled_down_by"] = _pulled(names, model, E, P, frame, pulled)
    return out


def _fmt_value(name: str, v: float) -> str:
    if np.isnan(v):
        return "no value"
    if name in ("usage_trend",):
        return "no use in 30 days" if v <= -1 else f"{v:+.0%}"
    if name in ("breadth", "active_users", "onboarding_stage", "csat"):
        return f"{v:.0%}"
    if name == "champion_departed":
        return "yes" if v >= 0.5 else "no"
    if name == "critical_tickets":
        return f"{v:g}"
    return f"{v:.1f}"


def _pulled(names, model, E, P, frame, k) -> list[str]:
    if not names or k <= 0:
        return [""] * len(frame)
    lost = np.where(np.isnan(P), 0.0, E * (100 - np.nan_to_num(P)))
    order = np.argsort(-lost, axis=1)[:, :k]
    labels = [model.measure(n).label for n in names]
    vals = [frame[n].to_numpy(float) for n in names]
    out = []
    for i in range(len(frame)):
        parts = [f"{labels[j]} ({_fmt_value(names[j], vals[j][i])})"
                 for j in order[i] if lost[i, j] >= 1.0]
        out.append("; ".join(parts))
    return out


@dataclass(frozen=True)
class HealthScores(Result):
    """Health score of every paying account at a date.

    Attributes
    ----------
    accounts : pandas.DataFrame
        One row per account (see :func:`health_scores`).
    as_of : date
    measures : tuple of str
        Measures scored.
    skipped : dict
        Measures the workspace could not compute, with the reason.
    model : HealthModel
    """

    accounts: pd.DataFrame
    as_of: dt.date
    measures: tuple[str, ...]
    skipped: Mapping[str, str]
    model: HealthModel
    title = "Account health"

    def summary(self) -> pd.DataFrame:
        """Accounts per band (and their MRR)."""
        a = self.accounts
        g = a.groupby("band").agg(accounts=("account_id", "size"), mrr=("mrr", "sum"))
        order = [b for b in (*BANDS, NO_SCORE) if b in g.index]
        g = g.reindex(order).reset_index()
        g["share"] = g["accounts"] / g["accounts"].sum()
        return g


def _skip_notes(skipped: Mapping[str, str], measures: Sequence[str]) -> list[str]:
    notes = [f"Measure {n} skipped: {why}." for n, why in skipped.items()]
    if "decision_maker_sentiment" in measures:
        notes.append("stakeholders.sentiment has no date: decision-maker sentiment is the "
                     "value recorded now, also for past dates (possible look-ahead).")
    return notes


def health_scores(ws, model=None, as_of=None, *, pulled: int = 3) -> HealthScores:
    """Health score of every account paying at ``as_of``, measure by measure.

    metrics.md (Health): a score at ``as_of`` uses only rows dated on or before it (local
    dates). See the module docstring for points, contributions, the qualitative share
    and bands; :func:`measure_values` for where each measure comes from.

    Parameters
    ----------
    ws : Workspace
    model : HealthModel, str, Path or mapping, optional
        Default ``cs_analysis/defaults/health_model.yml``.
    as_of : date or str, optional
        Default the workspace's as-of date.
    pulled : int
        How many measures ``pulled_down_by`` names.

    Returns
    -------
    HealthScores
        ``accounts``: ``account_id``, ``account_name``, ``segment``, ``csm_owner``,
        ``mrr``, ``usage_class``, ``detractor_answers``, ``open_critical_tickets``, per
        measure ``<m>_value`` (raw), ``<m>_points`` (0-100), ``<m>_contribution``
        (points x effective weight; they add up to the score), ``score``, ``band``,
        ``pulled_down_by``. Skipped measures are listed in ``skipped`` and the notes.
    """
    model = load_model(model)
    pulled = check_int("pulled", pulled, minimum=0, error=HealthError)
    vals = measure_values(ws, model, as_of=as_of)
    out = score(vals, model, pulled=pulled)
    return HealthScores(out, vals.as_of, vals.measures, dict(vals.skipped), model,
                        notes=tuple(_skip_notes(vals.skipped, vals.measures)))


# ======================================================================================
# Backtest
# ======================================================================================
def _snapshot_dates(ws, snapshots, horizon_days: int, as_of: dt.date) -> list[dt.date]:
    latest = as_of - dt.timedelta(days=horizon_days)
    if isinstance(snapshots, int | np.integer) and not isinstance(snapshots, bool):
        n = check_int("snapshots", snapshots, minimum=1, error=HealthError)
        last = last_observable(latest, "quarter")
        dates = [period_end(p, "quarter") for p in range(last - n + 1, last + 1)]
    else:
        dates = sorted({to_date(d) for d in snapshots})
        if not dates:
            raise HealthError("snapshots must name at least one date")
    late = [d for d in dates if d > latest]
    if late:
        raise HealthError(f"snapshot(s) {', '.join(map(str, late))} leave less than "
                          f"{horizon_days} days before the as-of date {as_of}: their outcome "
                          f"is not known yet; use dates on or before {latest}")
    return dates


def _outcomes(ws, t: dt.date, horizon_days: int, mrr_t: pd.Series) -> pd.Series:
    from cs_analysis.retention import account_lifetimes, mrr_at

    end = t + dt.timedelta(days=horizon_days)
    lt = account_lifetimes(ws, as_of=end)
    churn = pd.Series(lt["churn_date"].to_numpy(), index=lt["account_id"].astype("str"))
    cd = mrr_t.index.map(churn)
    churned = pd.notna(cd) & (pd.to_datetime(cd) > pd.Timestamp(t))
    m_end = mrr_at(ws, end)
    m_end = mrr_t.index.map(pd.Series(m_end["mrr"].to_numpy(),
                                      index=m_end["account_id"])).fillna(0.0).to_numpy(float)
    out = np.where(churned, "churned",
                   np.where(m_end < mrr_t.to_numpy(float) - 1e-9, "contracted", "retained"))
    return pd.Series(out, index=mrr_t.index)


def snapshot_values(ws, model=None, horizon_days: int = 180, snapshots=8, *,
                    as_of=None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Raw measure values at each snapshot date with the outcome in the horizon after it.

    Parameters
    ----------
    ws, model
    horizon_days : int
    snapshots : int or list of dates
        A number of quarter ends (the latest with a full horizon before the as-of
        date), or the dates.
    as_of : date or str, optional

    Returns
    -------
    (frame, skipped)
        ``frame``: the :func:`measure_values` columns plus ``snapshot`` (date) and
        ``outcome`` (churned / contracted / retained); ``skipped``: measures skipped.
    """
    model = load_model(model)
    horizon_days = check_int("horizon_days", horizon_days, minimum=1, error=HealthError)
    as_of = resolve_as_of(ws, as_of)
    frames, skipped = [], {}
    for t in _snapshot_dates(ws, snapshots, horizon_days, as_of):
        v = measure_values(ws, model, as_of=t)
        skipped.update(v.skipped)
        f = v.frame
        f.insert(1, "snapshot", pd.Timestamp(t))
        f["outcome"] = _outcomes(ws, t, horizon_days, pd.Series(
            f["mrr"].to_numpy(float), index=f["account_id"])).to_numpy()
        frames.append(f)
    pooled = pd.concat(frames, ignore_index=True)
    for n in model.names:
        if n in skipped and n in pooled:
            pooled = pooled.drop(columns=n)
    return pooled, skipped


def auc(score_values, event, *, higher_is_risk: bool = False) -> float:
    """AUC: probability that an event row scored lower than a non-event row (ties half).

    ``scipy.stats.mannwhitneyu``'s U / (n1 n0). NaN scores are left out; NaN when
    either class is empty. ``higher_is_risk=True`` for a risk (not a health) score.
    """
    from scipy.stats import mannwhitneyu

    s = np.asarray(score_values, float)
    y = np.asarray(event, bool)
    ok = ~np.isnan(s)
    s, y = s[ok], y[ok]
    if higher_is_risk:
        s = -s
    if y.all() or not y.any():
        return math.nan
    u = mannwhitneyu(s[~y], s[y], alternative="two-sided").statistic
    return float(u) / (y.sum() * (~y).sum())


def _weighted_auc(s: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """AUC for each row of weights ``W`` (B x n): frequency weights, ties half."""
    order = np.argsort(s, kind="mergesort")
    s, y, W = s[order], y[order], W[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    E = np.add.reduceat(W * y, starts, axis=1)
    N = np.add.reduceat(W * ~y, starts, axis=1)
    below = np.cumsum(E, axis=1) - E
    pairs = (N * below).sum(1) + 0.5 * (N * E).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pairs / (E.sum(1) * N.sum(1))


def _boot_weights(cluster, n_boot: int, rng):
    """Chunks of bootstrap frequency weights (B x n) that resample whole accounts."""
    codes, uniq = pd.factorize(np.asarray(cluster))
    k = len(uniq)
    step = max(1, min(50, 5_000_000 // max(len(codes), 1)))
    for lo in range(0, n_boot, step):
        b = min(step, n_boot - lo)
        counts = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(b)])
        yield counts[:, codes].astype(float)


def _quantiles(a: list, alpha: float) -> tuple[float, float]:
    a = np.concatenate(a) if a else np.array([])
    a = a[np.isfinite(a)]
    if not len(a):
        return math.nan, math.nan
    return float(np.quantile(a, alpha / 2)), float(np.quantile(a, 1 - alpha / 2))


def _cluster_interval(s, y, cluster, n_boot: int, alpha: float, rng) -> tuple[float, float]:
    """Percentile interval of the AUC, resampling clusters (accounts) with replacement."""
    s = np.asarray(s, float)
    ok = ~np.isnan(s)
    s, y, cluster = s[ok], np.asarray(y, bool)[ok], np.asarray(cluster)[ok]
    if y.all() or not y.any() or n_boot == 0:
        return math.nan, math.nan
    res = [_weighted_auc(s, y, W) for W in _boot_weights(cluster, n_boot, rng)]
    return _quantiles(res, alpha)


def risk_ratio(points, event, *, below: float = 50.0) -> tuple[float, int]:
    """Event rate of the rows a measure warns about (points < ``below``) / the others'."""
    p = np.asarray(points, float)
    y = np.asarray(event, bool)
    ok = ~np.isnan(p)
    warn = ok & (p < below)
    rest = ok & ~warn
    if not warn.any() or not rest.any() or not y[rest].any():
        return math.nan, int(warn.sum())
    return float(y[warn].mean() / y[rest].mean()), int(warn.sum())


def _rr_interval(p, y, cluster, n_boot, alpha, rng, below: float = 50.0):
    p = np.asarray(p, float)
    ok = ~np.isnan(p)
    warn = (p[ok] < below).astype(float)
    yy = np.asarray(y, bool)[ok].astype(float)
    if n_boot == 0 or not warn.any() or warn.all():
        return math.nan, math.nan
    res = []
    for W in _boot_weights(np.asarray(cluster)[ok], n_boot, rng):
        with np.errstate(invalid="ignore", divide="ignore"):
            r1 = (W * warn * yy).sum(1) / (W * warn).sum(1)
            r0 = (W * (1 - warn) * yy).sum(1) / (W * (1 - warn)).sum(1)
            res.append(r1 / r0)
    return _quantiles(res, alpha)


def _wilson(k, n, alpha):
    from statsmodels.stats.proportion import proportion_confint

    k, n = np.asarray(k, float), np.asarray(n, float)
    lo, hi = proportion_confint(k, np.where(n > 0, n, 1), alpha=alpha, method="wilson")
    return np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)


def calibration(scored: pd.DataFrame, event: pd.Series, *, alpha: float = 0.05
                ) -> pd.DataFrame:
    """Event rate per band with a Wilson interval and the mean score."""
    df = pd.DataFrame({"band": scored["band"].to_numpy(), "score": scored["score"].to_numpy(),
                       "event": np.asarray(event, bool)})
    g = df.groupby("band").agg(n=("event", "size"), events=("event", "sum"),
                               mean_score=("score", "mean"))
    g = g.reindex([b for b in (*BANDS, NO_SCORE) if b in g.index]).reset_index()
    g["rate"] = g["events"] / g["n"]
    g["lower"], g["upper"] = _wilson(g["events"], g["n"], alpha)
    return g[["band", "n", "events", "rate", "lower", "upper", "mean_score"]]


def lift(score_values, event, *, bins: int = 10) -> pd.DataFrame:
    """Event rate by risk decile (1 = lowest scores) and its lift over the overall rate.

    Rows are ordered by score (ties by position) and cut into ``bins`` groups of equal
    size (the first groups one row larger when they do not divide evenly).
    """
    s = np.asarray(score_values, float)
    y = np.asarray(event, bool)
    ok = ~np.isnan(s)
    s, y = s[ok], y[ok]
    order = np.argsort(s, kind="mergesort")
    dec = np.empty(len(s), int)
    dec[order] = np.arange(len(s)) * bins // max(len(s), 1) + 1
    df = pd.DataFrame({"decile": dec, "event": y, "score": s})
    g = df.groupby("decile").agg(n=("event", "size"), events=("event", "sum"),
                                 min_score=("score", "min"), max_score=("score", "max"))
    g = g.reset_index()
    base = y.mean() if len(y) else math.nan
    g["rate"] = g["events"] / g["n"]
    g["lift"] = g["rate"] / base if base else np.nan
    g["cumulative_capture"] = g["events"].cumsum() / max(y.sum(), 1)
    return g


@dataclass(frozen=True)
class Backtest(Result):
    """How well past scores foretold what happened next.

    Attributes
    ----------
    auc, lower, upper : float
        AUC of the score and its account-clustered bootstrap interval.
    measures : pandas.DataFrame
        The score and each measure alone: ``measure``, ``label``, ``auc``, ``lower``,
        ``upper``, ``n`` (rows with a value), ``events``, ``weight``, and for a measure
        ``risk_ratio`` (event rate of the rows it warns about, points < 50, / the other
        rows'; unlike the AUC it does not shrink towards 0.5 when a warning is rare, e.g.
        a departed champion) with its clustered interval ``rr_lower`` / ``rr_upper`` and
        ``flagged`` (rows warned about).
    calibration : pandas.DataFrame
        ``band``, ``n``, ``events``, ``rate``, ``lower``, ``upper``, ``mean_score``.
    lift : pandas.DataFrame
        ``decile`` (1 = lowest scores), ``n``, ``events``, ``rate``, ``lift``, ...
    snapshots : pandas.DataFrame
        Per snapshot date: ``snapshot``, ``accounts``, ``churned``, ``contracted``,
        ``retained``, ``auc``.
    scores : pandas.DataFrame
        Pooled scored rows (account x snapshot) with ``outcome`` and ``event``.
    horizon_days, event
    """

    auc: float
    lower: float
    upper: float
    measures: pd.DataFrame
    calibration: pd.DataFrame
    lift: pd.DataFrame
    snapshots: pd.DataFrame
    scores: pd.DataFrame
    horizon_days: int
    event: str
    title = "Health score backtest"

    def summary(self) -> pd.DataFrame:
        """AUC of the score and of each measure alone."""
        return self.measures


EVENTS = ("churned", "churned_or_contracted")


def _event(outcome: pd.Series, event: str) -> np.ndarray:
    bad = ("churned",) if event == "churned" else ("churned", "contracted")
    return outcome.isin(bad).to_numpy()


def evaluate(pooled: pd.DataFrame, model=None, *, horizon_days: int = 180,
             event: str = "churned", n_boot: int = 200, alpha: float = 0.05,
             seed: int = 0, per_measure: bool = True, skipped=None) -> Backtest:
    """The backtest statistics of pooled snapshot values (see :func:`snapshot_values`).

    Pure pandas/numpy on the pooled frame: re-run cheaply with other weights
    (``model.with_weights(...)``); ``n_boot=0`` skips the intervals.
    """
    model = load_model(model)
    event = check_choice("event", event, EVENTS, error=HealthError)
    n_boot = check_int("n_boot", n_boot, minimum=0, error=HealthError)
    alpha = check_alpha(alpha, error=HealthError)
    rng = np.random.default_rng(seed)
    sc = score(pooled, model, groups="snapshot", pulled=0)
    y = _event(sc["outcome"], event)
    cl = sc["account_id"].to_numpy()
    s = sc["score"].to_numpy(float)
    a = auc(s, y)
    lo, hi = _cluster_interval(s, y, cl, n_boot, alpha, rng)
    rows = [{"measure": "score", "label": "Health score", "auc": a, "lower": lo,
             "upper": hi, "n": int((~np.isnan(s)).sum()), "events": int(y[~np.isnan(s)].sum()),
             "weight": math.nan, "risk_ratio": math.nan, "rr_lower": math.nan,
             "rr_upper": math.nan, "flagged": 0}]
    names = [n for n in model.names if f"{n}_points" in sc]
    if per_measure:
        for n in names:
            p = sc[f"{n}_points"].to_numpy(float)
            ok = ~np.isnan(p)
            m_lo, m_hi = _cluster_interval(p, y, cl, n_boot, alpha, rng)
            rr, flagged = risk_ratio(p, y)
            rr_lo, rr_hi = _rr_interval(p, y, cl, n_boot, alpha, rng)
            rows.append({"measure": n, "label": model.measure(n).label, "auc": auc(p, y),
                         "lower": m_lo, "upper": m_hi, "n": int(ok.sum()),
                         "events": int(y[ok].sum()), "weight": model.measure(n).weight,
                         "risk_ratio": rr, "rr_lower": rr_lo, "rr_upper": rr_hi,
                         "flagged": flagged})
    measures = pd.DataFrame(rows)
    snaps = []
    for t, g in sc.groupby("snapshot"):
        yt = _event(g["outcome"], event)
        snaps.append({"snapshot": t.date(), "accounts": len(g),
                      "churned": int((g["outcome"] == "churned").sum()),
                      "contracted": int((g["outcome"] == "contracted").sum()),
                      "retained": int((g["outcome"] == "retained").sum()),
                      "auc": auc(g["score"], yt)})
    notes = _skip_notes(skipped or {}, names)
    if y.sum() < 30:
        notes.append(f"Only {int(y.sum())} {event} rows in the backtest: the AUC is "
                     "imprecise (see its interval).")
    notes.append("Accounts appear at several snapshots; the interval resamples accounts.")
    return Backtest(a, lo, hi, measures, calibration(sc, y, alpha=alpha), lift(s, y),
                    pd.DataFrame(snaps), sc.assign(event=y), horizon_days, event,
                    notes=tuple(notes))


def backtest(ws, model=None, horizon_days: int = 180, snapshots=8, *, as_of=None,
             event: str = "churned", n_boot: int = 200, alpha: float = 0.05,
             seed: int = 0) -> Backtest:
    """Score accounts at past snapshot dates and compare with what happened next.

    metrics.md (Health): an account scored at snapshot t is labelled by what happened in
    ``(t, t + horizon]``: churned, contracted or retained (module docstring). The event
    is ``churned`` (or ``churned_or_contracted``). AUC (scipy Mann-Whitney), an
    account-clustered percentile bootstrap interval, calibration by band (Wilson
    intervals, statsmodels), lift by decile, and the same AUC for each measure's points
    alone.

    Parameters
    ----------
    ws : Workspace
    model : HealthModel, str, Path or mapping, optional
    horizon_days : int
    snapshots : int or list of dates
        Number of quarter ends (default 8; the latest is the last quarter end with a
        full horizon before the as-of date) or the dates themselves.
    as_of : date or str, optional
    event : {"churned", "churned_or_contracted"}
    n_boot : int
        Bootstrap resamples (0: no intervals).
    alpha : float
    seed : int

    Returns
    -------
    Backtest
    """
    model = load_model(model)
    pooled, skipped = snapshot_values(ws, model, horizon_days, snapshots, as_of=as_of)
    return evaluate(pooled, model, horizon_days=horizon_days, event=event, n_boot=n_boot,
                    alpha=alpha, seed=seed, skipped=skipped)


# ======================================================================================
# Suggested weights
# ======================================================================================
@dataclass(frozen=True)
class SuggestedWeights(Result):
    """Weights a regularised logistic regression suggests, beside the hand-set ones.

    Attributes
    ----------
    weights : pandas.DataFrame
        ``measure``, ``label``, ``kind``, ``hand_set``, ``suggested`` (NaN when the data
        are too thin), ``coefficient`` (log-odds of the event per point).
    auc_hand_set, auc_suggested : float
        Out-of-sample AUC (later snapshots) of the hand-set and the suggested score.
    train, test : tuple of date
        Snapshot dates fitted on and evaluated on.
    enough : bool
        False when the data were too thin to suggest anything.
    qualitative_share : float
        The qualitative share the suggested weights imply.
    """

    weights: pd.DataFrame
    auc_hand_set: float
    auc_suggested: float
    train: tuple
    test: tuple
    enough: bool
    qualitative_share: float
    title = "Suggested weights"

    def summary(self) -> pd.DataFrame:
        """Hand-set next to suggested weights."""
        return self.weights


def suggest_weights(ws, model=None, horizon_days: int = 180, snapshots=8, *, as_of=None,
                    event: str = "churned", train_share: float = 0.5,
                    penalty: float = 0.01, min_events: int = 10,
                    pooled: pd.DataFrame | None = None) -> SuggestedWeights:
    """Suggest weights from the data: ridge logistic regression on earlier snapshots.

    The event (churned in the horizon) is regressed on the measures' points (missing
    points filled with the measure's mean; standardised) with an L2 penalty
    (statsmodels ``GLM.fit_regularized``, ``L1_wt=0``) on the earlier ``train_share`` of
    the snapshot dates; a suggested weight is the fitted protective effect per point
    (negative coefficients; measures that go the wrong way get 0), rescaled to the same
    total as the hand-set weights. Both scores are then compared by AUC on the later
    snapshots, which the fit never saw. Segment weights are not suggested.

    Parameters
    ----------
    ws, model, horizon_days, snapshots, as_of, event
        As :func:`backtest`.
    train_share : float
        Share of the snapshot dates (earliest first) to fit on.
    penalty : float
        Ridge penalty (statsmodels ``alpha``) on standardised points.
    min_events : int
        Fewer events than this per measure in the training snapshots, or fewer than
        this in the test snapshots: the data are too thin and nothing is suggested.
    pooled : pandas.DataFrame, optional
        :func:`snapshot_values`' frame, to reuse it.

    Returns
    -------
    SuggestedWeights
    """
    import statsmodels.api as sm

    model = load_model(model)
    event = check_choice("event", event, EVENTS, error=HealthError)
    train_share = check_number("train_share", train_share, minimum=0.1, maximum=0.9,
                               error=HealthError)
    penalty = check_number("penalty", penalty, minimum=0, error=HealthError)
    min_events = check_int("min_events", min_events, minimum=1, error=HealthError)
    skipped: dict = {}
    if pooled is None:
        pooled, skipped = snapshot_values(ws, model, horizon_days, snapshots, as_of=as_of)
    sc = score(pooled, model, groups="snapshot", pulled=0)
    names = [n for n in model.names if f"{n}_points" in sc
             and sc[f"{n}_points"].notna().any()]
    dates = sorted(sc["snapshot"].unique())
    cut = max(1, int(round(len(dates) * train_share)))
    train_d, test_d = dates[:cut], dates[cut:]
    y = _event(sc["outcome"], event)
    tr = sc["snapshot"].isin(train_d).to_numpy()
    te = ~tr
    hand = {n: model.measure(n).weight for n in names}
    base = pd.DataFrame({"measure": names,
                         "label": [model.measure(n).label for n in names],
                         "kind": [model.measure(n).kind for n in names],
                         "hand_set": [hand[n] for n in names]})
    notes = _skip_notes(skipped, names)
    auc_hand = auc(sc.loc[te, "score"], y[te]) if te.any() else math.nan
    thin = (not test_d or y[tr].sum() < min_events * max(len(names), 1)
            or y[te].sum() < min_events)
    if thin:
        notes.append(f"Too thin to suggest weights: {int(y[tr].sum())} {event} rows in "
                     f"{len(train_d)} training snapshot(s) for {len(names)} measures "
                     f"(need {min_events} per measure) and {int(y[te].sum())} in "
                     f"{len(test_d)} test snapshot(s) (need {min_events}).")
        return SuggestedWeights(base.assign(suggested=math.nan, coefficient=math.nan),
                                auc_hand, math.nan, tuple(pd.Timestamp(d).date()
                                                          for d in train_d),
                                tuple(pd.Timestamp(d).date() for d in test_d), False,
                                math.nan, notes=tuple(notes))
    X = sc[[f"{n}_points" for n in names]].to_numpy(float)
    mean = np.nanmean(X[tr], axis=0)
    X = np.where(np.isnan(X), mean, X)
    sd = X[tr].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (X - mean) / sd
    fit = sm.GLM(y[tr].astype(float), sm.add_constant(Z[tr]),
                 family=sm.families.Binomial()).fit_regularized(alpha=penalty, L1_wt=0.0)
    coef = np.asarray(fit.params)[1:] / sd  # log-odds per point
    protect = np.clip(-coef, 0, None)
    total = sum(hand.values())
    sug = protect / protect.sum() * total if protect.sum() > 0 else np.zeros_like(protect)
    qual = np.array([model.measure(n).kind == "qualitative" for n in names])
    q = float(sug[qual].sum() / sug.sum()) if sug.sum() > 0 else model.qualitative_share
    alt = model.with_weights(dict(zip(names, sug, strict=True)), qualitative_share=q)
    alt = replace(alt, segment_weights={})
    s_alt = score(pooled, alt, groups="snapshot", pulled=0)["score"].to_numpy(float)
    auc_sug = auc(s_alt[te], y[te])
    notes.append(f"Fitted on {len(train_d)} snapshot(s) ({int(y[tr].sum())} {event}), "
                 f"evaluated on {len(test_d)} later one(s) ({int(y[te].sum())} {event}).")
    notes.append("Suggested weights follow associations in past data, not causes; "
                 "segment weights are left out of the suggestion.")
    out = base.assign(suggested=sug, coefficient=coef)
    return SuggestedWeights(out, auc_hand, auc_sug,
                            tuple(pd.Timestamp(d).date() for d in train_d),
                            tuple(pd.Timestamp(d).date() for d in test_d), True, q,
                            notes=tuple(notes))


# ======================================================================================
# Renewal risk
# ======================================================================================
@dataclass(frozen=True)
class RenewalRisk(Result):
    """Accounts renewing within the horizon, riskiest first, with reasons.

    Attributes
    ----------
    accounts : pandas.DataFrame
        ``rank``, ``account_id``, ``account_name``, ``segment``, ``csm_owner``,
        ``renewal_date``, ``days_to_renewal``, ``mrr_at_stake``, ``account_mrr``,
        ``score``, ``band``, ``reasons``, ``open_critical_tickets``.
    scores : HealthScores
    horizon_days : int
    """

    accounts: pd.DataFrame
    scores: HealthScores
    horizon_days: int
    title = "Renewal risk"

    def summary(self) -> pd.DataFrame:
        """The ranked list."""
        return self.accounts


def reasons(scored: pd.DataFrame, model: HealthModel, *, lowest: int = 2) -> list[str]:
    """Plain-words reasons per scored account.

    Open critical tickets, a departed champion, detractor answers, a usage drop, then the
    account's lowest-scoring other measures.
    """
    out = []
    names = [n for n in model.names if f"{n}_points" in scored]
    for r in scored.to_dict("records"):
        parts = []
        oc = r.get("open_critical_tickets")
        if oc is not None and not pd.isna(oc) and oc > 0:
            parts.append(f"{int(oc)} open critical ticket(s)")
        elif not pd.isna(r.get("critical_tickets_value", np.nan)) and \
                r["critical_tickets_value"] > 0:
            parts.append(f"{int(r['critical_tickets_value'])} critical ticket(s) before "
                         "the renewal")
        if r.get("champion_departed_value", 0) == 1:
            parts.append("champion (sponsor or owner) left")
        det = r.get("detractor_answers")
        if det is not None and not pd.isna(det) and det > 0:
            parts.append(f"{int(det)} detractor answer(s) in the last year")
        uc = r.get("usage_class")
        if isinstance(uc, str) and uc in ("declining", "dropped", "no_usage"):
            parts.append({"declining": "usage declining", "dropped": "no use in 30 days",
                          "no_usage": "never used the product"}[uc])
        shown = {"critical_tickets", "champion_departed"}
        low = sorted(((r[f"{n}_points"], n) for n in names
                      if n not in shown and not pd.isna(r[f"{n}_points"])
                      and r[f"{n}_points"] < 50), key=lambda x: x[0])[:lowest]
        for _, n in low:
            if n == "usage_trend" and any("use" in p for p in parts):
                continue
            if n == "nps" and any("detractor" in p for p in parts):
                continue
            parts.append(f"low {model.measure(n).label.lower()} "
                         f"({_fmt_value(n, r[f'{n}_value'])})")
        out.append("; ".join(parts) if parts else "no warning sign")
    return out


def renewal_risk(ws, model=None, horizon_days: int = 120, *, as_of=None,
                 scores: HealthScores | None = None,
                 calendar: pd.DataFrame | None = None) -> RenewalRisk:
    """Accounts with a renewal within ``horizon_days``, ranked by risk, with reasons.

    Renewals and MRR at stake come from :func:`cs_analysis.renewals.renewal_calendar`;
    the risk is the health score at ``as_of`` (lowest first; ties: more MRR at stake
    first). Reasons, in plain words: open critical tickets, a departed champion,
    detractor answers in the last year, a usage drop, then the lowest-scoring measures.

    Parameters
    ----------
    ws : Workspace
    model : HealthModel, str, Path or mapping, optional
    horizon_days : int
    as_of : date or str, optional
    scores : HealthScores, optional
        Scores already computed at ``as_of`` (e.g. by a dashboard).
    calendar : pandas.DataFrame, optional
        :func:`~cs_analysis.renewals.renewal_calendar` at ``as_of`` for this horizon,
        already computed (a dashboard re-ranking on a slider move passes both and the
        engine is not asked again).

    Returns
    -------
    RenewalRisk
    """
    from cs_analysis.renewals import renewal_calendar

    model = load_model(model)
    horizon_days = check_int("horizon_days", horizon_days, minimum=0, error=HealthError)
    as_of = resolve_as_of(ws, as_of) if scores is None or as_of is not None else scores.as_of
    if scores is None:
        scores = health_scores(ws, model, as_of=as_of)
    elif scores.as_of != as_of:
        raise HealthError(f"the scores are at {scores.as_of}, not at {as_of}")
    cal = calendar if calendar is not None else renewal_calendar(
        ws, horizon_days, as_of=as_of, critical=model.critical_priorities)
    cols = ["rank", "account_id", "account_name", "segment", "csm_owner", "renewal_date",
            "days_to_renewal", "mrr_at_stake", "account_mrr", "score", "band", "reasons",
            "open_critical_tickets"]
    if cal.empty:
        return RenewalRisk(pd.DataFrame({c: [] for c in cols}), scores, horizon_days,
                           notes=scores.notes)
    sc = scores.accounts.drop(columns=["account_name", "segment", "csm_owner",
                                       "open_critical_tickets"], errors="ignore")
    j = cal.merge(sc, on="account_id", how="left")
    j = j.sort_values(["score", "mrr_at_stake", "account_id"],
                      ascending=[True, False, True], na_position="last").reset_index(drop=True)
    j["reasons"] = reasons(j, model)
    j["rank"] = np.arange(1, len(j) + 1)
    return RenewalRisk(j[cols], scores, horizon_days, notes=scores.notes)


# ======================================================================================
# One account over time
# ======================================================================================
def account_history(ws, model, account_id: str, dates: Sequence) -> pd.DataFrame:
    """One account's measures, points and score at several dates (its health over time).

    Measures scored by thresholds are computed on the workspace scoped to the account
    (fast); measures scored by percentile bands, and breadth (whose denominator is the
    features anyone used in the window), need the whole book at each date, so they are
    computed on ``ws`` as a whole and the account is ranked among the accounts
    paying then: the account's score equals its row of :func:`health_scores` at each
    date.

    Parameters
    ----------
    ws : Workspace
    model : HealthModel, str, Path or mapping, optional
    account_id : str
    dates : list of dates
        Dates to score at (each uses only data dated on or before it).

    Returns
    -------
    pandas.DataFrame
        One row per date the account was paying: ``date`` and the :func:`score` columns.
    """
    model = load_model(model)
    account_id = str(account_id)
    # breadth's denominator (the features used in the window) depends on the book too
    pct = [m.name for m in model.measures if m.percentiles or m.name in _BOOK_MEASURES]
    own = replace(model, measures=tuple(m for m in model.measures if m.name not in pct))
    book = replace(model, measures=tuple(m for m in model.measures if m.name in pct))
    one = ws.where(accounts=[account_id])
    rows = []
    for d in sorted({to_date(x) for x in dates}):
        v = measure_values(one, own, as_of=d).frame if own.measures else None
        if v is None or v.empty:
            continue
        if book.measures:
            b = measure_values(ws, book, as_of=d).frame[["account_id", *[
                n for n in pct]]] if pct else None
            if b is not None:
                frame = b.merge(v.drop(columns=[c for c in pct if c in v]), on="account_id",
                                how="left")
            else:
                frame = v
        else:
            frame = v
        sc = score(frame, model)
        sc = sc[sc["account_id"] == account_id]
        rows.append(sc.assign(date=pd.Timestamp(d)))
    if not rows:
        return pd.DataFrame(columns=["date", "account_id", "score", "band"])
    out = pd.concat(rows, ignore_index=True)
    return out[["date", *[c for c in out.columns if c != "date"]]]
