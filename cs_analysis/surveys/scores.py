"""Survey scores (NPS, CSAT, CES) with their intervals, and comparisons between groups.

- :func:`nps`, :func:`csat`, :func:`ces` -- the scores with their counts and a confidence
  interval (analytic by default, bootstrap on request), overall, by group, by period.
- :func:`compare` -- differences between groups (segment, role, touchpoint, business vs
  technical stakeholders) or between periods, with tests and a multiple-comparison
  correction; small groups are flagged, never hidden.
- :func:`holm` -- Holm's step-down adjusted p-values.

Definitions: metrics.md, "Surveys" (repeated in each function's docstring).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from cs_analysis.errors import check_alpha, check_choice, check_int
from cs_analysis.surveys._base import (
    _CI,
    SMALL_SAMPLE,
    SurveyError,
    _Prepared,
    as_list,
    groups_text,
    metric_of,
    prepare,
    z_value,
)
from cs_analysis.time import period_bounds, period_label

__all__ = ["SCORES", "ces", "compare", "csat", "holm", "nps"]


def _grain_arg(grain, period, where: str):
    """``grain``, or the deprecated ``period=`` keyword (a warning says so)."""
    if period is not None:
        if grain is not None and grain != period:
            raise SurveyError(f"{where}: grain={grain!r} and period={period!r} disagree; "
                              "use grain= only (period= is its old name)")
        warnings.warn(f"{where}(period=...) is deprecated; use grain=", FutureWarning,
                      stacklevel=3)
        return period
    return grain


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
           scale=None, timezone=None, prepared: _Prepared | None = None) -> pd.DataFrame:
    check_choice("ci", ci, _CI[metric], error=SurveyError)
    alpha = check_alpha(alpha, error=SurveyError)
    n_boot = check_int("n_boot", n_boot, minimum=100, error=SurveyError)
    small_sample = check_int("small_sample", small_sample, minimum=1, error=SurveyError)
    by_cols = as_list(by)
    if "period" in by_cols:
        raise SurveyError("by='period' is not a column: use grain='quarter' (or 'month', "
                          "'year', 'wave') to split by period")
    if prepared is None:
        prepared = prepare(source, survey, by_cols, period, as_of=as_of, wave=wave,
                            metric=metric, scale=scale, timezone=timezone, columns=())
    df, rng, grain = prepared
    keys = by_cols + (["period"] if grain else [])
    df = groups_text(df, by_cols)
    score = df["score"].to_numpy(dtype=float)
    df = df.assign(_v=_values(metric, score, rng),
                   _acc=df["account_id"] if "account_id" in df.columns else np.arange(len(df)))
    groups = df.groupby(keys, sort=True, dropna=False) if keys else [((), df)]
    z = z_value(alpha)
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
    grain : {"month", "quarter", "year", "wave"}, optional
        Also split by the calendar period of ``responded_at`` in the workspace's time
        zone (``period=`` is the deprecated old name of this argument).
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
    timezone : str, optional
        For a frame without a ``wave`` column of the grain asked for: the time zone in
        which its ``responded_at`` (UTC) is cut into waves and periods (default UTC; a
        frame of :func:`responses` carries its workspace's waves). Ignored for a
        workspace, which uses ``ws.timezone``.
"""


def nps(ws_or_frame, by=None, grain=None, *, survey: str = "nps", ci: str = "delta",
        alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
        small_sample: int = SMALL_SAMPLE, as_of=None, wave: str = "quarter",
        timezone: str | None = None, period=None) -> pd.DataFrame:
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
    return _score(ws_or_frame, "nps", by, _grain_arg(grain, period, "nps"), survey=survey,
                  ci=ci, alpha=alpha, n_boot=n_boot, seed=seed, small_sample=small_sample,
                  as_of=as_of, wave=wave, timezone=timezone)


def csat(ws_or_frame, by=None, grain=None, *, survey: str = "csat", ci: str = "wilson",
         alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
         small_sample: int = SMALL_SAMPLE, as_of=None, wave: str = "quarter",
         scale: tuple | None = None, timezone: str | None = None,
         period=None) -> pd.DataFrame:
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
    return _score(ws_or_frame, "csat", by, _grain_arg(grain, period, "csat"), survey=survey,
                  ci=ci, alpha=alpha, n_boot=n_boot, seed=seed, small_sample=small_sample,
                  as_of=as_of, wave=wave, scale=scale, timezone=timezone)


def ces(ws_or_frame, by=None, grain=None, *, survey: str = "ces", ci: str = "t",
        alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
        small_sample: int = SMALL_SAMPLE, as_of=None, wave: str = "quarter",
        scale: tuple | None = None, timezone: str | None = None,
        period=None) -> pd.DataFrame:
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
    return _score(ws_or_frame, "ces", by, _grain_arg(grain, period, "ces"), survey=survey,
                  ci=ci, alpha=alpha, n_boot=n_boot, seed=seed, small_sample=small_sample,
                  as_of=as_of, wave=wave, scale=scale, timezone=timezone)


for _f in (nps, csat, ces):
    _f.__doc__ = _f.__doc__.replace("{params}", _SCORE_PARAMS)
del _f

#: Score function per metric name.
SCORES = {"nps": nps, "csat": csat, "ces": ces}



# == comparisons ===============================================================================
_CORRECTIONS = ("holm", "bonferroni", "fdr_bh", "none")
_PAIRS = ("all", "reference", "consecutive")


def compare(ws_or_frame, by: str, survey: str = "nps", *, grain: str | None = None,
            within: str | None = None, pairs: str | None = None, reference=None,
            correction: str = "holm", ci: str | None = None, alpha: float = 0.05,
            small_sample: int = SMALL_SAMPLE, n_boot: int = 2000, seed: int = 0,
            as_of=None, wave: str = "quarter", scale: tuple | None = None,
            timezone: str | None = None, period: str | None = None) -> pd.DataFrame:
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
    - ``ci="account_bootstrap"``: for groups of accounts (segments, ...), each group's
      standard error comes from resampling accounts (respondents of one account answer
      alike, which the analytic tests ignore); z test and normal interval on those
      standard errors.
    - **Periods** (``by="period"``, default ``ci="account_bootstrap"``): the same
      accounts answer wave after wave, so two periods are not independent samples. The
      accounts are resampled once for all periods (each replicate keeps an account's
      responses in every period), and the standard error of each difference is the
      standard deviation of the replicated differences; z test and normal interval on
      it. This allows both for respondents of one account answering alike (wider) and
      for an account's answers in two waves going together (narrower);
      ``ci="analytic"`` gives the naive formulas above, which assume independent waves.

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
        ``"period"`` to compare calendar periods (``grain`` sets the grain).
    survey : str
        The survey; scored as NPS, CSAT or CES by its name (``nps*``, ``csat*``, else
        the mean score as CES).
    grain : {"month", "quarter", "year", "wave"}, optional
        With ``by="period"``: the grain of the compared periods (default ``"quarter"``),
        in the workspace's time zone. With another ``by``: compare the groups within
        each period. ``period=`` is the deprecated old name of this argument.
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
    ci : {"analytic", "account_bootstrap"}, optional
        Standard errors from the formulas above, or from the account bootstrap. Default:
        ``"account_bootstrap"`` for periods, ``"analytic"`` for other groups.
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
    scale : (low, high), optional
        For CSAT and CES read from a frame: the survey's scale (default the survey's
        default; a workspace uses its ``survey_scales`` setting).
    timezone : str, optional
        As in :func:`nps` (frames only).

    Returns
    -------
    pandas.DataFrame
        One row per comparison: the ``within`` / period columns when comparing within
        them, ``by`` (the compared column), ``group_a``, ``group_b``, ``responses_a``,
        ``responses_b``, ``score_a``, ``score_b``, ``difference`` (a - b: NPS points,
        CSAT share, CES points), ``se``, ``lower``, ``upper``, ``statistic``,
        ``p_value``, ``p_adjusted``, ``significant`` (adjusted p < alpha),
        ``small_sample``, ``test``, ``note``. Empty when no ``within`` group (or
        period) has two groups to compare.

    Raises
    ------
    SurveyError
        When the responses hold fewer than two groups of ``by`` at all, naming the one
        group found (for ``by="touchpoint"``: each survey is usually sent at one
        touchpoint, so touchpoints are compared across surveys, not within one).
    """
    period = _grain_arg(grain, period, "compare")
    check_choice("correction", correction, _CORRECTIONS, error=SurveyError)
    alpha = check_alpha(alpha, error=SurveyError)
    if not isinstance(by, str) or not by:
        raise SurveyError(f"by={by!r} must be one column name, or 'period'")
    metric = metric_of(survey)
    by_period = by == "period"
    if ci is None:
        ci = "account_bootstrap" if by_period else "analytic"
    check_choice("ci", ci, ("analytic", "account_bootstrap"), error=SurveyError)
    if by_period:
        period = period or "quarter"
    pairs = pairs or ("consecutive" if by_period else "all")
    check_choice("pairs", pairs, _PAIRS, error=SurveyError)
    if reference is not None and pairs != "reference":
        raise SurveyError("reference= is only used with pairs='reference'")
    outer = as_list(within) + (["period"] if period and not by_period else [])
    cols = as_list(within) + ([] if by_period else [by])
    paired = by_period and ci == "account_bootstrap"
    score_ci = ({"nps": "delta", "csat": "wilson", "ces": "t"}[metric]
                if ci == "analytic" or paired else "account_bootstrap")
    prepared = prepare(ws_or_frame, survey, cols, period, as_of=as_of, wave=wave,
                        metric=metric, scale=scale, timezone=timezone)
    _check_groups(prepared.frame, by, survey, period)
    stats = _score(ws_or_frame, metric, cols or None, period, survey=survey, ci=score_ci,
                   alpha=alpha, n_boot=n_boot, seed=seed, small_sample=small_sample,
                   as_of=as_of, wave=wave, prepared=prepared)
    key = "period" if by_period else by
    gen = np.random.default_rng(seed)
    resp = groups_text(prepared.frame, as_list(within)) if paired else None
    rows = []
    groups = stats.groupby(outer, sort=True) if outer else [((), stats)]
    for okey, g in groups:
        okey = okey if isinstance(okey, tuple) else (okey,)
        g = g.sort_values(key).reset_index(drop=True)
        if len(g) < 2:
            continue
        labels = (g["period_label"] if by_period else g[key]).astype(str).tolist()
        index_pairs = _pair_indices(g, key, labels, pairs, reference)
        boot = None
        if paired:
            sub = resp
            for c, v in zip(outer, okey, strict=True):
                sub = sub[sub[c] == v]
            boot = _paired_bootstrap(sub, metric, prepared.scale, g["period"].tolist(),
                                     index_pairs, n_boot, gen)
        for pi, (i, j) in enumerate(index_pairs):
            a, b = g.iloc[i], g.iloc[j]
            row = dict(zip(outer, okey, strict=True))
            if "period" in outer:
                row["period_label"] = a["period_label"]
            row.update(by=by, group_a=labels[i], group_b=labels[j],
                       responses_a=int(a["responses"]), responses_b=int(b["responses"]))
            if boot is not None:
                row.update(_boot_difference(metric, a, b, boot[pi], alpha))
            else:
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
    return out


def _check_groups(df: pd.DataFrame, by: str, survey: str, grain: str | None) -> None:
    """Fewer than two groups of ``by`` in the whole selection: say why nothing compares."""
    if by == "period":
        values = sorted(set(df["period"])) if "period" in df.columns else []
        shown = [period_label(v, grain) for v in values]
        what = f"{grain}s"
    else:
        values = sorted(set(df[by].astype("str").where(df[by].notna(), "(missing)")))
        shown = values
        what = f"values of {by!r}"
    if len(values) >= 2:
        return
    if not values:
        raise SurveyError(f"no {survey!r} responses in this selection: nothing to compare")
    why = f"every {survey!r} response in this selection has {by} {shown[0]!r}"
    if by == "touchpoint":
        why += (": each survey is sent at one touchpoint, so touchpoints cannot be compared "
                "within one survey; compare the surveys' scores instead (e.g. nps, csat and "
                "ces side by side), or pass responses of a survey sent at several "
                "touchpoints")
    elif by == "period":
        why += f"; compare needs at least two {what} (a finer grain, or a longer span)"
    else:
        why += f"; compare needs at least two {what}"
    raise SurveyError(f"compare(by={by!r}): {why}")


def _paired_bootstrap(df: pd.DataFrame, metric: str, rng, periods: list, index_pairs,
                      n_boot: int, gen: np.random.Generator) -> list[np.ndarray]:
    """Replicated differences between periods, resampling accounts across all periods.

    Each replicate draws accounts with replacement (multinomial weights) and keeps every
    response of a drawn account in every period, so the replicated period scores keep
    the dependence between waves answered by the same accounts.
    """
    values = _values(metric, df["score"].to_numpy(dtype=float), rng)
    acc = (df["account_id"].astype("str").to_numpy() if "account_id" in df.columns
           else np.arange(len(df)).astype(str))
    _, inv = np.unique(acc, return_inverse=True)
    k = int(inv.max()) + 1 if len(inv) else 0
    col = {p: i for i, p in enumerate(periods)}
    pcol = df["period"].map(col).to_numpy()
    keep = ~pd.isna(pcol)
    sums = np.zeros((k, len(periods)))
    counts = np.zeros((k, len(periods)))
    np.add.at(sums, (inv[keep], pcol[keep].astype(int)), values[keep])
    np.add.at(counts, (inv[keep], pcol[keep].astype(int)), 1.0)
    stats = []
    for start in range(0, n_boot, 500):
        w = gen.multinomial(k, np.full(k, 1.0 / k), size=min(500, n_boot - start))
        with np.errstate(invalid="ignore", divide="ignore"):
            stats.append((w @ sums) / (w @ counts))
    st = np.concatenate(stats) if stats else np.zeros((0, len(periods)))
    return [st[:, i] - st[:, j] for i, j in index_pairs]


def _boot_difference(metric: str, a, b, diffs: np.ndarray, alpha: float) -> dict:
    from scipy.stats import norm

    sa, sb = float(a[metric]), float(b[metric])
    diff = sa - sb
    d = diffs[np.isfinite(diffs)]
    se = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
    z = z_value(alpha)
    ok = np.isfinite(se) and se > 0
    stat = diff / se if ok else float("nan")
    return {"score_a": sa, "score_b": sb, "difference": diff, "se": se,
            "lower": diff - z * se if ok else float("nan"),
            "upper": diff + z * se if ok else float("nan"), "statistic": stat,
            "p_value": float(2 * norm.sf(abs(stat))) if ok else float("nan"),
            "test": "z test, account-bootstrap standard error over waves (same accounts "
                    "resampled in every period)"}


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
    z = z_value(alpha)
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


