"""Surveys and the voice of the customer: scores, comparisons, drivers, themes, voices.

Public API (pure functions of a workspace; each returns tidy pandas frames with the
counts behind every rate):

- :func:`responses` -- the scoped survey responses, one per respondent per survey wave
  (filtered and deduplicated in the engine), with account and stakeholder columns.
- :func:`nps`, :func:`csat`, :func:`ces` -- the scores with their counts and a confidence
  interval (analytic by default, bootstrap on request), overall, by group, by period.
- :func:`compare` -- differences between groups (segment, role, touchpoint, business vs
  technical stakeholders) or between periods, with tests and a multiple-comparison
  correction; small groups are flagged, never hidden.
- :func:`drivers` -- which driver ratings (``attr_*``) relate to likelihood to recommend.
- :func:`load_themes`, :func:`tag_comments`, :func:`themes` -- verbatim comments tagged
  with the themes of an editable dictionary (``data/themes.yml``; English and Japanese).
- :func:`curated_voices` -- the comments of the customers CS chose to listen to.
- :func:`survey_outcomes` -- churn and expansion after the survey, by NPS category.
- :func:`request_priorities` -- feature requests weighed by accounts and MRR.
- :func:`to_markdown`, :func:`export` -- Markdown / CSV for the Product team.
- :class:`VoiceOfCustomerDashboard` -- the dashboard ``dashboards/voice_of_customer.ipynb``.

Definitions (metrics.md, "Surveys")
-----------------------------------
- **wave**: the survey's period, by default the calendar quarter of ``responded_at``
  (``wave="month"`` or ``"year"`` to change it). When ``respondent_id`` is present (a
  respondent is an account's person: ``account_id`` and ``respondent_id``), only
  each respondent's latest response per survey and wave counts (latest ``responded_at``;
  on a tie, the larger ``response_id``). Responses without a ``respondent_id`` all count.
- **NPS** = (promoters - detractors) / responses x 100 on the 0-10 scale (promoter 9-10,
  passive 7-8, detractor 0-6). 95% interval by the delta method:
  ``NPS +- 1.96 x 100 x sqrt((p_P + p_D - (p_P - p_D)**2) / n)``.
- **CSAT** = share of responses in the top-2 box of the scale (4-5 on the default 1-5
  scale); Wilson interval.
- **CES** = mean score (1-7 by default, higher = easier); t interval.

Only responses dated on or before the as-of date count (``as_of``, default the
workspace's). Scales of CSAT and CES come from the workspace's ``survey_scales`` setting
(:func:`cs_analysis.contract.survey_scale`); NPS is always 0-10.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from cs_analysis.contract import DEFAULT_SURVEY_SCALES, survey_scale
from cs_analysis.retention import mrr_at
from cs_analysis.workspace import Workspace, WorkspaceError, _to_date

__all__ = [
    "CATEGORIES",
    "RESPONSE_COLUMNS",
    "DEFAULT_THEMES",
    "SurveyError",
    "SurveyOutcomes",
    "holm",
    "Theme",
    "ThemeDictionary",
    "ThemeDictionaryError",
    "ThemeResult",
    "ces",
    "compare",
    "csat",
    "curated_voices",
    "drivers",
    "export",
    "load_themes",
    "normalize_text",
    "nps",
    "request_priorities",
    "responses",
    "survey_outcomes",
    "tag_comments",
    "themes",
    "to_markdown",
]

#: Calendar grains a wave or a reporting period can have.
PERIODS = ("month", "quarter", "year")
#: Response categories, best first: NPS surveys, then every other survey with a scale
#: (top-2 box / middle / bottom-2 box).
CATEGORIES = {"nps": ("promoter", "passive", "detractor"),
              "other": ("positive", "neutral", "negative")}
#: Groups (and compared groups) with fewer responses than this are flagged.
SMALL_SAMPLE = 30
#: The default theme dictionary, committed with the project.
DEFAULT_THEMES = Path(__file__).resolve().parent.parent / "data" / "themes.yml"
#: Label of comments that match no theme.
NO_THEME = "(no theme)"
#: Label of a group whose value is missing.
MISSING = "(missing)"
#: ``accounts`` columns carried onto every response when present.
_ACCOUNT_COLUMNS = ("account_name", "segment", "plan", "region", "industry", "csm_owner",
                    "touch_model")
#: Columns of ``survey_responses`` every survey analysis needs.
RESPONSE_COLUMNS = ("response_id", "account_id", "survey", "score", "responded_at")
_OPTIONAL = ("respondent_id", "respondent_role", "touchpoint", "comment")
_CI = {"nps": ("delta", "bootstrap", "account_bootstrap"),
       "csat": ("wilson", "bootstrap", "account_bootstrap"),
       "ces": ("t", "bootstrap", "account_bootstrap")}


class SurveyError(ValueError):
    """A bad parameter or bad survey data, with what was given and what was expected."""


# == small helpers ===========================================================================
def _check_choice(name: str, value, allowed: Sequence) -> Any:
    if value not in allowed:
        raise SurveyError(f"{name}={value!r} is not supported; expected one of "
                          f"{', '.join(repr(a) for a in allowed)}")
    return value


def _check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        a = float("nan")
    if not 0 < a < 1:
        raise SurveyError(f"alpha={alpha!r} must be a number between 0 and 1 "
                          "(0.05 gives 95% intervals)")
    return a


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SurveyError(f"{name}={value!r} must be a whole number >= {minimum}")
    return int(value)


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def _resolve_as_of(ws, as_of) -> dt.date:
    return ws.as_of if as_of is None else _to_date(as_of)


def _ts(d: dt.date):
    return ibis.timestamp(dt.datetime(d.year, d.month, d.day))


def _period_number(ts: pd.Series, grain: str) -> pd.Series:
    """Period number of timestamps (month: ``y*12+m-1``, quarter: ``y*4+q-1``, year: y)."""
    ts = pd.to_datetime(ts)
    if grain == "month":
        return (ts.dt.year * 12 + ts.dt.month - 1).astype("int64")
    if grain == "quarter":
        return (ts.dt.year * 4 + ts.dt.quarter - 1).astype("int64")
    return ts.dt.year.astype("int64")


def _period_expr(col, grain: str):
    if grain == "month":
        return (col.year() * 12 + col.month() - 1).cast("int64")
    if grain == "quarter":
        return (col.year() * 4 + col.quarter() - 1).cast("int64")
    return col.year().cast("int64")


def period_label(number: int, grain: str) -> str:
    """Text of a period number: ``2024-03`` (month), ``2024Q1`` (quarter), ``2024`` (year)."""
    number = int(number)
    if grain == "month":
        return f"{number // 12}-{number % 12 + 1:02d}"
    if grain == "quarter":
        return f"{number // 4}Q{number % 4 + 1}"
    return str(number)


def period_bounds(number: int, grain: str) -> tuple[dt.date, dt.date]:
    """First and last day of a period number."""
    number = int(number)
    if grain == "month":
        y, m, months = number // 12, number % 12 + 1, 1
    elif grain == "quarter":
        y, m, months = number // 4, 3 * (number % 4) + 1, 3
    else:
        y, m, months = number, 1, 12
    first = dt.date(y, m, 1)
    nm = m - 1 + months
    nxt = dt.date(y + nm // 12, nm % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def _shown(value) -> str:
    """A value as text for messages (numpy scalars shown like Python's)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def normalize_text(text: str) -> str:
    """Text for matching: NFKC + casefold, so full-/half-width forms and case do not matter."""
    return unicodedata.normalize("NFKC", text).casefold()


def _category(score: pd.Series, survey: pd.Series, scales: Mapping) -> pd.Series:
    """promoter/passive/detractor for NPS; positive/neutral/negative (top/bottom-2 box)."""
    out = pd.Series(pd.NA, index=score.index, dtype="str")
    for name in pd.unique(survey):
        m = (survey == name).to_numpy()
        s = score[m]
        if name == "nps":
            cat = np.where(s >= 9, "promoter", np.where(s <= 6, "detractor", "passive"))
        else:
            rng = survey_scale(name, scales)
            if rng is None:
                continue
            lo, hi = rng
            cat = np.where(s >= hi - 1, "positive", np.where(s <= lo + 1, "negative",
                                                               "neutral"))
        out[m] = cat
    return out


def _groups_text(frame: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Group columns as text with missing values labelled :data:`MISSING`."""
    out = frame.copy()
    for c in cols:
        if c in ("period",):
            continue
        out[c] = out[c].astype("str").where(out[c].notna(), MISSING)
    return out


# == responses ================================================================================
def responses(ws, survey: str | Sequence[str] | None = None, *, wave: str = "quarter",
              dedup: bool = True, as_of=None, since=None, until=None,
              roles: Sequence[str] | None = None,
              touchpoints: Sequence[str] | None = None,
              comments_only: bool = False) -> pd.DataFrame:
    """The scoped survey responses, one per respondent per survey wave, as a pandas frame.

    Filtering, deduplication and joins run in the engine (Ibis window functions on the
    workspace's backend); only the scoped responses come back.

    Deduplication (metrics.md): a **wave** is the calendar ``wave`` (default quarter) of
    ``responded_at``. When ``respondent_id`` is present, only each respondent's latest
    response per survey and wave counts: the one with the latest ``responded_at``, and on
    a tie the larger ``response_id`` (a respondent is an ``account_id`` and
    ``respondent_id`` pair, as stakeholders are). Responses with no ``respondent_id``
    all count (there is no way to tell who answered twice).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    survey : str or list of str, optional
        Keep these surveys (``nps``, ``csat``, ``ces`` or another name); default all.
    wave : {"quarter", "month", "year"}
        The survey wave used for deduplication.
    dedup : bool
        Apply the one-response-per-respondent-per-wave rule (False keeps every response,
        e.g. to read every comment).
    as_of : date or str, optional
        Only responses on or before this date (default the workspace's as-of date).
    since, until : date or str, optional
        Only responses on or after ``since`` / on or before ``until``.
    roles : list of str, optional
        Keep these ``respondent_role`` values.
    touchpoints : list of str, optional
        Keep these ``touchpoint`` values.
    comments_only : bool
        Keep only responses with a non-blank comment (applied after deduplication).

    Returns
    -------
    pandas.DataFrame
        One row per response: the ``survey_responses`` columns present (``attr_*``
        included), ``wave`` (period number) and ``wave_label`` (``2024Q1``), ``category``
        (``promoter`` / ``passive`` / ``detractor`` for NPS; ``positive`` / ``neutral`` /
        ``negative`` = top-2 box / middle / bottom-2 box for other surveys with a known
        scale), the ``accounts`` columns present among ``account_name``, ``segment``,
        ``plan``, ``region``, ``industry``, ``csm_owner``, ``touch_model``, and, when the
        respondent is a known stakeholder, ``domain`` (``business`` / ``technical``),
        ``respondent_name`` and ``respondent_title``. Sorted by ``responded_at``.
        ``attrs`` holds ``wave``, ``deduplicated``, ``as_of`` and ``scales``.

    Raises
    ------
    WorkspaceError
        The workspace has no ``survey_responses`` table, or lacks a column a filter needs.
    SurveyError
        A requested survey has no response, or a score is outside its survey's scale.
    """
    _check_choice("wave", wave, PERIODS)
    as_of = _resolve_as_of(ws, as_of)
    need = list(RESPONSE_COLUMNS)
    if roles is not None:
        need.append("respondent_role")
    if touchpoints is not None:
        need.append("touchpoint")
    if comments_only:
        need.append("comment")
    t = ws.table("survey_responses", columns=need)
    surveys = _as_list(survey)
    if surveys:
        present = set(t.select("survey").distinct().to_pandas()["survey"].dropna())
        missing = [s for s in surveys if s not in present]
        if missing:
            raise SurveyError(
                f"no responses to survey {', '.join(map(repr, missing))} in this workspace; "
                f"surveys present: {', '.join(sorted(present)) or 'none'}")
        t = t.filter(t.survey.isin(surveys))
    t = t.filter(t.responded_at < _ts(as_of + dt.timedelta(days=1)))
    if since is not None:
        t = t.filter(t.responded_at >= _ts(_to_date(since)))
    if until is not None:
        t = t.filter(t.responded_at < _ts(_to_date(until) + dt.timedelta(days=1)))
    if roles is not None:
        t = t.filter(t.respondent_role.isin([str(r) for r in roles]))
    if touchpoints is not None:
        t = t.filter(t.touchpoint.isin([str(x) for x in touchpoints]))
    t = t.mutate(wave=_period_expr(t.responded_at, wave))
    has_respondent = "respondent_id" in t.columns
    if dedup and has_respondent:
        # a respondent is a person of one account (person ids are unique per account)
        w = ibis.window(group_by=[t.survey, t.wave, t.account_id, t.respondent_id],
                        order_by=[ibis.desc(t.responded_at), ibis.desc(t.response_id)])
        t = t.mutate(_rn=ibis.row_number().over(w))
        t = t.filter((t._rn == 0) | t.respondent_id.isnull()).drop("_rn")
    if comments_only:
        t = t.filter(t.comment.notnull() & (t.comment.strip().length() > 0))
    acc_cols = [c for c in _ACCOUNT_COLUMNS if ws.has("accounts", c)]
    acc = ws.table("accounts").select("account_id", *acc_cols)
    t = t.join(acc, "account_id")
    if has_respondent and ws.has("stakeholders", "account_id", "person_id"):
        sh = ws.table("stakeholders")
        extra = {k: v for k, v in (("domain", "domain"), ("respondent_name", "name"),
                                   ("respondent_title", "title")) if v in sh.columns}
        if extra:
            people = sh.group_by(["account_id", "person_id"]).agg(
                **{k: sh[v].cast("string").max() for k, v in extra.items()})
            t = t.left_join(people, [t.account_id == people.account_id,
                                     t.respondent_id == people.person_id])
            t = t.drop(*[c for c in t.columns if c.endswith("_right")], "person_id")
    t = t.order_by([t.responded_at, t.response_id])
    df = t.to_pandas()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype("str")
    scales = ws.survey_scales
    _check_scores(df, scales)
    df["wave_label"] = [period_label(w, wave) for w in df["wave"]]
    df["category"] = _category(df["score"], df["survey"], scales)
    df = df.reset_index(drop=True)
    df.attrs = {"wave": wave, "deduplicated": bool(dedup and has_respondent),
                "as_of": as_of, "scales": dict(scales)}
    return df


def _check_scores(df: pd.DataFrame, scales: Mapping, survey_names=None) -> None:
    """Scores outside their survey's scale (and non-integer NPS) are errors, never coerced."""
    if df.empty:
        return
    surveys = df["survey"] if "survey" in df.columns else pd.Series(survey_names, index=df.index)
    for name in pd.unique(surveys):
        rng = survey_scale(str(name), scales)
        m = (surveys == name).to_numpy()
        s = df.loc[m, "score"]
        bad = s.isna()
        if rng is not None:
            bad |= (s < rng[0]) | (s > rng[1])
        if name == "nps":
            bad |= s != s.round()
        if bad.any():
            i = bad[bad].index[0]
            rid = df.at[i, "response_id"] if "response_id" in df.columns else f"row {i}"
            expected = ("a whole number from 0 to 10" if name == "nps" else
                        f"a score from {rng[0]:g} to {rng[1]:g}" if rng else "a number")
            raise SurveyError(
                f"survey_responses, response {rid}: score={_shown(df.at[i, 'score'])} for survey "
                f"{name!r} is not {expected} ({int(bad.sum())} such response(s))")


# == scores: NPS, CSAT, CES ===================================================================
def _is_workspace(x) -> bool:
    return isinstance(x, Workspace) or (hasattr(x, "table") and hasattr(x, "survey_scales"))


def _metric_scale(metric: str, survey: str, scales: Mapping,
                  scale: tuple | None) -> tuple[float, float] | None:
    """The scale scores are checked against (None: unknown, not checked)."""
    if metric == "nps":
        return DEFAULT_SURVEY_SCALES["nps"]
    if scale is not None:
        try:
            lo, hi = (float(v) for v in scale)
        except (TypeError, ValueError):
            lo = hi = float("nan")
        if not (np.isfinite(lo) and np.isfinite(hi) and hi - lo >= 2):
            raise SurveyError(f"scale={scale!r} must be (low, high) with at least three "
                              "points, e.g. (1, 5)")
        return lo, hi
    rng = survey_scale(survey, scales)
    if rng is None and metric == "csat":
        rng = DEFAULT_SURVEY_SCALES["csat"]
    return rng


def _prepare(source, survey: str, keys: Sequence[str], period: str | None, *, as_of, wave,
             metric: str, scale=None) -> tuple[pd.DataFrame, tuple[float, float]]:
    """Responses of one survey, deduplicated, with a ``period`` column when asked."""
    _check_choice("wave", wave, PERIODS)
    if period is not None:
        _check_choice("period", period, (*PERIODS, "wave"))
        period = wave if period == "wave" else period
    if not isinstance(survey, str) or not survey:
        raise SurveyError(f"survey={survey!r} must be the name of one survey, e.g. 'nps'")
    if _is_workspace(source):
        df = responses(source, survey, wave=wave, as_of=as_of)
        scales = source.survey_scales
    elif isinstance(source, pd.DataFrame):
        df, scales = _prepare_frame(source, survey, wave, as_of, period)
    else:
        raise SurveyError(f"expected a Workspace or a DataFrame of survey responses, got "
                          f"{type(source).__name__}")
    rng = _metric_scale(metric, survey, scales, scale)
    bad = df["score"].isna()
    if rng is not None:
        bad |= (df["score"] < rng[0]) | (df["score"] > rng[1])
    else:  # a survey without a known scale: the observed range stands in for it
        rng = (float(df["score"].min()), float(df["score"].max())) if len(df) else (0.0, 1.0)
    if metric == "nps":
        bad |= df["score"] != df["score"].round()
    if bad.any():
        i = bad[bad].index[0]
        rid = df.at[i, "response_id"] if "response_id" in df.columns else f"row {i}"
        raise SurveyError(f"survey {survey!r}, response {rid}: "
                          f"score={_shown(df.at[i, 'score'])} is outside the "
                          f"{metric.upper()} scale {rng[0]:g}-{rng[1]:g}")
    missing = [k for k in keys if k not in df.columns]
    if missing:
        avail = [c for c in df.columns if c not in ("score", "comment", "response_id")
                 and not c.startswith("attr_")]
        raise SurveyError(f"by={missing[0]!r}: the responses have no such column; "
                          f"available: {', '.join(avail)}")
    if period is not None:
        df = df.assign(period=_period_number(df["responded_at"], period))
    df.attrs["period_grain"] = period
    return df, rng


def _prepare_frame(frame: pd.DataFrame, survey: str, wave: str, as_of, period):
    need = ["score"] + (["responded_at"] if period is not None else [])
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise SurveyError(f"the responses frame has no column {missing[0]!r}; "
                          f"it has: {', '.join(map(str, frame.columns))}")
    df = frame
    if "survey" in df.columns:
        if len(df) and not (df["survey"] == survey).any():
            present = sorted(df["survey"].dropna().astype(str).unique())
            raise SurveyError(f"no responses to survey {survey!r} in the frame; surveys "
                              f"present: {', '.join(present) or 'none'}")
        df = df[df["survey"] == survey]
    if as_of is not None and "responded_at" in df.columns:
        df = df[pd.to_datetime(df["responded_at"]) < pd.Timestamp(_to_date(as_of))
                + pd.Timedelta(days=1)]
    done = frame.attrs.get("deduplicated") and frame.attrs.get("wave") == wave
    if not done and {"respondent_id", "responded_at"} <= set(df.columns):
        df = _dedup_frame(df, wave)
    return df.copy(), dict(frame.attrs.get("scales") or {})


def _dedup_frame(df: pd.DataFrame, wave: str) -> pd.DataFrame:
    """The dedup rule of :func:`responses`, in pandas, for frames given directly."""
    w = _period_number(df["responded_at"], wave)
    tie = df["response_id"] if "response_id" in df.columns else pd.Series(
        np.arange(len(df)), index=df.index)
    survey = df["survey"] if "survey" in df.columns else pd.Series("", index=df.index)
    account = (df["account_id"] if "account_id" in df.columns
               else pd.Series("", index=df.index))
    work = pd.DataFrame({"s": survey.to_numpy(), "w": w.to_numpy(),
                         "a": account.astype("str").to_numpy(),
                         "r": df["respondent_id"].to_numpy(),
                         "t": pd.to_datetime(df["responded_at"]).to_numpy(),
                         "id": tie.to_numpy()}, index=df.index)
    work = work.sort_values(["t", "id"])
    known = work["r"].notna()
    keep = work[known].drop_duplicates(["s", "w", "a", "r"], keep="last").index
    keep = keep.union(work[~known].index)
    return df.loc[df.index.isin(keep)]


def _values(metric: str, score: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    """Per-response value whose mean is the score (NPS: +100 / 0 / -100; CSAT: top-2 box)."""
    if metric == "nps":
        return np.where(score >= 9, 100.0, np.where(score <= 6, -100.0, 0.0))
    if metric == "csat":
        return (score >= rng[1] - 1).astype(float)
    return score.astype(float)


def _bootstrap(values: np.ndarray, accounts: np.ndarray | None, kind: str, n_boot: int,
               alpha: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """Percentile bootstrap of the mean of ``values``: (lower, upper, standard error).

    ``bootstrap`` resamples responses (exactly, through multinomial counts of the distinct
    values); ``account_bootstrap`` resamples accounts with all their responses, which
    allows for respondents of one account answering alike.
    """
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    if kind == "bootstrap":
        uniq, counts = np.unique(values, return_counts=True)
        draws = rng.multinomial(n, counts / n, size=n_boot)
        stats = draws @ uniq / n
    else:
        _, inv = np.unique(accounts, return_inverse=True)
        sums = np.bincount(inv, weights=values)
        cnt = np.bincount(inv).astype(float)
        k = len(sums)
        parts = []
        for start in range(0, n_boot, 500):
            w = rng.multinomial(k, np.full(k, 1.0 / k), size=min(500, n_boot - start))
            parts.append((w @ sums) / (w @ cnt))
        stats = np.concatenate(parts)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    se = float(stats.std(ddof=1)) if n_boot > 1 else float("nan")
    return float(lo), float(hi), se


def _score(source, metric: str, by, period, *, survey: str, ci: str, alpha: float,
           n_boot: int, seed: int, small_sample: int, as_of, wave: str,
           scale=None) -> pd.DataFrame:
    _check_choice("ci", ci, _CI[metric])
    alpha = _check_alpha(alpha)
    n_boot = _check_positive_int("n_boot", n_boot, 100)
    small_sample = _check_positive_int("small_sample", small_sample, 1)
    by_cols = _as_list(by)
    if "period" in by_cols:
        raise SurveyError("by='period' is not a column: use period='quarter' (or 'month', "
                          "'year', 'wave') to split by period")
    df, rng = _prepare(source, survey, by_cols, period, as_of=as_of, wave=wave,
                       metric=metric, scale=scale)
    grain = df.attrs.get("period_grain")
    keys = by_cols + (["period"] if grain else [])
    df = _groups_text(df, by_cols)
    score = df["score"].to_numpy(dtype=float)
    df = df.assign(_v=_values(metric, score, rng),
                   _acc=df["account_id"] if "account_id" in df.columns else np.arange(len(df)))
    groups = df.groupby(keys, sort=True, dropna=False) if keys else [((), df)]
    z = _z(alpha)
    gen = np.random.default_rng(seed)
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key, strict=True))
        s = g["score"].to_numpy(dtype=float)
        n = len(s)
        row.update(survey=survey, responses=n, accounts=int(g["_acc"].nunique()))
        row.update(_metric_row(metric, s, g["_v"].to_numpy(), rng, n, z, alpha))
        if ci in ("bootstrap", "account_bootstrap") and n > 0:
            lo, hi, se = _bootstrap(g["_v"].to_numpy(), g["_acc"].to_numpy(), ci, n_boot,
                                    alpha, gen)
            row.update(lower=lo, upper=hi, se=se)
        row["ci_method"] = ci
        row["small_sample"] = n < small_sample
        rows.append(row)
    out = pd.DataFrame(rows, columns=_score_columns(metric, keys))
    if not keys and out.empty:
        out = pd.DataFrame([{"survey": survey, "responses": 0, "accounts": 0,
                             "ci_method": ci, "small_sample": True}],
                           columns=_score_columns(metric, keys))
    if grain:
        out.insert(out.columns.get_loc("period") + 1, "period_label",
                   [period_label(p, grain) for p in out["period"]])
        out.insert(out.columns.get_loc("period") + 2, "period_start",
                   pd.to_datetime([period_bounds(p, grain)[0] for p in out["period"]]))
    for c in ("responses", "accounts"):
        out[c] = out[c].astype("int64")
    out["small_sample"] = out["small_sample"].astype(bool)
    out.attrs = {"metric": metric, "survey": survey, "by": by_cols, "period": grain,
                 "wave": wave, "alpha": alpha, "scale": rng}
    return out


def _score_columns(metric: str, keys: list[str]) -> list[str]:
    body = {
        "nps": ["promoters", "passives", "detractors", "pct_promoters", "pct_passives",
                "pct_detractors", "nps"],
        "csat": ["top2_box", "csat", "mean_score"],
        "ces": ["ces", "sd", "top2_box", "pct_top2_box"],
    }[metric]
    return [*keys, "survey", "responses", "accounts", *body, "se", "lower", "upper",
            "ci_method", "small_sample"]


def _metric_row(metric: str, s: np.ndarray, v: np.ndarray, rng, n: int, z: float,
                alpha: float) -> dict:
    nan = float("nan")
    if metric == "nps":
        p_p = float((s >= 9).sum())
        p_d = float((s <= 6).sum())
        row = {"promoters": int(p_p), "passives": int(n - p_p - p_d), "detractors": int(p_d)}
        if n == 0:
            return {**row, "pct_promoters": nan, "pct_passives": nan, "pct_detractors": nan,
                    "nps": nan, "se": nan, "lower": nan, "upper": nan}
        pp, pd_ = p_p / n, p_d / n
        score = 100 * (pp - pd_)
        se = 100 * math.sqrt(max(pp + pd_ - (pp - pd_) ** 2, 0.0) / n)
        return {**row, "pct_promoters": pp, "pct_passives": 1 - pp - pd_, "pct_detractors": pd_,
                "nps": score, "se": se, "lower": max(score - z * se, -100.0),
                "upper": min(score + z * se, 100.0)}
    if metric == "csat":
        top = int(v.sum())
        if n == 0:
            return {"top2_box": 0, "csat": nan, "mean_score": nan, "se": nan, "lower": nan,
                    "upper": nan}
        from statsmodels.stats.proportion import proportion_confint

        lo, hi = proportion_confint(top, n, alpha=alpha, method="wilson")
        p = top / n
        return {"top2_box": top, "csat": p, "mean_score": float(s.mean()),
                "se": math.sqrt(p * (1 - p) / n), "lower": float(lo), "upper": float(hi)}
    top = int((s >= rng[1] - 1).sum())
    if n == 0:
        return {"ces": nan, "sd": nan, "top2_box": 0, "pct_top2_box": nan, "se": nan,
                "lower": nan, "upper": nan}
    mean = float(s.mean())
    if n < 2:
        return {"ces": mean, "sd": nan, "top2_box": top, "pct_top2_box": top / n, "se": nan,
                "lower": nan, "upper": nan}
    from scipy.stats import t as student_t

    sd = float(s.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(student_t.ppf(1 - alpha / 2, n - 1)) * se
    return {"ces": mean, "sd": sd, "top2_box": top, "pct_top2_box": top / n, "se": se,
            "lower": mean - half, "upper": mean + half}


_SCORE_PARAMS = """
    Parameters
    ----------
    ws_or_frame : Workspace or pandas.DataFrame
        A (possibly scoped) workspace, or a frame of responses (e.g. from
        :func:`responses`) with at least ``score`` (``survey`` to pick the survey;
        ``respondent_id`` and ``responded_at`` to deduplicate; ``account_id`` for the
        account counts and the account bootstrap).
    by : str or list of str, optional
        Response or account columns to split by (``segment``, ``respondent_role``,
        ``touchpoint``, ``domain``, ``category``, ...); missing values form a
        ``"(missing)"`` group.
    period : {"month", "quarter", "year", "wave"}, optional
        Also split by the calendar period of ``responded_at``.
    survey : str
        Which survey's responses to score.
    ci : str
        Interval method: the analytic default, ``"bootstrap"`` (percentile bootstrap over
        responses) or ``"account_bootstrap"`` (resampling accounts with all their
        responses, for when respondents of one account answer alike).
    alpha : float
        1 - confidence level.
    n_boot : int
        Bootstrap replicates (at least 100).
    seed : int
        Seed of the bootstrap's random numbers.
    small_sample : int
        Groups with fewer responses are flagged ``small_sample=True`` (kept, not hidden).
    as_of : date or str, optional
        Only responses on or before it (default the workspace's as-of date).
    wave : {"quarter", "month", "year"}
        The survey wave of the one-response-per-respondent rule.
"""


def nps(ws_or_frame, by=None, period=None, *, survey: str = "nps", ci: str = "delta",
        alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
        small_sample: int = SMALL_SAMPLE, as_of=None, wave: str = "quarter") -> pd.DataFrame:
    """Net Promoter Score with its counts and a confidence interval.

    Definition (metrics.md): **NPS** = (promoters - detractors) / responses x 100 on the
    0-10 scale (promoter 9-10, passive 7-8, detractor 0-6). One response per respondent
    per survey wave counts when ``respondent_id`` is present (the latest; see
    :func:`responses`). The default 95% interval is the delta method,
    ``NPS +- z x 100 x sqrt((p_P + p_D - (p_P - p_D)**2) / n)``, clipped to -100..100;
    ``se`` is the unclipped standard error.
    {params}

    Returns
    -------
    pandas.DataFrame
        One row per group (and period): the ``by`` columns, ``period`` /
        ``period_label`` / ``period_start`` when split by period, ``survey``,
        ``responses``, ``accounts``, ``promoters``, ``passives``, ``detractors``, their
        shares ``pct_*`` (0-1), ``nps`` (-100..100), ``se``, ``lower``, ``upper``,
        ``ci_method``, ``small_sample``. Without ``by`` or ``period``, one row (NaN score
        when there is no response).
    """
    return _score(ws_or_frame, "nps", by, period, survey=survey, ci=ci, alpha=alpha,
                  n_boot=n_boot, seed=seed, small_sample=small_sample, as_of=as_of, wave=wave)


def csat(ws_or_frame, by=None, period=None, *, survey: str = "csat", ci: str = "wilson",
         alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
         small_sample: int = SMALL_SAMPLE, as_of=None, wave: str = "quarter",
         scale: tuple | None = None) -> pd.DataFrame:
    """Customer satisfaction: the share of responses in the top-2 box, with a Wilson interval.

    Definition (metrics.md): **CSAT** = share of responses in the top-2 box of the scale
    (the two highest points: 4-5 on the default 1-5 scale); Wilson score interval
    (statsmodels ``proportion_confint(method="wilson")``). One response per respondent
    per survey wave counts when ``respondent_id`` is present (the latest).
    {params}    scale : (low, high), optional
        The survey's scale; default the workspace's ``survey_scales`` setting, else 1-5.

    Returns
    -------
    pandas.DataFrame
        One row per group (and period): the ``by`` columns, period columns, ``survey``,
        ``responses``, ``accounts``, ``top2_box`` (count), ``csat`` (share, 0-1),
        ``mean_score``, ``se`` (binomial), ``lower``, ``upper``, ``ci_method``,
        ``small_sample``.
    """
    return _score(ws_or_frame, "csat", by, period, survey=survey, ci=ci, alpha=alpha,
                  n_boot=n_boot, seed=seed, small_sample=small_sample, as_of=as_of,
                  wave=wave, scale=scale)


def ces(ws_or_frame, by=None, period=None, *, survey: str = "ces", ci: str = "t",
        alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
        small_sample: int = SMALL_SAMPLE, as_of=None, wave: str = "quarter",
        scale: tuple | None = None) -> pd.DataFrame:
    """Customer effort score: the mean score with a t interval.

    Definition (metrics.md): **CES** = mean score (1-7 by default; in this workspace
    higher = easier); interval ``mean +- t(n-1, 1 - alpha/2) x sd / sqrt(n)``. Also the
    top-2 box (the two highest points) as a count and share. One response per respondent
    per survey wave counts when ``respondent_id`` is present (the latest).
    {params}    scale : (low, high), optional
        The survey's scale; default the workspace's ``survey_scales`` setting, else 1-7.

    Returns
    -------
    pandas.DataFrame
        One row per group (and period): the ``by`` columns, period columns, ``survey``,
        ``responses``, ``accounts``, ``ces`` (mean), ``sd``, ``top2_box``,
        ``pct_top2_box``, ``se``, ``lower``, ``upper``, ``ci_method``, ``small_sample``.
    """
    return _score(ws_or_frame, "ces", by, period, survey=survey, ci=ci, alpha=alpha,
                  n_boot=n_boot, seed=seed, small_sample=small_sample, as_of=as_of,
                  wave=wave, scale=scale)


for _f in (nps, csat, ces):
    _f.__doc__ = _f.__doc__.replace("{params}", _SCORE_PARAMS)
del _f

#: Score function per metric name.
SCORES = {"nps": nps, "csat": csat, "ces": ces}


def metric_of(survey: str) -> str:
    """The metric a survey is scored with: its own name for nps/csat/ces, else ``ces`` (mean).

    A survey whose name starts with ``nps`` is scored as NPS, one starting with ``csat``
    as CSAT; any other survey gets the mean score (CES-style).
    """
    for m in ("nps", "csat", "ces"):
        if survey == m or survey.startswith(m + "_"):
            return m
    return "ces"


# == comparisons ===============================================================================
_CORRECTIONS = ("holm", "bonferroni", "fdr_bh", "none")
_PAIRS = ("all", "reference", "consecutive")


def compare(ws_or_frame, by: str, survey: str = "nps", *, period: str | None = None,
            within: str | None = None, pairs: str | None = None, reference=None,
            correction: str = "holm", ci: str = "analytic", alpha: float = 0.05,
            small_sample: int = SMALL_SAMPLE, n_boot: int = 2000, seed: int = 0,
            as_of=None, wave: str = "quarter") -> pd.DataFrame:
    """Differences in a survey score between groups or periods, tested and corrected.

    The score is NPS, CSAT or CES as defined in :func:`nps`, :func:`csat`, :func:`ces`
    (one response per respondent per wave, the latest). Each comparison is
    ``score_a - score_b`` with a two-sided test and an interval:

    - **NPS**: z test on the delta-method variances,
      ``se = sqrt(se_a**2 + se_b**2)`` with ``se**2 = 100**2 (p_P + p_D - (p_P - p_D)**2)/n``;
      interval ``difference +- z se``.
    - **CSAT**: two-proportion z test with the pooled proportion,
      ``z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b))``; Newcombe's hybrid score
      interval for the difference (statsmodels ``confint_proportions_2indep``).
    - **CES**: Welch's t test (unequal variances, Welch-Satterthwaite degrees of
      freedom) and its t interval.
    - ``ci="account_bootstrap"``: for any score, each group's standard error comes from
      resampling accounts (respondents of one account answer alike, which the analytic
      tests ignore); z test and normal interval on those standard errors.

    The p-values of all comparisons returned form one family, adjusted with
    ``correction`` (Holm by default, :func:`holm`, which controls the chance of any
    false difference; other methods through statsmodels ``multipletests``). Groups below
    ``small_sample`` responses are compared and flagged (``small_sample``, ``note``),
    never hidden: "no significant difference" between small groups means "cannot tell",
    not "the same".

    Parameters
    ----------
    ws_or_frame : Workspace or pandas.DataFrame
        As in :func:`nps`.
    by : str
        The column whose groups are compared (``segment``, ``respondent_role``,
        ``touchpoint``, ``domain`` for business vs technical stakeholders, ...), or
        ``"period"`` to compare calendar periods (``period`` sets the grain).
    survey : str
        The survey; scored as NPS, CSAT or CES by its name (``nps*``, ``csat*``, else
        the mean score as CES).
    period : {"month", "quarter", "year", "wave"}, optional
        With ``by="period"``: the grain of the compared periods (default ``"quarter"``).
        With another ``by``: compare the groups within each period.
    within : str, optional
        Also compare within each value of this column (e.g. periods within segments).
    pairs : {"all", "reference", "consecutive"}, optional
        Which pairs: every pair (default for groups), each group against ``reference``,
        or each group against the previous one in order (default for periods: the change
        from one period to the next).
    reference : str, optional
        The reference group for ``pairs="reference"`` (default: the largest group).
    correction : {"holm", "bonferroni", "fdr_bh", "none"}
        Multiple-comparison correction over all comparisons returned.
    ci : {"analytic", "account_bootstrap"}
        Standard errors from the formulas above, or from the account bootstrap.
    alpha : float
        Significance level and 1 - confidence level of the intervals.
    small_sample : int
        Comparisons involving a group with fewer responses are flagged.
    n_boot, seed : int
        Bootstrap replicates and seed (``ci="account_bootstrap"``).
    as_of : date or str, optional
        Only responses on or before it (default the workspace's as-of date).
    wave : {"quarter", "month", "year"}
        The survey wave of the one-response-per-respondent rule.

    Returns
    -------
    pandas.DataFrame
        One row per comparison: the ``within`` / period columns when comparing within
        them, ``by`` (the compared column), ``group_a``, ``group_b``, ``responses_a``,
        ``responses_b``, ``score_a``, ``score_b``, ``difference`` (a - b: NPS points,
        CSAT share, CES points), ``se``, ``lower``, ``upper``, ``statistic``,
        ``p_value``, ``p_adjusted``, ``significant`` (adjusted p < alpha),
        ``small_sample``, ``test``, ``note``. Empty when there are fewer than two groups.
    """
    _check_choice("correction", correction, _CORRECTIONS)
    _check_choice("ci", ci, ("analytic", "account_bootstrap"))
    alpha = _check_alpha(alpha)
    if not isinstance(by, str) or not by:
        raise SurveyError(f"by={by!r} must be one column name, or 'period'")
    metric = metric_of(survey)
    by_period = by == "period"
    if by_period:
        period = period or "quarter"
    pairs = pairs or ("consecutive" if by_period else "all")
    _check_choice("pairs", pairs, _PAIRS)
    if reference is not None and pairs != "reference":
        raise SurveyError("reference= is only used with pairs='reference'")
    outer = _as_list(within) + (["period"] if period and not by_period else [])
    cols = _as_list(within) + ([] if by_period else [by])
    score_ci = {"nps": "delta", "csat": "wilson", "ces": "t"}[metric] if ci == "analytic" \
        else "account_bootstrap"
    stats = _score(ws_or_frame, metric, cols or None, period, survey=survey, ci=score_ci,
                   alpha=alpha, n_boot=n_boot, seed=seed, small_sample=small_sample,
                   as_of=as_of, wave=wave)
    key = "period" if by_period else by
    rows = []
    groups = stats.groupby(outer, sort=True) if outer else [((), stats)]
    for okey, g in groups:
        okey = okey if isinstance(okey, tuple) else (okey,)
        g = g.sort_values(key).reset_index(drop=True)
        if len(g) < 2:
            continue
        labels = (g["period_label"] if by_period else g[key]).astype(str).tolist()
        for i, j in _pair_indices(g, key, labels, pairs, reference):
            a, b = g.iloc[i], g.iloc[j]
            row = dict(zip(outer, okey, strict=True))
            if "period" in outer:
                row["period_label"] = a["period_label"]
            row.update(by=by, group_a=labels[i], group_b=labels[j],
                       responses_a=int(a["responses"]), responses_b=int(b["responses"]))
            row.update(_difference(metric, ci, a, b, alpha))
            small = min(a["responses"], b["responses"]) < small_sample
            row["small_sample"] = bool(small)
            row["note"] = (f"fewer than {small_sample} responses in "
                           + " and ".join(lab for lab, n in ((labels[i], a["responses"]),
                                                              (labels[j], b["responses"]))
                                          if n < small_sample)
                           + ": cannot tell") if small else ""
            rows.append(row)
    columns = [*outer, *(["period_label"] if "period" in outer else []), "by", "group_a",
               "group_b", "responses_a", "responses_b", "score_a", "score_b", "difference",
               "se", "lower", "upper", "statistic", "p_value", "p_adjusted", "significant",
               "small_sample", "test", "note"]
    out = pd.DataFrame(rows, columns=columns)
    if not out.empty:
        p = out["p_value"].to_numpy(dtype=float)
        ok = np.isfinite(p)
        adj = np.full(len(p), np.nan)
        if ok.any():
            if correction == "none":
                adj[ok] = p[ok]
            elif correction == "holm":
                adj[ok] = holm(p[ok])
            else:
                from statsmodels.stats.multitest import multipletests

                adj[ok] = multipletests(p[ok], alpha=alpha, method=correction)[1]
        out["p_adjusted"] = adj
        out["significant"] = np.where(np.isfinite(adj), adj < alpha, False).astype(bool)
    out["small_sample"] = out["small_sample"].astype(bool)
    out.attrs = {"metric": metric, "survey": survey, "by": by, "correction": correction,
                 "comparisons": len(out), "alpha": alpha, "ci": ci}
    return out


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the order given.

    Sorted ascending, the i-th of m p-values (i from 0) becomes ``(m - i) x p``, made
    non-decreasing and capped at 1. Controls the family-wise error rate for any
    dependence between the tests. Same values as statsmodels'
    ``multipletests(method="holm")``, which also runs a full garbage collection on every
    call (0.1-0.25 s in a dashboard kernel).
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(steps, 1.0)
    return out


def _pair_indices(g: pd.DataFrame, key: str, labels: list[str], pairs: str, reference):
    n = len(g)
    if pairs == "all":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    if pairs == "consecutive":
        return [(i, i - 1) for i in range(1, n)]
    if reference is None:
        ref = int(np.argmax(g["responses"].to_numpy()))
    else:
        if str(reference) not in labels:
            raise SurveyError(f"reference={reference!r} is not a group of {key}; groups: "
                              f"{', '.join(labels)}")
        ref = labels.index(str(reference))
    return [(i, ref) for i in range(n) if i != ref]


def _difference(metric: str, ci: str, a, b, alpha: float) -> dict:
    from scipy.stats import norm
    from scipy.stats import t as student_t

    col = metric
    sa, sb = float(a[col]), float(b[col])
    diff = sa - sb
    nan = float("nan")
    out = {"score_a": sa, "score_b": sb, "difference": diff}
    z = _z(alpha)
    if ci == "account_bootstrap" or metric == "nps":
        se = math.sqrt(float(a["se"]) ** 2 + float(b["se"]) ** 2)
        stat = diff / se if se > 0 else nan
        p = 2 * norm.sf(abs(stat)) if se > 0 else nan
        test = ("z test, account-bootstrap standard errors" if ci == "account_bootstrap"
                else "z test, delta-method variance")
        return {**out, "se": se, "lower": diff - z * se, "upper": diff + z * se,
                "statistic": stat, "p_value": p, "test": test}
    na, nb = int(a["responses"]), int(b["responses"])
    if metric == "csat":
        from statsmodels.stats.proportion import confint_proportions_2indep

        xa, xb = int(a["top2_box"]), int(b["top2_box"])
        pooled = (xa + xb) / (na + nb)
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
        stat = diff / se0 if se0 > 0 else nan
        p = 2 * norm.sf(abs(stat)) if se0 > 0 else nan
        lo, hi = confint_proportions_2indep(xa, na, xb, nb, method="newcomb", compare="diff",
                                            alpha=alpha)
        se = math.sqrt(sa * (1 - sa) / na + sb * (1 - sb) / nb)
        return {**out, "se": se, "lower": float(lo), "upper": float(hi), "statistic": stat,
                "p_value": p, "test": "two-proportion z test; Newcombe interval"}
    va = float(a["sd"]) ** 2 / na if na > 1 else nan
    vb = float(b["sd"]) ** 2 / nb if nb > 1 else nan
    se = math.sqrt(va + vb)
    if not np.isfinite(se) or se == 0:
        return {**out, "se": se, "lower": nan, "upper": nan, "statistic": nan,
                "p_value": nan, "test": "Welch t test"}
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    stat = diff / se
    p = 2 * student_t.sf(abs(stat), df)
    half = float(student_t.ppf(1 - alpha / 2, df)) * se
    return {**out, "se": se, "lower": diff - half, "upper": diff + half, "statistic": stat,
            "p_value": float(p), "test": "Welch t test"}


# == drivers ===================================================================================
_DRIVER_MODELS = ("ols", "ordered")
_ROBUST = ("cluster", "HC3", "none")


def drivers(ws_or_frame, target: str = "nps", attributes: str | Sequence[str] = "attr_*", *,
            model: str = "ols", robust: str = "cluster", alpha: float = 0.05, as_of=None,
            wave: str = "quarter") -> pd.DataFrame:
    """Which driver ratings (``attr_*``) go with a higher likelihood-to-recommend score.

    Fits the target survey's score (for NPS, the 0-10 likelihood to recommend) on the
    driver ratings of the same responses (one per respondent per wave, the latest; only
    responses with every chosen rating), with statsmodels:

    - ``model="ols"``: linear regression; ``effect`` = points of the score per rating
      point, holding the other ratings fixed.
    - ``model="ordered"``: ordered logit (``OrderedModel``, ``distr="logit"``), which
      respects the score's bounded, ordinal nature (answers pile up at 10); ``effect`` =
      odds ratio of a higher score per rating point.

    Standard errors are robust: clustered by account by default (respondents of one
    account answer alike), or HC3 heteroskedasticity-robust.

    What it can say: which ratings move together with the score once the others are
    taken into account, how strongly (``effect`` with its interval; ``std_effect`` per
    standard deviation of the rating, comparable across ratings), and how sure we are
    (``p_value``). A driver ranking to guide where to look first.

    What it cannot say: that raising a rating would raise the score (ratings and score
    come from one questionnaire: a happy customer rates everything higher, the "halo");
    how ratings that move together split their shared effect (with correlated ratings the
    individual effects are unstable and their intervals wide: check ``correlation``, the
    rating's simple Spearman correlation with the score); anything about customers who
    did not answer. The linear model treats 0-10 as evenly spaced and is damped by the
    ceiling at 10 (an effect of 0.8 may be "really" 1.0); the ordered model does not
    have that problem but its odds ratios are harder to explain.

    Parameters
    ----------
    ws_or_frame : Workspace or pandas.DataFrame
        A workspace, or a frame of responses with ``score`` and the rating columns.
    target : str
        The survey whose score is explained (default ``"nps"``).
    attributes : str or list of str
        Rating columns: a glob pattern over the response columns (default ``"attr_*"``)
        or a list of names.
    model : {"ols", "ordered"}
        Linear regression or ordered logit.
    robust : {"cluster", "HC3", "none"}
        Standard errors clustered by account, heteroskedasticity-robust, or classical.
    alpha : float
        1 - confidence level of the intervals.
    as_of : date or str, optional
        Only responses on or before it (default the workspace's as-of date).
    wave : {"quarter", "month", "year"}
        The survey wave of the one-response-per-respondent rule.

    Returns
    -------
    pandas.DataFrame
        One row per rating, strongest standardized effect first: ``attribute``,
        ``effect``, ``lower``, ``upper`` (on the effect's scale), ``coef`` and ``se``
        (on the model's scale: score points or log-odds), ``p_value``, ``std_effect``,
        ``mean_rating``, ``correlation``, ``responses``, ``accounts``, ``model``,
        ``effect_unit``. ``attrs`` holds ``r_squared`` (OLS), ``responses``,
        ``dropped`` (responses lacking a rating), ``robust`` and ``correlated`` (pairs of
        ratings correlated above 0.8).
    """
    import statsmodels.api as sm

    _check_choice("model", model, _DRIVER_MODELS)
    _check_choice("robust", robust, _ROBUST)
    alpha = _check_alpha(alpha)
    df, _ = _prepare(ws_or_frame, target, [], None, as_of=as_of, wave=wave,
                     metric=metric_of(target))
    available = [c for c in df.columns if str(c).startswith("attr_")]
    if isinstance(attributes, str):
        attrs = [c for c in df.columns if fnmatch.fnmatchcase(str(c), attributes)
                 and c not in ("score", "survey")]
        if not attrs:
            raise SurveyError(f"attributes={attributes!r} matches no column of the {target!r} "
                              f"responses; rating columns: {', '.join(available) or 'none'}")
    else:
        attrs = list(attributes)
        if not attrs:
            raise SurveyError("attributes=[] names no rating column")
        missing = [a for a in attrs if a not in df.columns]
        if missing:
            raise SurveyError(f"attributes: no column {missing[0]!r} in the {target!r} "
                              f"responses; rating columns: {', '.join(available) or 'none'}")
    data = df[["score", *attrs] + (["account_id"] if "account_id" in df.columns else [])]
    for a in attrs:
        if not pd.api.types.is_numeric_dtype(data[a]):
            raise SurveyError(f"rating column {a!r} holds non-numbers (e.g. "
                              f"{data[a].dropna().iloc[0]!r}); ratings must be numeric")
    complete = data.dropna(subset=["score", *attrs])
    n = len(complete)
    if n < len(attrs) + 10:
        raise SurveyError(f"only {n} {target!r} responses have every rating "
                          f"({', '.join(attrs)}); at least {len(attrs) + 10} are needed")
    flat = [a for a in attrs if complete[a].nunique() < 2]
    if flat:
        raise SurveyError(f"rating {flat[0]!r} has the same value in every response; "
                          "it cannot explain anything: leave it out")
    y = complete["score"].astype(float)
    x = complete[attrs].astype(float)
    groups = (pd.factorize(complete["account_id"])[0] if "account_id" in complete.columns
              else np.arange(n))
    fit_kw = ({"cov_type": "cluster", "cov_kwds": {"groups": groups}} if robust == "cluster"
              else {"cov_type": "HC3"} if robust == "HC3" else {})
    if model == "ols":
        res = sm.OLS(y, sm.add_constant(x)).fit(**fit_kw)
        coef, se, p = res.params[attrs], res.bse[attrs], res.pvalues[attrs]
        ci = res.conf_int(alpha).loc[attrs]
        effect, lower, upper = coef, ci[0], ci[1]
        std = coef * x.std(ddof=1) / y.std(ddof=1)
        unit = "score points per rating point"
        r2 = float(res.rsquared)
    else:
        from statsmodels.miscmodels.ordinal_model import OrderedModel

        if robust == "HC3":
            fit_kw = {"cov_type": "HC0"}  # HC3 needs a hat matrix; HC0 is the ML sandwich
        om = OrderedModel(y.astype(int), x, distr="logit")
        res = om.fit(method="bfgs", disp=False, maxiter=2000, **fit_kw)
        coef, se, p = res.params[attrs], res.bse[attrs], res.pvalues[attrs]
        ci = res.conf_int(alpha).loc[attrs]
        effect, lower, upper = np.exp(coef), np.exp(ci[0]), np.exp(ci[1])
        std = coef * x.std(ddof=1)
        unit = "odds ratio of a higher score per rating point"
        r2 = float("nan")
    corr = x.corrwith(y, method="spearman")
    out = pd.DataFrame({
        "attribute": attrs, "effect": effect.to_numpy(), "lower": np.asarray(lower),
        "upper": np.asarray(upper), "coef": coef.to_numpy(), "se": se.to_numpy(),
        "p_value": p.to_numpy(), "std_effect": std.to_numpy(),
        "mean_rating": x.mean().to_numpy(), "correlation": corr.to_numpy(),
        "responses": n, "accounts": int(pd.Series(groups).nunique()), "model": model,
        "effect_unit": unit})
    out = out.sort_values("std_effect", ascending=False, kind="stable").reset_index(drop=True)
    cm = x.corr().abs().to_numpy()
    correlated = [(attrs[i], attrs[j]) for i in range(len(attrs))
                  for j in range(i + 1, len(attrs)) if cm[i, j] > 0.8]
    out.attrs = {"target": target, "r_squared": r2, "responses": n,
                 "dropped": int(len(data) - n), "robust": robust, "model": model,
                 "alpha": alpha, "correlated": correlated}
    return out


# == themes ====================================================================================
class ThemeDictionaryError(ValueError):
    """A theme dictionary that cannot be used, with the file, line and what was expected."""


_THEME_KEYS = ("label", "keywords", "patterns")
_TOP_KEYS = ("description", "themes")


@dataclass(frozen=True)
class Theme:
    """One theme of a :class:`ThemeDictionary`.

    Attributes
    ----------
    name : str
        Identifier (``pricing``).
    label : str
        Text shown in charts (default: the name).
    keywords : tuple of str
        Words or phrases; see :class:`ThemeDictionary` for how they match.
    patterns : tuple of str
        Regular expressions searched in the normalized comment.
    """

    name: str
    label: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @property
    def regex(self) -> re.Pattern:
        """One compiled expression matching any keyword or pattern of the theme."""
        parts = [_keyword_regex(k) for k in self.keywords]
        parts += [f"(?:{unicodedata.normalize('NFKC', p)})" for p in self.patterns]
        return re.compile("|".join(parts), re.IGNORECASE)


def _keyword_regex(keyword: str) -> str:
    k = normalize_text(keyword).strip()
    if k[:1].isascii() and k[:1].isalnum():
        return r"(?<![0-9a-z])" + re.escape(k)
    return re.escape(k)


@dataclass(frozen=True)
class ThemeDictionary:
    """Themes with the keywords and patterns that tag a comment with them.

    Matching: the comment and each keyword are normalized (Unicode NFKC, so full-width
    and half-width forms agree, then case folding). A keyword starting with a Latin
    letter or digit must start a word (``report`` matches ``reporting``, ``use`` does
    not match ``because``); any other keyword, e.g. Japanese, matches as a substring
    anywhere, since Japanese text has no spaces between words. Patterns are Python
    regular expressions searched case-insensitively in the normalized comment. A comment
    may get several themes.

    Attributes
    ----------
    themes : tuple of Theme
        In the dictionary's order.
    source : str
        Where it was read from (for messages).
    """

    themes: tuple[Theme, ...]
    source: str = "<dict>"
    _compiled: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        """Theme names in order."""
        return [t.name for t in self.themes]

    @property
    def labels(self) -> dict[str, str]:
        """Theme name to label."""
        return {t.name: t.label for t in self.themes}

    def match(self, texts) -> pd.DataFrame:
        """Boolean frame: one row per text (index kept), one column per theme."""
        s = pd.Series(texts) if not isinstance(texts, pd.Series) else texts
        raw = [x if isinstance(x, str) else "" for x in s]
        uniq, inverse = np.unique(np.asarray(raw, dtype=object), return_inverse=True)
        norm = [normalize_text(x) for x in uniq]  # each distinct text is matched once
        out = {}
        for t in self.themes:
            rx = self._compiled.get(t.name)
            if rx is None:
                rx = self._compiled[t.name] = t.regex
            hit = np.fromiter((bool(rx.search(x)) for x in norm), dtype=bool, count=len(norm))
            out[t.name] = hit[inverse] if len(raw) else np.zeros(0, dtype=bool)
        return pd.DataFrame(out, index=s.index, dtype=bool)


def load_themes(dictionary=None) -> ThemeDictionary:
    """Read and check a theme dictionary.

    The file is YAML with a ``themes:`` mapping; each theme has an optional ``label``, and
    ``keywords`` (list of text) and/or ``patterns`` (list of regular expressions); an
    optional top-level ``description``. See ``data/themes.yml`` for a commented example.

    Parameters
    ----------
    dictionary : None, str, Path, Mapping or ThemeDictionary
        None or ``"themes.yml"``: the project's default dictionary
        (:data:`DEFAULT_THEMES`). A path to a YAML file (a bare file name that does not
        exist where given is looked for in the project's ``data/`` folder). A mapping
        shaped like the file. A :class:`ThemeDictionary` is returned as is.

    Returns
    -------
    ThemeDictionary

    Raises
    ------
    ThemeDictionaryError
        Naming the file, the line and what was expected: a missing file, invalid YAML, a
        theme or key given twice, an unknown key (a typo such as ``keyword:``), a theme
        without keywords or patterns, a keyword that is not text or is empty, an invalid
        regular expression, or a pattern that matches empty text.
    """
    import yaml

    if isinstance(dictionary, ThemeDictionary):
        return dictionary
    if isinstance(dictionary, Mapping):
        text = yaml.safe_dump(dict(dictionary), allow_unicode=True, sort_keys=False)
        return _parse_themes(text, "the theme dictionary given", lines=False)
    if dictionary is not None and not isinstance(dictionary, str | Path):
        raise ThemeDictionaryError(
            f"dictionary={dictionary!r}: expected a path to a YAML file, a mapping or a "
            "ThemeDictionary")
    path = Path(dictionary) if dictionary is not None else DEFAULT_THEMES
    if not path.exists() and path.parent == Path("."):
        candidate = DEFAULT_THEMES.parent / path.name
        if candidate.exists():
            path = candidate
    if not path.exists():
        raise ThemeDictionaryError(
            f"theme dictionary not found: {path} (also looked in {DEFAULT_THEMES.parent}); "
            "copy data/themes.yml and edit it")
    if path.is_dir():
        raise ThemeDictionaryError(f"theme dictionary {path} is a folder, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ThemeDictionaryError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    return _parse_themes(text, str(path), lines=True)


def _parse_themes(text: str, source: str, *, lines: bool) -> ThemeDictionary:
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    def where(node) -> str:
        return f"{source}, line {node.start_mark.line + 1}" if lines else source

    def fail(node, message: str):
        raise ThemeDictionaryError(f"{where(node)}: {message}")

    def text_of(node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            shown = node.value if isinstance(node, ScalarNode) else type(node).__name__
            fail(node, f"{what} must be text, got {shown!r} (put it in quotes)")
        return node.value

    def mapping(node, what: str) -> list:
        if not isinstance(node, MappingNode):
            fail(node, f"{what} must be a mapping (key: value lines)")
        seen: dict[str, Any] = {}
        for k, _ in node.value:
            name = k.value if isinstance(k, ScalarNode) else str(k)
            if name in seen:
                first = f" (first at line {seen[name].start_mark.line + 1})" if lines else ""
                fail(k, f"{what}: {name!r} is given twice{first}")
            seen[name] = k
        return node.value

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark and lines else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ThemeDictionaryError(f"{source}{at}: not valid YAML: {problem}") from None
    if root is None:
        raise ThemeDictionaryError(f"{source}: the file is empty; expected a 'themes:' "
                                   "mapping")
    top = mapping(root, "the file")
    themes_node = None
    for k, v in top:
        key = text_of(k, "a top-level key")
        if key not in _TOP_KEYS:
            fail(k, f"unknown top-level key {key!r}; allowed: {', '.join(_TOP_KEYS)}")
        if key == "themes":
            themes_node = v
    if themes_node is None:
        fail(root, "no 'themes:' key; expected 'themes:' with one entry per theme")
    entries = mapping(themes_node, "'themes'")
    if not entries:
        fail(themes_node, "'themes' is empty; define at least one theme")
    out = []
    for k, v in entries:
        name = text_of(k, "a theme name").strip()
        if not name:
            fail(k, "a theme name is empty")
        if name == NO_THEME:
            fail(k, f"{NO_THEME!r} is reserved for comments that match no theme")
        spec: dict[str, Any] = {"label": name, "keywords": [], "patterns": []}
        for kk, vv in mapping(v, f"theme {name!r}"):
            key = text_of(kk, f"a key of theme {name!r}")
            if key not in _THEME_KEYS:
                fail(kk, f"theme {name!r}: unknown key {key!r}; allowed: "
                         f"{', '.join(_THEME_KEYS)}")
            if key == "label":
                spec["label"] = text_of(vv, f"the label of theme {name!r}")
                continue
            items = [vv] if isinstance(vv, ScalarNode) and vv.tag.endswith(":str") else None
            if items is None:
                if not isinstance(vv, SequenceNode):
                    fail(vv, f"theme {name!r}: {key} must be a list of text")
                items = vv.value
            for item in items:
                value = text_of(item, f"theme {name!r}: each of its {key}")
                if not value.strip():
                    fail(item, f"theme {name!r}: an empty entry in {key} would match "
                               "every comment")
                if key == "patterns":
                    try:
                        rx = re.compile(unicodedata.normalize("NFKC", value), re.IGNORECASE)
                    except re.error as exc:
                        fail(item, f"theme {name!r}: pattern {value!r} is not a valid regular "
                                   f"expression: {exc}")
                    if rx.search(""):
                        fail(item, f"theme {name!r}: pattern {value!r} matches empty text, so "
                                   "it would tag every comment")
                spec[key].append(value)
        if not spec["keywords"] and not spec["patterns"]:
            fail(k, f"theme {name!r} has no keywords and no patterns")
        out.append(Theme(name=name, label=spec["label"], keywords=tuple(spec["keywords"]),
                         patterns=tuple(spec["patterns"])))
    return ThemeDictionary(themes=tuple(out), source=source)


def tag_comments(comments, dictionary=None) -> pd.DataFrame:
    """Tag texts with the themes of a dictionary.

    Parameters
    ----------
    comments : pandas.Series or list of str
        The texts (missing values get no theme). A Series keeps its index.
    dictionary : optional
        What :func:`load_themes` accepts (default: ``data/themes.yml``).

    Returns
    -------
    pandas.DataFrame
        One row per text: ``comment``, ``themes`` (tuple of theme names, in dictionary
        order; empty when none matches), then one boolean column per theme.
    """
    d = load_themes(dictionary)
    s = comments if isinstance(comments, pd.Series) else pd.Series(list(comments), dtype="str")
    flags = d.match(s)
    names = np.asarray(d.names, dtype=object)
    values = flags.to_numpy()
    tags = [tuple(names[row]) for row in values]
    out = pd.DataFrame({"comment": s, "themes": pd.Series(tags, index=s.index, dtype=object)})
    return pd.concat([out, flags], axis=1)


@dataclass(frozen=True)
class ThemeResult:
    """Result of :func:`themes`.

    Attributes
    ----------
    summary : pandas.DataFrame
        Per group (the ``by`` columns) and theme: ``theme``, ``label``, ``mentions``
        (comments with the theme), ``comments`` (comments in the group), ``share`` =
        mentions / comments with its Wilson interval ``lower`` / ``upper``,
        ``small_sample``. A ``"(no theme)"`` row counts comments matching no theme.
    comments : pandas.DataFrame
        One row per comment (the responses' columns) with ``themes`` (comma-separated
        names, ``""`` for none); newest first.
    tagged : pandas.DataFrame
        One row per comment and theme (long form, for custom counts).
    quotes : pandas.DataFrame
        Up to ``quotes`` newest comments per theme (and category, when grouped by it).
    dictionary : ThemeDictionary
        The dictionary used.
    """

    summary: pd.DataFrame
    comments: pd.DataFrame
    tagged: pd.DataFrame
    quotes: pd.DataFrame
    dictionary: ThemeDictionary


def themes(ws_or_frame, dictionary="themes.yml", *, survey: str | Sequence[str] | None = None,
           by: str | Sequence[str] | None = "category", quotes: int = 3,
           small_sample: int = SMALL_SAMPLE, alpha: float = 0.05, dedup: bool = True,
           as_of=None, wave: str = "quarter") -> ThemeResult:
    """Tag verbatim comments with themes; counts, shares and example quotes per group.

    Comments are tagged with :func:`tag_comments` (see :class:`ThemeDictionary` for the
    matching rules: keywords and regular expressions, English words from their start,
    Japanese as substrings). A comment may have several themes, so shares within a group
    can add up to more than 100%. **share** = comments mentioning the theme / comments in
    the group (responses with a non-blank comment), with a Wilson interval. With
    ``dedup`` (default) the responses are one per respondent per survey wave, the latest,
    as for the scores.

    Parameters
    ----------
    ws_or_frame : Workspace or pandas.DataFrame
        A workspace, or a frame of responses (e.g. :func:`responses`) with ``comment``.
    dictionary : optional
        What :func:`load_themes` accepts (default: ``data/themes.yml``).
    survey : str or list of str, optional
        Only these surveys' comments (default: every survey).
    by : str or list of str, optional
        Group columns: ``category`` (promoter / passive / detractor for NPS),
        ``segment``, ``respondent_role``, ... None: all comments together.
    quotes : int
        Example quotes per theme (and category), newest first; 0 for none.
    small_sample : int
        Groups with fewer comments are flagged.
    alpha : float
        1 - confidence level of the intervals.
    dedup : bool
        One response per respondent per wave (False: every comment).
    as_of : date or str, optional
        Only responses on or before it (default the workspace's as-of date).
    wave : {"quarter", "month", "year"}
        The survey wave of the deduplication.

    Returns
    -------
    ThemeResult
        ``summary``, ``comments``, ``tagged``, ``quotes`` and the ``dictionary``.
    """
    from statsmodels.stats.proportion import proportion_confint

    alpha = _check_alpha(alpha)
    quotes = _check_positive_int("quotes", quotes, 0)
    small_sample = _check_positive_int("small_sample", small_sample, 1)
    d = load_themes(dictionary)
    by_cols = _as_list(by)
    if _is_workspace(ws_or_frame):
        df = responses(ws_or_frame, survey, wave=wave, dedup=dedup, as_of=as_of,
                       comments_only=True)
    elif isinstance(ws_or_frame, pd.DataFrame):
        df = ws_or_frame
        if "comment" not in df.columns:
            raise SurveyError("the responses frame has no 'comment' column")
        if survey is not None and "survey" in df.columns:
            df = df[df["survey"].isin(_as_list(survey))]
        if dedup and {"respondent_id", "responded_at"} <= set(df.columns) and not (
                df.attrs.get("deduplicated") and df.attrs.get("wave") == wave):
            df = _dedup_frame(df, wave)
        df = df[df["comment"].notna() & (df["comment"].astype("str").str.strip() != "")]
    else:
        raise SurveyError(f"expected a Workspace or a DataFrame of survey responses, got "
                          f"{type(ws_or_frame).__name__}")
    missing = [c for c in by_cols if c not in df.columns]
    if missing:
        raise SurveyError(f"by={missing[0]!r}: the responses have no such column; available: "
                          f"{', '.join(c for c in df.columns if not c.startswith('attr_'))}")
    df = _groups_text(df.reset_index(drop=True), by_cols)
    tags = tag_comments(df["comment"].astype("str"), d)
    flags = tags[d.names]
    comments = df.assign(themes=[", ".join(t) for t in tags["themes"]])
    if "responded_at" in comments.columns:
        comments = comments.sort_values("responded_at", ascending=False, kind="stable")
    # long form: one row per comment and theme, plus "(no theme)"
    long = flags.assign(**{NO_THEME: ~flags.any(axis=1)}).stack()
    long = long[long].reset_index().rename(columns={"level_0": "_row", "level_1": "theme"})
    tagged = df.loc[long["_row"]].reset_index(drop=True).assign(theme=long["theme"].to_numpy())
    labels = {**d.labels, NO_THEME: NO_THEME}
    order = {name: i for i, name in enumerate([*d.names, NO_THEME])}
    rows = []
    groups = df.groupby(by_cols, sort=True) if by_cols else [((), df)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        n = len(g)
        counts = flags.loc[g.index].sum()
        counts[NO_THEME] = int((~flags.loc[g.index].any(axis=1)).sum())
        for name in [*d.names, NO_THEME]:
            k = int(counts[name])
            lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
            rows.append({**dict(zip(by_cols, key, strict=True)), "theme": name,
                         "label": labels[name], "mentions": k, "comments": n,
                         "share": k / n, "lower": max(float(lo), 0.0),
                         "upper": min(float(hi), 1.0),
                         "small_sample": n < small_sample})
    summary = pd.DataFrame(rows, columns=[*by_cols, "theme", "label", "mentions", "comments",
                                          "share", "lower", "upper", "small_sample"])
    if not summary.empty:
        summary["_o"] = summary["theme"].map(order)
        summary = (summary.sort_values([*by_cols, "mentions", "_o"],
                                       ascending=[True] * len(by_cols) + [False, True])
                   .drop(columns="_o").reset_index(drop=True))
    quote_keys = ["theme"] + (["category"] if "category" in by_cols else [])
    q = tagged[tagged["theme"] != NO_THEME]
    if "responded_at" in q.columns:
        q = q.sort_values("responded_at", ascending=False, kind="stable")
    q = q.groupby(quote_keys, sort=True).head(quotes) if quotes else q.iloc[0:0]
    keep = [c for c in ("theme", "category", "responded_at", "account_id", "account_name",
                        "segment", "respondent_role", "survey", "score", "comment")
            if c in q.columns]
    q = q[keep].sort_values(quote_keys, kind="stable").reset_index(drop=True)
    attrs = {"by": by_cols, "dictionary": d.source, "comments": len(df)}
    summary.attrs = dict(attrs)
    return ThemeResult(summary=summary, comments=comments.reset_index(drop=True),
                       tagged=tagged, quotes=q, dictionary=d)


def _wilson(k, n, alpha: float) -> tuple[float, float]:
    """Wilson score interval of k / n, clipped to [0, 1]; NaN when n = 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return max(float(lo), 0.0), min(float(hi), 1.0)


# == curated voices =============================================================================
def _check_values(name: str, given, present: Iterable, what: str) -> list[str]:
    values = [str(v) for v in _as_list(given)]
    known = {str(p) for p in present if p is not None and not (isinstance(p, float)
                                                                and math.isnan(p))}
    unknown = [v for v in values if v not in known]
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        options = sorted(known)
        listed = ", ".join(options[:12]) + (" ..." if len(options) > 12 else "")
        raise SurveyError(f"{name}: {shown} not found among the {what}; "
                          f"known values: {listed or 'none'}")
    return values


def _check_money(name: str, value) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not math.isfinite(x) or x < 0 or isinstance(value, bool):
        raise SurveyError(f"{name}={value!r} must be a number >= 0 (monthly recurring "
                          "revenue in the workspace currency)")
    return x


def curated_voices(ws, accounts: Sequence[str] | None = None,
                   segment: str | Sequence[str] | None = None,
                   roles: Sequence[str] | None = None, min_mrr: float | None = None, *,
                   survey: str | Sequence[str] | None = None, domain: str | None = None,
                   since=None, as_of=None, dictionary="themes.yml",
                   limit: int | None = None) -> pd.DataFrame:
    """The comments of the customers CS has chosen to listen to, newest first.

    CS curates whose voice matters (strategic accounts, key roles) rather than passing on
    every comment. Every filter given must hold (they combine with AND); a filter left at
    None does not filter. Every comment counts here, including a respondent's earlier
    answer in a wave (the one-per-wave rule is for scores, not for voices). Accounts are
    described by their MRR at the as-of date (metrics.md: the sum of ``mrr`` of the
    subscriptions covering that date; 0 for former customers).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    accounts : list of str, optional
        Strategic account ids.
    segment : str or list of str, optional
        Account segments.
    roles : list of str, optional
        ``respondent_role`` values (e.g. executive sponsor, decision maker).
    min_mrr : float, optional
        Only accounts with at least this MRR at the as-of date.
    survey : str or list of str, optional
        Only these surveys.
    domain : {"business", "technical"}, optional
        Only respondents who are known stakeholders of this domain.
    since : date or str, optional
        Only comments on or after this date.
    as_of : date or str, optional
        Only comments on or before it; MRR at it (default the workspace's as-of date).
    dictionary : optional
        Theme dictionary for the ``themes`` column (:func:`load_themes`); None: no themes.
    limit : int, optional
        At most this many comments (the newest).

    Returns
    -------
    pandas.DataFrame
        ``responded_at``, ``account_id``, ``account_name``, ``segment``, ``mrr``,
        ``respondent_name``, ``respondent_role``, ``respondent_title``, ``domain``,
        ``survey``, ``score``, ``category``, ``touchpoint``, ``themes``, ``comment``
        (those present). ``attrs["kind"] = "voices"`` and ``attrs["filters"]`` describe
        the selection for :func:`to_markdown`. Export with :func:`export`.

    Raises
    ------
    SurveyError
        Unknown account ids, segments or roles (with the known values), a negative
        ``min_mrr``, an unknown ``domain``.
    """
    as_of = _resolve_as_of(ws, as_of)
    min_mrr = _check_money("min_mrr", min_mrr)
    if limit is not None:
        limit = _check_positive_int("limit", limit, 1)
    if domain is not None:
        _check_choice("domain", domain, ("business", "technical"))
    acc = ws.table("accounts")
    filters: list[str] = []
    where: dict[str, Any] = {}
    if accounts is not None:
        ids = acc.select("account_id").to_pandas()["account_id"]
        where["accounts"] = _check_values("accounts", accounts, ids,
                                          "account ids of this workspace (in scope)")
        filters.append(f"{len(where['accounts'])} chosen accounts")
    if segment is not None:
        acc = ws.table("accounts", columns=["segment"])
        segs = acc.select("segment").distinct().to_pandas()["segment"]
        where["segment"] = _check_values("segment", segment, segs, "segments")
        filters.append("segment " + ", ".join(where["segment"]))
    scoped = ws.where(**where) if where else ws
    if roles is not None:
        sr = ws.table("survey_responses", columns=["respondent_role"])
        present = sr.select("respondent_role").distinct().to_pandas()["respondent_role"]
        roles = _check_values("roles", roles, present, "respondent roles")
        filters.append("roles " + ", ".join(roles))
    df = responses(scoped, survey, dedup=False, as_of=as_of, since=since, roles=roles,
                   comments_only=True)
    if domain is not None:
        if "domain" not in df.columns:
            raise WorkspaceError("domain= needs stakeholders with a 'domain' column and "
                                 "survey_responses with a 'respondent_id' column")
        df = df[df["domain"] == domain]
        filters.append(f"{domain} stakeholders")
    mrr = mrr_at(scoped, as_of)
    df = df.merge(mrr, on="account_id", how="left")
    df["mrr"] = df["mrr"].fillna(0.0).astype(float)
    if min_mrr is not None:
        df = df[df["mrr"] >= min_mrr]
        filters.append(f"MRR ≥ {min_mrr:,.0f} {ws.currency}")
    if survey is not None:
        filters.append("survey " + ", ".join(_as_list(survey)))
    if since is not None:
        filters.append(f"since {_to_date(since).isoformat()}")
    if dictionary is not None:
        tags = tag_comments(df["comment"].astype("str"), dictionary)
        df = df.assign(themes=[", ".join(t) for t in tags["themes"]])
    df = df.sort_values(["responded_at", "response_id"], ascending=False, kind="stable")
    if limit is not None:
        df = df.head(limit)
    cols = [c for c in ("responded_at", "account_id", "account_name", "segment", "mrr",
                        "respondent_name", "respondent_role", "respondent_title", "domain",
                        "survey", "score", "category", "touchpoint", "themes", "comment")
            if c in df.columns]
    out = df[cols].reset_index(drop=True)
    out.attrs = {"kind": "voices", "filters": filters, "as_of": as_of,
                 "currency": ws.currency}
    return out


# == export ======================================================================================
def _md_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp | dt.datetime):
        value = value.date().isoformat()  # a day is precise enough for a meeting document
    elif isinstance(value, float):
        value = f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else \
            f"{value:,.0f}"
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text.replace("|", "\\|")


#: Columns of :func:`request_priorities` output shown by :func:`to_markdown`.
_REQUEST_MD_COLUMNS = ("rank", "request", "theme", "accounts", "mrr", "requests", "people",
                       "detractor_accounts", "at_risk_accounts", "former_customers",
                       "latest_status", "last_asked", "segments", "top_accounts")


def to_markdown(frame: pd.DataFrame, title: str | None = None,
                max_rows: int | None = None) -> str:
    """A frame as Markdown for the Product team: quotes for voices, a table otherwise.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`curated_voices` output (rendered as block quotes with who said it, when
        and the score), :func:`request_priorities` output (a table of the columns a
        roadmap meeting needs; the CSV export has them all), or any other frame (a table
        of every column). ``|`` and line breaks in cells are escaped; times show as days.
    title : str, optional
        A ``##`` heading (default from the frame's kind).
    max_rows : int, optional
        At most this many rows (a closing line says how many were left out).

    Returns
    -------
    str
    """
    if max_rows is not None:
        max_rows = _check_positive_int("max_rows", max_rows, 1)
    kind = frame.attrs.get("kind")
    shown = frame if max_rows is None else frame.head(max_rows)
    lines: list[str] = []
    default_title = {"voices": "Curated customer voices",
                     "requests": "Feature requests, weighted"}.get(kind, "Table")
    lines.append(f"## {title or default_title}")
    filters = frame.attrs.get("filters") or []
    as_of = frame.attrs.get("as_of")
    meta = list(filters) + ([f"as of {as_of}"] if as_of else []) + [f"{len(frame):,} rows"]
    lines += ["", "_" + " · ".join(str(m) for m in meta) + "_", ""]
    if kind == "voices":
        currency = frame.attrs.get("currency", "")
        for r in shown.itertuples(index=False):
            row = r._asdict()
            quote = str(row.get("comment", "")).strip().splitlines() or [""]
            lines += ["> " + q.strip() for q in quote]
            who = row.get("respondent_role") or "respondent"
            name = row.get("respondent_name")
            if isinstance(name, str) and name:
                who = f"{who} ({name})"
            acct = row.get("account_name") or row.get("account_id")
            bits = [f"**{_md_cell(acct)}**"]
            details = [str(row[c]) for c in ("segment",) if isinstance(row.get(c), str)]
            if row.get("mrr") is not None and not pd.isna(row.get("mrr")):
                details.append(f"MRR {row['mrr']:,.0f} {currency}".strip())
            if details:
                bits.append("(" + ", ".join(details) + ")")
            score = row.get("score")
            survey = str(row.get("survey", "")).upper()
            cat = row.get("category")
            when = row.get("responded_at")
            tail = []
            if score is not None and not pd.isna(score):
                tail.append(f"{survey} {score:g}" + (f", {cat}" if isinstance(cat, str) else ""))
            if when is not None and not pd.isna(when):
                tail.append(pd.Timestamp(when).date().isoformat())
            if isinstance(row.get("themes"), str) and row["themes"]:
                tail.append("themes: " + row["themes"])
            lines += [">", f"> — {_md_cell(who)}, {' '.join(bits)}"
                      + (" · " + " · ".join(_md_cell(t) for t in tail) if tail else ""), ""]
    else:
        cols = list(shown.columns)
        if kind == "requests":  # the meeting's columns; the CSV export keeps them all
            cols = [c for c in _REQUEST_MD_COLUMNS if c in cols]
            shown = shown[cols]
        lines.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
        lines.append("|" + "|".join("---:" if pd.api.types.is_numeric_dtype(shown[c])
                                    and not pd.api.types.is_bool_dtype(shown[c]) else "---"
                                    for c in cols) + "|")
        for values in shown.itertuples(index=False, name=None):
            lines.append("| " + " | ".join(_md_cell(v) for v in values) + " |")
        lines.append("")
    if len(shown) < len(frame):
        lines.append(f"_… and {len(frame) - len(shown):,} more rows in the CSV export._")
    return "\n".join(lines).rstrip() + "\n"


def export(frame: pd.DataFrame, path, title: str | None = None) -> Path:
    """Write a frame for the Product team: ``.csv`` (UTF-8 with BOM, Excel-safe) or ``.md``.

    Parameters
    ----------
    frame : pandas.DataFrame
        E.g. :func:`curated_voices` or :func:`request_priorities` output.
    path : str or Path
        Target file; the suffix picks the format.
    title : str, optional
        Heading of the Markdown file (see :func:`to_markdown`).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".md"):
        raise SurveyError(f"cannot export to {path.name!r}: use a .csv or .md file name")
    if suffix == ".csv":
        frame.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    else:
        path.write_text(to_markdown(frame, title), encoding="utf-8")
    return path


# == what the scores predict =====================================================================
@dataclass(frozen=True)
class SurveyOutcomes:
    """Result of :func:`survey_outcomes`.

    Attributes
    ----------
    rates : pandas.DataFrame
        One row per category (best first): ``category``, ``observations`` (account-waves
        with a complete window), ``accounts``, ``churned``, ``churn_rate`` with
        ``churn_lower`` / ``churn_upper``, ``expanded``, ``expansion_rate`` with
        ``expansion_lower`` / ``expansion_upper``, ``contracted``, ``contraction_rate``,
        ``mrr_start``, ``mrr_end``, ``nrr`` (= mrr_end / mrr_start), ``design_effect``,
        ``small_sample``.
    hazard_ratios : pandas.DataFrame
        Cox model of churn after the survey: ``covariate``, ``level``, ``reference``,
        ``is_reference``, ``hazard_ratio``, ``lower``, ``upper``, ``p_value``,
        ``accounts``, ``events`` (the layout of
        :func:`cs_analysis.retention.churn_drivers`, so
        :func:`cs_analysis.charts.hazard_ratios` draws it).
    observations : pandas.DataFrame
        One row per account and wave: ``account_id``, ``wave``, ``wave_label``,
        ``responded_at`` (the account's last response in the wave), ``responses``,
        ``mean_score``, ``category``, ``churn_date``, ``window_end``, ``complete``
        (window within the data), ``churned``, ``mrr_start``, ``mrr_end``,
        ``expanded``, ``contracted``, and the ``adjust`` columns.
    """

    rates: pd.DataFrame
    hazard_ratios: pd.DataFrame
    observations: pd.DataFrame


def survey_outcomes(ws, survey: str = "nps", horizon_days: int = 365, *,
                    adjust: Sequence[str] | str | None = ("segment",),
                    alpha: float = 0.05, small_sample: int = SMALL_SAMPLE, as_of=None,
                    wave: str = "quarter") -> SurveyOutcomes:
    """Churn and expansion after the survey for promoters vs passives vs detractors.

    The unit is an **account in a survey wave**: its responses that wave (one per
    respondent, the latest) are averaged and the mean rounded to a whole point (x.5 up)
    gives the account's category that wave (NPS: promoter 9-10, passive 7-8, detractor
    0-6; other surveys: top-2 box / middle / bottom-2 box). Its time ``t`` is its last
    response in the wave. Only accounts that are customers at ``t`` count (the churn date
    of :func:`cs_analysis.retention.account_lifetimes` is after ``t``).

    Rates look at the window ``(t, t + horizon_days]`` and use only windows that end on
    or before the as-of date (no guessing about the future):

    - **churned**: the account's churn date (metrics.md: the ``end_date`` after which no
      subscription covers any later day) falls in the window;
    - **expanded** / **contracted**: MRR at the window's end is above / below, but above
      0, the MRR at ``t`` (metrics.md: the sum of ``mrr`` of the subscriptions covering
      that date).

    An account answers in several waves, so observations of one account are not
    independent: each interval is a Wilson interval on the effective sample size
    ``n / design_effect``, with the design effect from the account-clustered variance
    of the rate (1 when every account appears once).

    The hazard ratios come from a Cox model (statsmodels ``PHReg``, Efron ties) of time
    to churn on the account's age scale, with the category as a time-varying covariate:
    each account-wave contributes the time from ``t`` to its next wave, its churn or the
    as-of date (entry at ``t``), so every wave counts, including the recent ones.
    Reference: promoters (or top-2 box); ``adjust`` adds account columns as strata-like
    covariates (segment by default).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    survey : str
        The survey whose categories are followed (default ``"nps"``).
    horizon_days : int
        Window length for the rates.
    adjust : str or list of str, optional
        ``accounts`` columns added to the Cox model (absent columns are skipped).
    alpha : float
        1 - confidence level.
    small_sample : int
        Categories with fewer observations are flagged.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    wave : {"quarter", "month", "year"}
        The survey wave.

    Returns
    -------
    SurveyOutcomes
        ``rates``, ``hazard_ratios``, ``observations``.
    """
    from cs_analysis.retention import account_lifetimes

    alpha = _check_alpha(alpha)
    horizon_days = _check_positive_int("horizon_days", horizon_days, 1)
    small_sample = _check_positive_int("small_sample", small_sample, 1)
    as_of = _resolve_as_of(ws, as_of)
    adjust_cols = [c for c in _as_list(adjust) if ws.has("accounts", c)]
    df = responses(ws, survey, wave=wave, as_of=as_of)
    aw, cats = _account_waves(df, survey, ws.survey_scales)
    aw["wave_label"] = [period_label(w, wave) for w in aw["wave"]]
    lt = account_lifetimes(ws, as_of=as_of, by=adjust_cols or None)
    aw = aw.merge(lt, on="account_id", how="inner")
    alive = aw["churn_date"].isna() | (aw["churn_date"] > aw["responded_at"])
    aw = aw[alive & (aw["signup_date"] <= aw["responded_at"])].copy()
    t0 = aw["responded_at"].dt.normalize()
    aw["window_end"] = t0 + pd.Timedelta(days=horizon_days)
    aw["complete"] = aw["window_end"] <= pd.Timestamp(as_of)
    aw["churned"] = aw["churn_date"].notna() & (aw["churn_date"] <= aw["window_end"])
    obs = aw[aw["complete"]]
    starts = mrr_at(ws, pd.DataFrame({"account_id": obs["account_id"],
                                      "date": t0[obs.index]}))["mrr"]
    ends = mrr_at(ws, pd.DataFrame({"account_id": obs["account_id"],
                                    "date": obs["window_end"]}))["mrr"]
    aw["mrr_start"] = starts.reindex(aw.index)
    aw["mrr_end"] = ends.reindex(aw.index)
    aw["expanded"] = aw["complete"] & ~aw["churned"] & (aw["mrr_end"] > aw["mrr_start"])
    aw["contracted"] = (aw["complete"] & ~aw["churned"] & (aw["mrr_end"] > 0)
                        & (aw["mrr_end"] < aw["mrr_start"]))
    rates = _outcome_rates(aw[aw["complete"]], cats, alpha, small_sample)
    hr = _outcome_hazards(aw, cats, adjust_cols, as_of, alpha)
    cols = ["account_id", "wave", "wave_label", "responded_at", "responses", "mean_score",
            "category", "churn_date", "window_end", "complete", "churned", "mrr_start",
            "mrr_end", "expanded", "contracted", *adjust_cols]
    observations = aw[cols].sort_values(["account_id", "wave"]).reset_index(drop=True)
    attrs = {"survey": survey, "horizon_days": horizon_days, "as_of": as_of,
             "adjust": adjust_cols, "alpha": alpha}
    rates.attrs = dict(attrs)
    hr.attrs = {**hr.attrs, **attrs}
    return SurveyOutcomes(rates=rates, hazard_ratios=hr, observations=observations)


def _account_waves(df: pd.DataFrame, survey: str, scales: Mapping):
    """Per account and wave: last response time, responses, mean score and category.

    The category is that of the mean score rounded to a whole point (x.5 up).
    """
    metric = metric_of(survey)
    scale = (DEFAULT_SURVEY_SCALES["nps"] if metric == "nps" else survey_scale(survey, scales))
    if scale is None:
        raise SurveyError(f"survey {survey!r} has no known scale: set it in the workspace's "
                          "survey_scales setting to classify its answers")
    cats = CATEGORIES["nps" if metric == "nps" else "other"]
    aw = (df.groupby(["account_id", "wave"], as_index=False)
          .agg(responded_at=("responded_at", "max"), responses=("score", "size"),
               mean_score=("score", "mean")))
    rounded = np.floor(aw["mean_score"].to_numpy() + 0.5)
    if metric == "nps":
        aw["category"] = np.where(rounded >= 9, cats[0], np.where(rounded <= 6, cats[2],
                                                                  cats[1]))
    else:
        aw["category"] = np.where(rounded >= scale[1] - 1, cats[0],
                                  np.where(rounded <= scale[0] + 1, cats[2], cats[1]))
    return aw, cats


def _clustered_wilson(y: np.ndarray, clusters: np.ndarray, alpha: float):
    """Rate, Wilson interval on the effective sample size, and the design effect."""
    n = len(y)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    p = float(y.mean())
    _, inv = np.unique(clusters, return_inverse=True)
    k = int(inv.max()) + 1
    deff = 1.0
    if k < n and 0 < p < 1 and k > 1:
        resid = np.bincount(inv, weights=y - p)
        var = k / (k - 1) * float((resid ** 2).sum()) / n ** 2
        deff = max(var / (p * (1 - p) / n), 1.0)
    n_eff = n / deff
    lo, hi = _wilson(p * n_eff, n_eff, alpha)
    return p, lo, hi, deff


def _outcome_rates(obs: pd.DataFrame, cats, alpha: float, small_sample: int) -> pd.DataFrame:
    rows = []
    for cat in cats:
        g = obs[obs["category"] == cat]
        acc = g["account_id"].to_numpy()
        churn, clo, chi, deff = _clustered_wilson(g["churned"].to_numpy(dtype=float), acc,
                                                  alpha)
        exp_, elo, ehi, _ = _clustered_wilson(g["expanded"].to_numpy(dtype=float), acc, alpha)
        n = len(g)
        start, end = float(g["mrr_start"].sum()), float(g["mrr_end"].sum())
        rows.append({"category": cat, "observations": n, "accounts": int(g["account_id"]
                                                                           .nunique()),
                     "churned": int(g["churned"].sum()), "churn_rate": churn,
                     "churn_lower": clo, "churn_upper": chi,
                     "expanded": int(g["expanded"].sum()), "expansion_rate": exp_,
                     "expansion_lower": elo, "expansion_upper": ehi,
                     "contracted": int(g["contracted"].sum()),
                     "contraction_rate": g["contracted"].mean() if n else float("nan"),
                     "mrr_start": start, "mrr_end": end,
                     "nrr": end / start if start > 0 else float("nan"),
                     "design_effect": deff, "small_sample": n < small_sample})
    return pd.DataFrame(rows)


def _outcome_hazards(aw: pd.DataFrame, cats, adjust_cols: list[str], as_of: dt.date,
                     alpha: float) -> pd.DataFrame:
    import statsmodels.formula.api as smf

    columns = ["covariate", "level", "reference", "is_reference", "hazard_ratio", "lower",
               "upper", "p_value", "accounts", "events"]
    d = aw.sort_values(["account_id", "responded_at"]).copy()
    nxt = d.groupby("account_id")["responded_at"].shift(-1)
    end = d["churn_date"].fillna(pd.Timestamp(as_of))
    stop = nxt.where(nxt.notna() & (nxt < end), end)
    d["event"] = (d["churn_date"].notna() & (stop == d["churn_date"])).astype(int)
    signup = pd.to_datetime(d["signup_date"])
    d["entry"] = (d["responded_at"] - signup).dt.total_seconds() / 86400
    d["exit"] = (stop - signup).dt.total_seconds() / 86400
    d = d[d["exit"] > d["entry"]]
    present = [c for c in cats if (d["category"] == c).any()]
    if d.empty or d["event"].sum() == 0 or len(present) < 2:
        return pd.DataFrame(columns=columns)
    ref = cats[0] if cats[0] in present else present[0]
    terms = [f"C(category, Treatment(reference='{ref}'))"]
    keep = []
    for c in adjust_cols:
        d[c] = d[c].astype("str").where(d[c].notna(), MISSING)
        if d[c].nunique() > 1:
            keep.append(c)
            terms.append(f"C({c})")
    z = _z(alpha)
    try:
        res = smf.phreg("exit ~ " + " + ".join(terms), d, status=d["event"].to_numpy(),
                        entry=d["entry"].to_numpy(), ties="efron").fit()
    except (np.linalg.LinAlgError, ValueError) as exc:  # too little data to fit
        out = pd.DataFrame(columns=columns)
        out.attrs["error"] = f"the Cox model could not be fitted: {exc}"
        return out
    names = list(res.model.exog_names)
    params, bse, pvals = (np.asarray(res.params), np.asarray(res.bse),
                          np.asarray(res.pvalues))
    rows = []
    for cov, levels, reference in [("category", present, ref)] + [
            (c, sorted(d[c].unique()), sorted(d[c].unique())[0]) for c in keep]:
        for lev in levels:
            sub = d[d[cov] == lev]
            base = {"covariate": cov, "level": lev, "reference": reference,
                    "accounts": int(sub["account_id"].nunique()),
                    "events": int(sub["event"].sum())}
            if lev == reference:
                rows.append({**base, "is_reference": True, "hazard_ratio": 1.0, "lower": 1.0,
                             "upper": 1.0, "p_value": float("nan")})
                continue
            i = next(k for k, nm in enumerate(names)
                     if nm.startswith(f"C({cov}") and nm.endswith(f"[T.{lev}]"))
            rows.append({**base, "is_reference": False, "hazard_ratio": math.exp(params[i]),
                         "lower": math.exp(params[i] - z * bse[i]),
                         "upper": math.exp(params[i] + z * bse[i]),
                         "p_value": float(pvals[i])})
    return pd.DataFrame(rows, columns=columns)


# == feature requests, weighted ===================================================================
_STATUSES = ("open", "planned", "shipped", "declined")


def _request_key(title: str) -> str:
    return re.sub(r"\s+", " ", normalize_text(title)).strip()


def request_priorities(ws, segments: str | Sequence[str] | None = None,
                       accounts: Sequence[str] | None = None, *, key: str = "title",
                       rank_by: str = "accounts", status: str | Sequence[str] | None = None,
                       since=None, as_of=None, at_risk_rating: int = 2, survey: str = "nps",
                       wave: str = "quarter", limit: int | None = None) -> pd.DataFrame:
    """Feature requests ranked by how many accounts ask and how much MRR they carry.

    The point is to weigh voices, not count them. Requests are grouped by ``key``: the
    title (compared after Unicode NFKC normalization, case folding and collapsing
    spaces, so "Slack notifications" and "slack  notifications" are one request) or the
    ``theme``. Then, per request:

    - **Duplicates across people of one account**: an account weighs once however many
      of its people ask, and however often: ``accounts`` counts distinct accounts and
      ``mrr`` sums each asking account's MRR once (metrics.md: MRR at the as-of date,
      the sum of ``mrr`` of the subscriptions covering it; 0 for former customers).
      ``requests`` (rows) and ``people`` (distinct ``person_id``) show how many asked.
    - **Ranking**: by ``accounts`` then ``mrr`` (``rank_by="accounts"``), or by ``mrr``
      then ``accounts`` (``rank_by="mrr"``), both descending. **Ties**: requests equal on
      both share a rank (the lowest, "1, 2, 2, 4"), and are listed by more detractor
      accounts first, then by title.
    - **Who asks**: ``detractor_accounts`` / ``detractor_mrr``: asking accounts whose
      latest ``survey`` wave before the as-of date made them detractors (their mean
      answer that wave, rounded, is 0-6); ``at_risk_accounts`` / ``at_risk_mrr``: asking
      accounts whose latest CSM rating (``health_inputs.csm_rating`` on or before the
      as-of date) is at most ``at_risk_rating``. Missing tables give NA, not zero.
    - **Status**: counts of request rows per status and the ``latest_status`` (of the
      most recently updated row).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    segments : str or list of str, optional
        Keep requests from accounts in these segments.
    accounts : list of str, optional
        Keep requests from these (strategic) accounts. With ``segments`` too, requests
        from either are kept (the union: e.g. all Enterprise accounts plus five chosen
        Mid-Market ones).
    key : {"title", "theme"}
        What makes two requests the same request.
    rank_by : {"accounts", "mrr"}
        The first ranking criterion.
    status : str or list of str, optional
        Only requests in these statuses (``open``, ``planned``, ``shipped``,
        ``declined``).
    since : date or str, optional
        Only requests created on or after it.
    as_of : date or str, optional
        Only requests created on or before it; MRR, detractors and risk at it.
    at_risk_rating : int
        CSM ratings (1-5) at or below this mark an account at risk.
    survey : str
        The survey whose categories mark detractors.
    wave : {"quarter", "month", "year"}
        The survey wave.
    limit : int, optional
        Only the first ``limit`` rows.

    Returns
    -------
    pandas.DataFrame
        One row per request: ``rank``, ``request`` (the most used title, or the theme),
        ``theme``, ``accounts``, ``mrr``, ``requests``, ``people``,
        ``detractor_accounts``, ``detractor_mrr``, ``at_risk_accounts``, ``at_risk_mrr``,
        ``former_customers``, ``open``, ``planned``, ``shipped``, ``declined``,
        ``latest_status``, ``first_asked``, ``last_asked``, ``segments``, ``sources``,
        ``top_accounts`` (up to three asking accounts by MRR). ``attrs["kind"] =
        "requests"``; export with :func:`export` or :func:`to_markdown`.
    """
    _check_choice("key", key, ("title", "theme"))
    _check_choice("rank_by", rank_by, ("accounts", "mrr"))
    if (isinstance(at_risk_rating, bool) or not isinstance(at_risk_rating, int | np.integer)
            or not 1 <= at_risk_rating <= 5):
        raise SurveyError(f"at_risk_rating={at_risk_rating!r} must be a whole number "
                          "from 1 to 5 (the CSM rating scale)")
    if limit is not None:
        limit = _check_positive_int("limit", limit, 1)
    as_of = _resolve_as_of(ws, as_of)
    need = ["request_id", "account_id", "title", "created_at"] + (["theme"] if key == "theme"
                                                                  else [])
    statuses = [str(x) for x in _as_list(status)]
    if statuses:
        bad = [x for x in statuses if x not in _STATUSES]
        if bad:
            raise SurveyError(f"status={bad[0]!r} is not a request status; expected "
                              f"{', '.join(_STATUSES)}")
        need.append("status")
    fr = ws.table("feature_requests", columns=need)
    fr = fr.filter(fr.created_at < _ts(as_of + dt.timedelta(days=1)))
    if since is not None:
        fr = fr.filter(fr.created_at >= _ts(_to_date(since)))
    if statuses:
        fr = fr.filter(fr.status.isin(statuses))
    filters: list[str] = []
    acc = ws.table("accounts")
    chosen = []
    if segments is not None:
        segs_present = ws.table("accounts", columns=["segment"]).select(
            "segment").distinct().to_pandas()["segment"]
        segs = _check_values("segments", segments, segs_present, "segments")
        chosen.append(acc.segment.isin(segs))
        filters.append("segments " + ", ".join(segs))
    if accounts is not None:
        ids = _check_values("accounts", accounts,
                            acc.select("account_id").to_pandas()["account_id"],
                            "account ids of this workspace (in scope)")
        chosen.append(acc.account_id.isin(ids))
        filters.append(f"{len(ids)} strategic accounts")
    if chosen:
        pred = chosen[0]
        for c in chosen[1:]:
            pred = pred | c
        fr = fr.filter(fr.account_id.isin(acc.filter(pred).account_id))
    if statuses:
        filters.append("status " + ", ".join(statuses))
    df = fr.to_pandas()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype("str")
    info = _account_context(ws, as_of, at_risk_rating, survey, wave)
    df = df.merge(info, on="account_id", how="left")
    df["mrr"] = df["mrr"].fillna(0.0)
    if key == "title":
        df["_key"] = [_request_key(t) for t in df["title"].astype("str")]
    else:
        df["_key"] = df["theme"].astype("str").where(df["theme"].notna(), MISSING)
    rows = [_request_row(k, g, key) for k, g in df.groupby("_key", sort=True)]
    columns = ["rank", "request", "theme", "accounts", "mrr", "requests", "people",
               "detractor_accounts", "detractor_mrr", "at_risk_accounts", "at_risk_mrr",
               "former_customers", "open", "planned", "shipped", "declined",
               "latest_status", "first_asked", "last_asked", "segments", "sources",
               "top_accounts"]
    out = pd.DataFrame(rows, columns=columns[1:])
    first, second = ("accounts", "mrr") if rank_by == "accounts" else ("mrr", "accounts")
    if not out.empty:
        out = out.sort_values([first, second, "detractor_accounts", "request"],
                              ascending=[False, False, False, True], kind="stable",
                              na_position="last")
        pair = list(zip(out[first], out[second], strict=True))
        out.insert(0, "rank", [1 + sum(1 for q in pair if q > p) for p in pair])
    else:
        out.insert(0, "rank", pd.Series([], dtype="int64"))
    for c in ("detractor_accounts", "at_risk_accounts"):
        out[c] = out[c].astype("Int64")
    out = out.reset_index(drop=True)
    if limit is not None:
        out = out.head(limit)
    out.attrs = {"kind": "requests", "filters": filters, "as_of": as_of,
                 "currency": ws.currency, "key": key, "rank_by": rank_by}
    return out


def _account_context(ws, as_of: dt.date, at_risk_rating: int, survey: str,
                     wave: str) -> pd.DataFrame:
    """Per scoped account: name, segment, MRR at as_of, detractor and at-risk flags."""
    cols = [c for c in ("account_name", "segment") if ws.has("accounts", c)]
    info = ws.table("accounts").select("account_id", *cols).to_pandas()
    info["account_id"] = info["account_id"].astype("str")
    info = info.merge(mrr_at(ws, as_of), on="account_id", how="left")
    info["mrr"] = info["mrr"].fillna(0.0)
    info["detractor"] = pd.array([pd.NA] * len(info), dtype="boolean")
    if ws.has("survey_responses"):
        sr = ws.table("survey_responses", columns=["survey"])
        present = set(sr.select("survey").distinct().to_pandas()["survey"].dropna())
        if survey in present:
            aw, cats = _account_waves(responses(ws, survey, wave=wave, as_of=as_of), survey,
                                      ws.survey_scales)
            latest = aw.sort_values("wave").groupby("account_id").tail(1)
            flag = dict(zip(latest["account_id"], latest["category"] == cats[2], strict=True))
            info["detractor"] = pd.array([flag.get(a, False) for a in info["account_id"]],
                                         dtype="boolean")
    info["at_risk"] = pd.array([pd.NA] * len(info), dtype="boolean")
    if ws.has("health_inputs"):
        hi = ws.table("health_inputs", columns=["account_id", "as_of", "csm_rating"])
        hi = hi.filter(hi.as_of <= as_of)
        w = ibis.window(group_by=hi.account_id, order_by=ibis.desc(hi.as_of))
        hi = hi.mutate(_rn=ibis.row_number().over(w))
        last = hi.filter(hi._rn == 0).select("account_id", "csm_rating").to_pandas()
        rating = dict(zip(last["account_id"].astype("str"), last["csm_rating"], strict=True))
        info["at_risk"] = pd.array([(rating[a] <= at_risk_rating) if a in rating else False
                                    for a in info["account_id"]], dtype="boolean")
    return info


def _request_row(k: str, g: pd.DataFrame, key: str) -> dict:
    per_acc = g.drop_duplicates("account_id")
    if key == "title":
        titles = g["title"].astype("str").value_counts()
        request = sorted(titles[titles == titles.max()].index)[0]
    else:
        request = k
    theme = None
    if "theme" in g.columns and g["theme"].notna().any():
        counts = g["theme"].dropna().astype("str").value_counts()
        theme = sorted(counts[counts == counts.max()].index)[0]
    det = per_acc["detractor"]
    risk = per_acc["at_risk"]

    def flagged(flags):
        if flags.isna().all():
            return pd.NA, float("nan")
        m = flags.fillna(False).to_numpy(dtype=bool)
        return int(m.sum()), float(per_acc["mrr"].to_numpy()[m].sum())

    det_n, det_mrr = flagged(det)
    risk_n, risk_mrr = flagged(risk)
    status_counts = (g["status"].value_counts() if "status" in g.columns
                     else pd.Series(dtype="int64"))
    latest = None
    if "status" in g.columns:
        when = g["status_at"] if "status_at" in g.columns else g["created_at"]
        when = when.fillna(g["created_at"])
        latest = g.loc[when.idxmax(), "status"] if len(g) else None
    segs = (per_acc["segment"].astype("str").value_counts().sort_index()
            if "segment" in per_acc.columns else pd.Series(dtype="int64"))
    names = per_acc.sort_values(["mrr", "account_id"], ascending=[False, True])
    label = names["account_name"] if "account_name" in names.columns else names["account_id"]
    label = label.astype("str").where(label.notna(), names["account_id"])
    return {
        "request": request, "theme": theme, "accounts": int(len(per_acc)),
        "mrr": float(per_acc["mrr"].sum()), "requests": int(len(g)),
        "people": int(g["person_id"].nunique()) if "person_id" in g.columns else pd.NA,
        "detractor_accounts": det_n, "detractor_mrr": det_mrr,
        "at_risk_accounts": risk_n, "at_risk_mrr": risk_mrr,
        "former_customers": int((per_acc["mrr"] <= 0).sum()),
        **{s: int(status_counts.get(s, 0)) for s in _STATUSES},
        "latest_status": latest,
        "first_asked": g["created_at"].min(), "last_asked": g["created_at"].max(),
        "segments": " · ".join(f"{s} {n}" for s, n in segs.items()),
        "sources": ", ".join(sorted(g["source"].dropna().astype("str").unique()))
        if "source" in g.columns else "",
        "top_accounts": ", ".join(label.head(3)),
    }
