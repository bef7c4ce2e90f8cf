"""The survey responses every analysis starts from, and the helpers the analyses share.

- :func:`responses` -- the scoped survey responses, one per respondent per survey wave
  (filtered and deduplicated in the engine), with account and stakeholder columns.
- :func:`metric_of` -- which score (NPS, CSAT, CES) a survey is read with.
- the preparation of a workspace or a frame for one survey (:func:`prepare`), the
  account-wave categories of :func:`cs_analysis.surveys.survey_outcomes` and
  :func:`cs_analysis.surveys.request_priorities`, and small argument checks.

Calendar: a **wave** is a calendar period (quarter by default) of ``responded_at`` read in
the workspace time zone (``ws.timezone``; :mod:`cs_analysis.time`), and "on or before the
as-of date" means on or before the as-of day in that zone.
"""

from __future__ import annotations

import fnmatch
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import ibis
import numpy as np
import pandas as pd

from cs_analysis.contract import DEFAULT_SURVEY_SCALES, survey_scale
from cs_analysis.errors import CSAnalysisError, check_choice
from cs_analysis.time import (
    day_start,
    local_dates,
    on_or_before,
    period_expr,
    period_label,
    period_number,
    resolve_as_of,
    to_date,
)
from cs_analysis.workspace import Workspace

#: Calendar grains a wave or a reporting period can have.
PERIODS = ("month", "quarter", "year")
#: Response categories, best first: NPS surveys, then every other survey with a scale
#: (top-2 box / middle / bottom-2 box).
CATEGORIES = {"nps": ("promoter", "passive", "detractor"),
              "other": ("positive", "neutral", "negative")}
#: Groups (and compared groups) with fewer responses than this are flagged.
SMALL_SAMPLE = 30
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


class SurveyError(CSAnalysisError, ValueError):
    """A bad parameter or bad survey data, with what was given and what was expected."""


# == small helpers ===========================================================================

def as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def z_value(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


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
    out = np.full(len(score), None, dtype=object)  # filled, then made text once
    for name in pd.unique(survey):
        m = (survey == name).to_numpy()
        s = score[m]
        if name == "nps":
            names, top, bottom = ("detractor", "passive", "promoter"), 9, 6
        else:
            rng = survey_scale(name, scales)
            if rng is None:
                continue
            names, top, bottom = ("negative", "neutral", "positive"), rng[1] - 1, rng[0] + 1
        # codes 2 / 0 / 1 (top box, bottom box, middle), then their names: no text arrays
        code = np.where(s >= top, 2, np.where(s <= bottom, 0, 1))
        out[m] = np.array(names, dtype=object)[code]
    return pd.Series(out, index=score.index, dtype="str")


def groups_text(frame: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
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
              comments_only: bool = False,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
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
        The survey wave used for deduplication (the calendar period of ``responded_at``
        in the workspace's time zone).
    dedup : bool
        Apply the one-response-per-respondent-per-wave rule (False keeps every response,
        e.g. to read every comment).
    as_of : date or str, optional
        Only responses on or before this date (default the workspace's as-of date): a
        response's date is its local date in the workspace's time zone.
    since, until : date or str, optional
        Only responses on or after ``since`` / on or before ``until`` (local dates).
    roles : list of str, optional
        Keep these ``respondent_role`` values.
    touchpoints : list of str, optional
        Keep these ``touchpoint`` values.
    comments_only : bool
        Keep only responses with a non-blank comment (applied after deduplication).
    columns : list of str, optional
        Return only these columns (names, or patterns such as ``"attr_*"``) besides
        ``response_id``, ``account_id``, ``survey``, ``score``, ``responded_at``,
        ``wave``, ``wave_label`` and ``category``; default all of them. The same rows
        either way: a column nobody asked for is never read, joined or converted, which
        on a large workspace is most of the time (e.g. comments, stakeholder names).

    Returns
    -------
    pandas.DataFrame
        One row per response: the ``survey_responses`` columns present (``attr_*``
        included), ``wave`` (period number) and ``wave_label`` (``2024-Q1``), ``category``
        (``promoter`` / ``passive`` / ``detractor`` for NPS; ``positive`` / ``neutral`` /
        ``negative`` = top-2 box / middle / bottom-2 box for other surveys with a known
        scale), the ``accounts`` columns present among ``account_name``, ``segment``,
        ``plan``, ``region``, ``industry``, ``csm_owner``, ``touch_model``, and, when the
        respondent is a known stakeholder, ``domain`` (``business`` / ``technical``),
        ``respondent_name`` and ``respondent_title``. Sorted by ``responded_at``.
        The scores, comparisons and themes accept this frame and reuse its ``wave``
        column (already cut in the workspace's time zone).

    Raises
    ------
    WorkspaceError
        The workspace has no ``survey_responses`` table, or lacks a column a filter needs.
    SurveyError
        A requested survey has no response, or a score is outside its survey's scale.
    """
    check_choice("wave", wave, PERIODS, error=SurveyError)
    as_of = resolve_as_of(ws, as_of)
    need = list(RESPONSE_COLUMNS)
    if roles is not None:
        need.append("respondent_role")
    if touchpoints is not None:
        need.append("touchpoint")
    if comments_only:
        need.append("comment")
    t = ws.table("survey_responses", columns=need)
    surveys = as_list(survey)
    if surveys:
        present = set(t.select("survey").distinct().to_pandas()["survey"].dropna())
        missing = [s for s in surveys if s not in present]
        if missing:
            raise SurveyError(
                f"no responses to survey {', '.join(map(repr, missing))} in this workspace; "
                f"surveys present: {', '.join(sorted(present)) or 'none'}")
        t = t.filter(t.survey.isin(surveys))
    tz = ws.timezone
    t = t.filter(on_or_before(t.responded_at, as_of, tz))
    if since is not None:
        t = t.filter(t.responded_at >= day_start(since, tz))
    if until is not None:
        t = t.filter(on_or_before(t.responded_at, until, tz))
    if roles is not None:
        t = t.filter(t.respondent_role.isin([str(r) for r in roles]))
    if touchpoints is not None:
        t = t.filter(t.touchpoint.isin([str(x) for x in touchpoints]))
    t = t.mutate(wave=period_expr(t.responded_at, wave, tz))
    has_respondent = "respondent_id" in t.columns
    if dedup and has_respondent:
        # a respondent is a person of one account (person ids are unique per account)
        w = ibis.window(group_by=[t.survey, t.wave, t.account_id, t.respondent_id],
                        order_by=[ibis.desc(t.responded_at), ibis.desc(t.response_id)])
        t = t.mutate(_rn=ibis.row_number().over(w))
        t = t.filter((t._rn == 0) | t.respondent_id.isnull()).drop("_rn")
    if comments_only:
        t = t.filter(t.comment.notnull() & (t.comment.strip().length() > 0))
    wanted = _wanted(columns)
    people_cols = {"domain", "respondent_name", "respondent_title"}
    if columns is not None:
        keep_id = any(wanted(c) for c in people_cols)   # the key of the stakeholder join
        t = t.select(*[c for c in t.columns if c in RESPONSE_COLUMNS or c == "wave"
                       or wanted(c) or (keep_id and c == "respondent_id")])
    acc_cols = [c for c in _ACCOUNT_COLUMNS if ws.has("accounts", c) and wanted(c)]
    acc = ws.table("accounts").select("account_id", *acc_cols)
    t = t.join(acc, "account_id")   # also when no column is wanted: responses of accounts
    if has_respondent and ws.has("stakeholders", "account_id", "person_id"):
        sh = ws.table("stakeholders")
        extra = {k: v for k, v in (("domain", "domain"), ("respondent_name", "name"),
                                   ("respondent_title", "title"))
                 if v in sh.columns and wanted(k)}
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
    labels = {w: period_label(w, wave) for w in pd.unique(df["wave"])}
    df["wave_label"] = df["wave"].map(labels).tolist()   # the dtype a list of labels gets
    df["category"] = _category(df["score"], df["survey"], scales)
    return df.reset_index(drop=True)


def _wanted(columns: Sequence[str] | None):
    """Predicate: whether ``responses(columns=...)`` asks for a column (None: all do)."""
    if columns is None:
        return lambda name: True
    pats = [str(c) for c in as_list(columns)]
    return lambda name: any(fnmatch.fnmatchcase(name, p) for p in pats)


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
def is_workspace(x) -> bool:
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


class _Prepared(NamedTuple):
    """Responses of one survey ready to score, their scale and the period grain."""

    frame: pd.DataFrame
    scale: tuple[float, float]
    grain: str | None


def prepare(source, survey: str, keys: Sequence[str], period: str | None, *, as_of, wave,
             metric: str, scale=None, timezone: str | None = None,
             columns: Sequence[str] | None = None) -> _Prepared:
    """Responses of one survey, deduplicated, with a ``period`` column when asked.

    A workspace is read with :func:`responses` (its time zone, its scales), reading only
    ``keys`` and ``columns`` (names or patterns) besides the essentials when ``columns``
    is given (None: every column). A frame is
    taken as given: its waves and periods come from its ``wave`` column when that column
    has the grain asked for (as :func:`responses` writes it, in the workspace's zone),
    else from ``responded_at`` read in ``timezone`` (default UTC); its scale from
    ``scale`` or the survey's default.
    """
    check_choice("wave", wave, PERIODS, error=SurveyError)
    if period is not None:
        check_choice("grain", period, (*PERIODS, "wave"), error=SurveyError)
        period = wave if period == "wave" else period
    if not isinstance(survey, str) or not survey:
        raise SurveyError(f"survey={survey!r} must be the name of one survey, e.g. 'nps'")
    if is_workspace(source):
        lean = None if columns is None else [*keys, *as_list(columns)]
        df = responses(source, survey, wave=wave, as_of=as_of, columns=lean)
        if lean is not None and any(k not in df.columns for k in keys):
            df = responses(source, survey, wave=wave, as_of=as_of)  # for the error below
        scales = source.survey_scales
        tz = source.timezone
    elif isinstance(source, pd.DataFrame):
        df = _prepare_frame(source, survey, wave, as_of, period, timezone)
        scales, tz = {}, timezone
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
        df = df.assign(period=_waves(df, period, tz))
    return _Prepared(df, rng, period)


def _label_grain(label) -> str | None:
    """The grain of a :func:`cs_analysis.time.period_label` text (None: not a label)."""
    text = str(label)
    if len(text) == 4 and text.isdigit():
        return "year"
    if len(text) == 7 and text[4] == "-":
        if text[5] == "Q":
            return "quarter"
        if text[5:].isdigit():
            return "month"
    return None


def _waves(df: pd.DataFrame, grain: str, tz: str | None) -> pd.Series:
    """Period numbers of the responses: their ``wave`` column when it has this grain.

    :func:`responses` numbers waves in the workspace's zone; any other frame is cut
    from ``responded_at`` read in ``tz`` (None: UTC).
    """
    if {"wave", "wave_label"} <= set(df.columns) and len(df):
        if _label_grain(df["wave_label"].iloc[0]) == grain:
            return df["wave"].astype("int64")
    if "responded_at" not in df.columns:
        raise SurveyError("the responses frame has no column 'responded_at' to cut "
                          f"{grain}s from")
    if not len(df):
        return pd.Series([], index=df.index, dtype="int64")
    return pd.Series(period_number(df["responded_at"].to_numpy(), grain, tz or "UTC")
                     .to_numpy(), index=df.index)


def _prepare_frame(frame: pd.DataFrame, survey: str, wave: str, as_of, period,
                   tz: str | None) -> pd.DataFrame:
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
    if as_of is not None and "responded_at" in df.columns and len(df):
        day = local_dates(df["responded_at"].to_numpy(), tz or "UTC").to_numpy()
        df = df[day <= np.datetime64(to_date(as_of))]
    if {"respondent_id", "responded_at"} <= set(df.columns):
        df = dedup_frame(df, wave, tz)  # idempotent on a frame of responses()
    return df.copy()


def dedup_frame(df: pd.DataFrame, wave: str, tz: str | None = None) -> pd.DataFrame:
    """The dedup rule of :func:`responses`, in pandas, for frames given directly."""
    w = _waves(df, wave, tz)
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


def wilson_interval(k, n, alpha: float) -> tuple[float, float]:
    """Wilson score interval of k / n, clipped to [0, 1]; NaN when n = 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return max(float(lo), 0.0), min(float(hi), 1.0)


# == curated voices =============================================================================
def check_values(name: str, given, present: Iterable, what: str) -> list[str]:
    values = [str(v) for v in as_list(given)]
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


def check_money(name: str, value) -> float | None:
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


def metric_of(survey: str) -> str:
    """The metric a survey is scored with: its own name for nps/csat/ces, else ``ces`` (mean).

    A survey whose name starts with ``nps`` is scored as NPS, one starting with ``csat``
    as CSAT; any other survey gets the mean score (CES-style).
    """
    for m in ("nps", "csat", "ces"):
        if survey == m or survey.startswith(m + "_"):
            return m
    return "ces"


def account_waves(df: pd.DataFrame, survey: str, scales: Mapping):
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


