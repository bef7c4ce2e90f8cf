"""What the scores predict: churn and expansion after the survey, by category.

:func:`survey_outcomes` follows each account-wave (an account's answers in one survey
wave) over the following months and returns a :class:`SurveyOutcomes` result: rates by
category with clustered intervals, Cox hazard ratios and the observations behind them.
Churn is read as churn *episodes* (every end of a stretch of coverage), so a churn
before a reactivation is not lost.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cs_analysis.errors import check_alpha, check_int
from cs_analysis.results import Result
from cs_analysis.retention import mrr_at
from cs_analysis.surveys._base import (
    MISSING,
    SMALL_SAMPLE,
    SurveyError,
    account_waves,
    as_list,
    responses,
    wilson_interval,
    z_value,
)
from cs_analysis.time import period_label, resolve_as_of, zone

__all__ = ["SurveyOutcomes", "churn_episodes", "survey_outcomes"]


@dataclass(frozen=True)
class SurveyOutcomes(Result):
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
        ``mean_score``, ``category``, ``churn_date`` (the first churn after the wave,
        NaT if none by the as-of date), ``window_end``, ``complete``
        (window within the data), ``churned``, ``mrr_start``, ``mrr_end``,
        ``expanded``, ``contracted``, and the ``adjust`` columns.
    survey : str
        The survey followed.
    horizon_days : int
        Length of the window of the rates.
    as_of : datetime.date
        The as-of date.
    adjust : tuple of str
        The account columns of the Cox model.
    notes : tuple of str
        E.g. why the Cox model could not be fitted.
    """

    rates: pd.DataFrame
    hazard_ratios: pd.DataFrame
    observations: pd.DataFrame
    survey: str = "nps"
    horizon_days: int = 365
    as_of: dt.date | None = None
    adjust: tuple[str, ...] = ()

    title = "Churn and expansion after the survey"

    def summary(self) -> pd.DataFrame:
        """Rates per category: observations, churn and expansion with their intervals."""
        cols = ["category", "observations", "accounts", "churn_rate", "churn_lower",
                "churn_upper", "expansion_rate", "expansion_lower", "expansion_upper",
                "nrr", "small_sample"]
        return self.rates[[c for c in cols if c in self.rates.columns]]


def survey_outcomes(ws, survey: str = "nps", horizon_days: int = 365, *,
                    adjust: Sequence[str] | str | None = ("segment",),
                    alpha: float = 0.05, small_sample: int = SMALL_SAMPLE, as_of=None,
                    wave: str = "quarter") -> SurveyOutcomes:
    """Churn and expansion after the survey for promoters vs passives vs detractors.

    The unit is an **account in a survey wave**: its responses that wave (one per
    respondent, the latest) are averaged and the mean rounded to a whole point (x.5 up)
    gives the account's category that wave (NPS: promoter 9-10, passive 7-8, detractor
    0-6; other surveys: top-2 box / middle / bottom-2 box). Its time ``t`` is its last
    response in the wave, and its day is the local date of that response in the
    workspace's time zone. Only accounts that are customers on that day count (a
    subscription covers it) and have signed up by then.

    Rates look at the window ``(t, t + horizon_days]`` and use only windows that end on
    or before the as-of date (no guessing about the future):

    - **churned**: a churn of the account falls in the window. Churn is read as
      **episodes** (:func:`churn_episodes`): every date on which a stretch of coverage
      ends, i.e. an ``end_date`` after which no subscription covers the next days (the
      metrics.md churn date, applied to each stretch). An account that churned and came
      back later (reactivated) has its earlier churn counted for the waves before it;
      the last-episode churn date of :func:`cs_analysis.retention.account_lifetimes`
      would miss it (the account is covered at the as-of date, so it has no churn date)
      and count the wave as "retained";
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
    alpha = check_alpha(alpha, error=SurveyError)
    horizon_days = check_int("horizon_days", horizon_days, minimum=1, error=SurveyError)
    small_sample = check_int("small_sample", small_sample, minimum=1, error=SurveyError)
    as_of = resolve_as_of(ws, as_of)
    adjust_cols = [c for c in as_list(adjust) if ws.has("accounts", c)]
    df = responses(ws, survey, wave=wave, as_of=as_of)
    aw, cats = account_waves(df, survey, ws.survey_scales)
    aw["wave_label"] = [period_label(w, wave) for w in aw["wave"]]
    acc = ws.table("accounts", columns=["account_id", "signup_date", *adjust_cols]).select(
        "account_id", "signup_date", *adjust_cols).to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    acc["signup_date"] = pd.to_datetime(acc["signup_date"])
    aw["account_id"] = aw["account_id"].astype("str")
    aw = aw.merge(acc, on="account_id", how="inner")
    # the wave's moment as local wall-clock time, and its local day (ws.timezone)
    aw["_t"] = _local_wall(aw["responded_at"], ws.timezone)
    t0 = aw["_t"].dt.normalize()
    ep = churn_episodes(ws, as_of=as_of)
    aw["_covered"] = _covered(ws, aw["account_id"], t0, as_of)
    aw["churn_date"] = _next_churn(aw["account_id"], t0, ep)
    aw = aw[aw["_covered"] & (aw["signup_date"] <= t0)].copy()
    t0 = aw["_t"].dt.normalize()
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
    hr, error = _outcome_hazards(aw, cats, adjust_cols, as_of, alpha)
    cols = ["account_id", "wave", "wave_label", "responded_at", "responses", "mean_score",
            "category", "churn_date", "window_end", "complete", "churned", "mrr_start",
            "mrr_end", "expanded", "contracted", *adjust_cols]
    observations = aw[cols].sort_values(["account_id", "wave"]).reset_index(drop=True)
    notes = (error,) if error else ()
    return SurveyOutcomes(rates=rates, hazard_ratios=hr, observations=observations,
                          survey=survey, horizon_days=horizon_days, as_of=as_of,
                          adjust=tuple(adjust_cols), notes=notes)


def _local_wall(utc: pd.Series, tz: str | None) -> pd.Series:
    """Wall-clock time in ``tz`` (naive) of stored UTC timestamps."""
    ts = pd.to_datetime(utc)
    name = tz or "UTC"
    zone(name)
    if name == "UTC":
        return ts
    return ts.dt.tz_localize("UTC").dt.tz_convert(name).dt.tz_localize(None)


def _subscription_spans(ws, as_of: dt.date) -> pd.DataFrame:
    """Subscriptions started by ``as_of``: account, start, end (NaT: open-ended)."""
    cols = ["account_id", "start_date"] + (["end_date"] if ws.has("subscriptions", "end_date")
                                           else [])
    t = ws.table("subscriptions", columns=cols)
    t = t.filter(t.start_date <= as_of).select(*cols)
    subs = t.to_pandas()
    if "end_date" not in subs.columns:
        subs["end_date"] = pd.NaT
    subs["account_id"] = subs["account_id"].astype("str")
    subs["start_date"] = pd.to_datetime(subs["start_date"])
    subs["end_date"] = pd.to_datetime(subs["end_date"])
    return subs[subs["end_date"].isna() | (subs["end_date"] > subs["start_date"])]


def churn_episodes(ws, *, as_of=None) -> pd.DataFrame:
    """Every churn of every account: the end of each stretch of subscription coverage.

    The metrics.md churn date (the ``end_date`` after which no subscription covers any
    later day), applied to each stretch of coverage instead of only the last one: a
    subscription covers the days from ``start_date`` up to the day before ``end_date``
    (an open ``end_date`` covers every later day); overlapping or touching subscriptions
    form one stretch; the day a stretch stops being covered is a churn, if it is on or
    before the as-of date. An account that churned, came back and is a customer again
    has its earlier churn here (its reactivation is the next stretch's start).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    as_of : date or str, optional
        Only subscriptions starting on or before it, churns on or before it (default the
        workspace's as-of date).

    Returns
    -------
    pandas.DataFrame
        ``account_id``, ``churn_date`` (datetime64), ``episode`` (1 for an account's
        first churn), ``reactivated_on`` (start of the next stretch, NaT if none).
    """
    as_of = resolve_as_of(ws, as_of)
    subs = _subscription_spans(ws, as_of).sort_values(["account_id", "start_date"])
    far = pd.Timestamp.max.normalize()
    rows = []
    for acc, g in subs.groupby("account_id", sort=True):
        cur_end = None
        n = 0
        for start, end in zip(g["start_date"], g["end_date"].fillna(far), strict=True):
            if cur_end is not None and start > cur_end:  # a gap: the stretch ended
                n += 1
                rows.append((acc, cur_end, n, start))
                cur_end = end
            else:
                cur_end = end if cur_end is None else max(cur_end, end)
        if cur_end is not None and cur_end <= pd.Timestamp(as_of):
            rows.append((acc, cur_end, n + 1, pd.NaT))
    out = pd.DataFrame(rows, columns=["account_id", "churn_date", "episode",
                                      "reactivated_on"])
    out = out[out["churn_date"] <= pd.Timestamp(as_of)]
    out["churn_date"] = pd.to_datetime(out["churn_date"])
    out["reactivated_on"] = pd.to_datetime(out["reactivated_on"])
    return out.reset_index(drop=True)


def _covered(ws, accounts: pd.Series, days: pd.Series, as_of: dt.date) -> pd.Series:
    """Whether a subscription covers each account's day (start <= day < end)."""
    subs = _subscription_spans(ws, as_of)
    q = pd.DataFrame({"account_id": accounts.to_numpy(), "day": days.to_numpy(),
                      "_i": np.arange(len(accounts))})
    m = q.merge(subs, on="account_id", how="inner")
    hit = (m["start_date"] <= m["day"]) & (m["end_date"].isna() | (m["end_date"] > m["day"]))
    ok = np.zeros(len(accounts), dtype=bool)
    ok[m.loc[hit, "_i"].to_numpy()] = True
    return pd.Series(ok, index=accounts.index)


def _next_churn(accounts: pd.Series, days: pd.Series, episodes: pd.DataFrame) -> pd.Series:
    """The first churn episode strictly after each account's day (NaT if none)."""
    q = pd.DataFrame({"account_id": accounts.to_numpy(), "day": days.to_numpy(),
                      "_i": np.arange(len(accounts))})
    m = q.merge(episodes[["account_id", "churn_date"]], on="account_id", how="inner")
    m = m[m["churn_date"] > m["day"]]
    first = m.groupby("_i")["churn_date"].min()
    out = pd.Series(pd.NaT, index=range(len(accounts)), dtype="datetime64[ns]")
    out[first.index] = first.to_numpy()
    return pd.Series(out.to_numpy(), index=accounts.index)


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
    lo, hi = wilson_interval(p * n_eff, n_eff, alpha)
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
                     alpha: float) -> tuple[pd.DataFrame, str | None]:
    import statsmodels.formula.api as smf

    columns = ["covariate", "level", "reference", "is_reference", "hazard_ratio", "lower",
               "upper", "p_value", "accounts", "events"]
    d = aw.sort_values(["account_id", "_t"]).copy()
    nxt = d.groupby("account_id")["_t"].shift(-1)
    end = d["churn_date"].fillna(pd.Timestamp(as_of))
    stop = nxt.where(nxt.notna() & (nxt < end), end)
    d["event"] = (d["churn_date"].notna() & (stop == d["churn_date"])).astype(int)
    signup = pd.to_datetime(d["signup_date"])
    d["entry"] = (d["_t"] - signup).dt.total_seconds() / 86400
    d["exit"] = (stop - signup).dt.total_seconds() / 86400
    d = d[d["exit"] > d["entry"]]
    present = [c for c in cats if (d["category"] == c).any()]
    if d.empty or d["event"].sum() == 0 or len(present) < 2:
        return pd.DataFrame(columns=columns), None
    ref = cats[0] if cats[0] in present else present[0]
    terms = [f"C(category, Treatment(reference='{ref}'))"]
    keep = []
    for c in adjust_cols:
        d[c] = d[c].astype("str").where(d[c].notna(), MISSING)
        if d[c].nunique() > 1:
            keep.append(c)
            terms.append(f"C({c})")
    z = z_value(alpha)
    try:
        res = smf.phreg("exit ~ " + " + ".join(terms), d, status=d["event"].to_numpy(),
                        entry=d["entry"].to_numpy(), ties="efron").fit()
    except (np.linalg.LinAlgError, ValueError, OverflowError) as exc:  # too little data
        return pd.DataFrame(columns=columns), f"the Cox model could not be fitted: {exc}"
    names = list(res.model.exog_names)
    params, bse, pvals = (np.asarray(res.params), np.asarray(res.bse),
                          np.asarray(res.pvalues))
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(bse))
            and np.all(np.abs(params) < 20)):
        # separation: churns only in some categories, the estimate runs off to infinity
        return pd.DataFrame(columns=columns), (
            f"the Cox model gives no usable hazard ratio: {int(d['event'].sum())} churn(s) "
            f"in {len(d)} account-waves are too few, or fall in one category only")
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
    return pd.DataFrame(rows, columns=columns), None


