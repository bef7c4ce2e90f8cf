"""What goes with a good onboarding: time to value vs retention, and effects of CS plays.

:func:`ttv_vs_retention` (landmark analyses and Cox models of churn after onboarding) and
:func:`activity_effect` (do accounts that received a CS play, e.g. training, do better?).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ibis
import numpy as np
import pandas as pd

from cs_analysis.errors import check_alpha, check_choice, check_int
from cs_analysis.formatting import is_missing
from cs_analysis.onboarding.criteria import known_values, load_criteria
from cs_analysis.onboarding.ttv import (
    ALL_ACCOUNTS,
    DAY,
    MISSING,
    OBSERVED,
    by_list,
    end_ts,
    poisson_ci,
    stage_ttv,
    time_to_value,
    utc_bounds,
    z_value,
)
from cs_analysis.results import Result
from cs_analysis.survival import kaplan_meier, loglog_interval
from cs_analysis.time import local_dates, period_expr, resolve_as_of

__all__ = ["OUTCOMES", "ActivityEffect", "TTVRetention", "activity_effect", "ttv_vs_retention"]


# ======================================================================================
# Time to value and retention
# ======================================================================================
@dataclass(frozen=True)
class TTVRetention(Result):
    """Result of :func:`ttv_vs_retention`.

    Attributes
    ----------
    buckets : pandas.DataFrame
        Retention after a landmark by TTV bucket: ``bucket``, ``order``, ``accounts``,
        ``churned``, ``account_years``, ``churn_rate`` (churns per account-year after
        the landmark) with ``rate_lower`` / ``rate_upper`` (exact Poisson interval),
        ``retained_12m`` (Kaplan-Meier share still a customer 365 days after the
        landmark) with ``retained_lower`` / ``retained_upper``, ``hazard_ratio`` /
        ``hr_lower`` / ``hr_upper`` / ``p_value`` (Cox, vs the fastest bucket),
        ``small_sample``, ``landmark_days``.
    cox : pandas.DataFrame
        Hazard ratios: ``model``, ``term``, ``reference``, ``hazard_ratio``, ``lower``,
        ``upper``, ``p_value``, ``accounts`` / ``events`` (in the term's group), ``n`` /
        ``n_events`` (in the model), ``strata``.
    accounts : pandas.DataFrame
        One row per account in the target-landmark model: ``account_id``, ``segment``,
        ``landmark`` (date), ``within_target``, ``years_after``, ``churned``.
    excluded : dict
        Accounts left out of the target landmark model, by reason.
    note : str
        How the analysis avoids immortal-time bias, in plain words.
    """

    buckets: pd.DataFrame
    cox: pd.DataFrame
    accounts: pd.DataFrame
    excluded: Mapping[str, int]
    note: str

    title = "Time to value and retention (landmark analysis)"

    def summary(self) -> pd.DataFrame:
        """The hazard ratios (the first row is the headline: missed target vs met)."""
        return self.cox[["model", "term", "reference", "hazard_ratio", "lower", "upper",
                         "p_value", "accounts", "events"]]


_LANDMARK_NOTE = (
    "Landmark analysis: each account is followed from a fixed point after its clock start "
    "(its segment's target, or {h} days for the buckets) and grouped by what it had "
    "reached by then. Only accounts still customers at that point count. Grouping by the "
    "final time-to-value instead would credit slow onboarders with the months they had to "
    "survive to finish (immortal-time bias) and make slow onboarding look safe. A "
    "landmark was chosen over a time-varying covariate because 'reached value within "
    "target' is known exactly at the target date, which is when a CSM can act on it.")


def ttv_vs_retention(ws, criteria=None, *, stage: str | None = None,
                     buckets: Sequence[int] = (15, 30, 45, 60, 90), as_of=None,
                     alpha: float = 0.05, small_sample: int = 30) -> TTVRetention:
    """Does faster time-to-value go with better retention? Landmark hazards and Cox.

    Two landmark analyses (time-to-value and churn dates as in :func:`time_to_value`:
    the churn date is that of the account's first churn episode, so an account that
    lapsed and came back counts as churned when it first lapsed):

    - **Within target** (Cox): each account with a target is followed from its
      landmark = clock start + its segment's target days, if the landmark is on or
      before the as-of date and the account had not churned by then. Covariate: the
      stage was *not* reached within the target (reference: reached within target).
      Cox proportional hazards (statsmodels ``PHReg``, Efron ties) of the time from the
      landmark to churn (censored at the as-of date), stratified by segment (each
      segment has its own baseline hazard). ``exp(b)`` is the churn hazard ratio.
    - **TTV buckets**: accounts still customers ``buckets[-1]`` days after the clock
      start are grouped by days to the stage (``<= 15``, ``16-30``, ...; "not within
      90 days" for the rest) and followed from that landmark: churns per account-year
      (exact Poisson interval), Kaplan-Meier retention 365 days after the landmark, and
      Cox hazard ratios vs the fastest bucket (stratified by segment).

    Following accounts from a landmark fixed in advance avoids immortal-time bias (see
    :attr:`TTVRetention.note`).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    stage : str, optional
        Default: the last stage ("value").
    buckets : list of int
        Upper bounds (days, inclusive) of the TTV buckets; the last one is the landmark.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    alpha : float
        1 - confidence level.
    small_sample : int
        Buckets with fewer accounts are flagged.

    Returns
    -------
    TTVRetention
    """
    alpha = check_alpha(alpha)
    edges = [int(b) for b in buckets]
    if not edges or any(b <= 0 for b in edges) or edges != sorted(set(edges)):
        raise ValueError(f"buckets must be increasing whole days > 0, got {list(buckets)}")
    ttv, st = stage_ttv(ws, criteria, stage, as_of=as_of, by=None, ttv=None)
    as_of_d = resolve_as_of(ws, as_of)
    as_of_ts = pd.Timestamp(as_of_d)
    z = z_value(alpha)
    obs = ttv[ttv["status"].isin(OBSERVED)].copy()
    seg = obs["segment"] if "segment" in obs else pd.Series(ALL_ACCOUNTS, index=obs.index)
    obs["_stratum"] = seg.astype("str").where(seg.notna(), MISSING)

    # -- landmark at the target ------------------------------------------------------
    excluded = {"no_target": int(obs["target_days"].isna().sum())}
    lm = obs[obs["target_days"].notna()].copy()
    lm["landmark"] = lm["clock_start"] + pd.to_timedelta(lm["target_days"], unit="D")
    future = lm["landmark"] > as_of_ts
    excluded["landmark_after_as_of"] = int(future.sum())
    lm = lm[~future]
    gone = lm["churn_date"].notna() & (lm["churn_date"] <= lm["landmark"])
    excluded["churned_before_landmark"] = int(gone.sum())
    lm = lm[~gone]
    lm["within_target"] = (lm["reached"] & (lm["days"] <= lm["target_days"])).astype(bool)
    end = lm["churn_date"].where(lm["churn_date"].notna(), as_of_ts)
    lm["days_after"] = (end - lm["landmark"]).dt.days.astype(float)
    lm["churned"] = lm["churn_date"].notna()
    cox_rows = []
    x = pd.DataFrame({"missed_target": (~lm["within_target"]).astype(float)})
    cox_rows += _cox_rows(
        "within target (landmark at the target)", x, lm, {"missed_target": (
            "did not reach the stage within target", "reached within target",
            ~lm["within_target"])}, z)

    # -- landmark at the last bucket edge -----------------------------------------------
    h = edges[-1]
    bk = obs.copy()
    bk["landmark"] = bk["clock_start"] + pd.Timedelta(days=h)
    bk = bk[bk["landmark"] <= as_of_ts]
    bk = bk[~(bk["churn_date"].notna() & (bk["churn_date"] <= bk["landmark"]))]
    labels = _bucket_labels(edges)
    order = np.full(len(bk), len(edges))
    days = bk["days"].to_numpy(float)
    reached = bk["reached"].to_numpy(bool)
    for i in range(len(edges) - 1, -1, -1):
        order = np.where(reached & (days <= edges[i]), i, order)
    bk["order"] = order
    bk["bucket"] = [labels[i] for i in order]
    end = bk["churn_date"].where(bk["churn_date"].notna(), as_of_ts)
    bk["days_after"] = (end - bk["landmark"]).dt.days.astype(float)
    bk["churned"] = bk["churn_date"].notna()
    present = sorted(bk["order"].unique())
    ref = present[0] if present else 0
    xb = pd.DataFrame({f"b{i}": (bk["order"] == i).astype(float) for i in present if i != ref})
    terms = {f"b{i}": (labels[i], labels[ref], (bk["order"] == i).to_numpy()) for i in present
             if i != ref}
    bucket_cox = _cox_rows(f"TTV buckets (landmark at {h} days)", xb, bk, terms, z)
    cox_rows += bucket_cox
    hr = {r["term"]: r for r in bucket_cox}
    rows = []
    for i in present:
        g = bk[bk["order"] == i]
        k, years = int(g["churned"].sum()), float(g["days_after"].sum()) / 365.25
        lo, hi = poisson_ci(k, years, alpha)
        km = kaplan_meier(g["days_after"], g["churned"])
        s, se = km.at(365.0)
        slo, shi = loglog_interval(s, se, z)
        r = hr.get(labels[i], {})
        rows.append({"bucket": labels[i], "order": int(i), "accounts": len(g), "churned": k,
                     "account_years": years,
                     "churn_rate": k / years if years > 0 else math.nan,
                     "rate_lower": lo, "rate_upper": hi, "retained_12m": s,
                     "retained_lower": slo, "retained_upper": shi,
                     "hazard_ratio": r.get("hazard_ratio", 1.0 if i == ref else math.nan),
                     "hr_lower": r.get("lower", math.nan), "hr_upper": r.get("upper", math.nan),
                     "p_value": r.get("p_value", math.nan),
                     "small_sample": len(g) < small_sample, "landmark_days": h})
    bucket_cols = ["bucket", "order", "accounts", "churned", "account_years", "churn_rate",
                   "rate_lower", "rate_upper", "retained_12m", "retained_lower",
                   "retained_upper", "hazard_ratio", "hr_lower", "hr_upper", "p_value",
                   "small_sample", "landmark_days"]
    accounts = lm.assign(years_after=lm["days_after"] / 365.25)
    accounts = accounts[[c for c in ("account_id", "segment", "landmark", "within_target",
                                     "years_after", "churned") if c in accounts]]
    return TTVRetention(buckets=pd.DataFrame(rows, columns=bucket_cols),
                        cox=pd.DataFrame(cox_rows, columns=_COX_COLS),
                        accounts=accounts.reset_index(drop=True), excluded=excluded,
                        note=_LANDMARK_NOTE.format(h=h),
                        notes=(_LANDMARK_NOTE.format(h=h),))


_COX_COLS = ["model", "term", "reference", "hazard_ratio", "lower", "upper", "p_value",
             "accounts", "events", "n", "n_events", "strata"]


def _bucket_labels(edges: Sequence[int]) -> list[str]:
    labels, lo = [], 0
    for i, e in enumerate(edges):
        labels.append(f"≤ {e} days" if i == 0 else f"{lo + 1}–{e} days")
        lo = e
    labels.append(f"not within {edges[-1]} days")
    return labels


def _cox_rows(model: str, x: pd.DataFrame, frame: pd.DataFrame, terms: Mapping, z: float
              ) -> list[dict]:
    """Stratified Cox fit of ``frame.days_after`` / ``churned`` on ``x``; one row per term."""
    import statsmodels.api as sm

    time = frame["days_after"].to_numpy(float)
    status = frame["churned"].to_numpy(int)
    strata = frame["_stratum"].to_numpy()
    n, n_events = len(frame), int(status.sum())
    rows = []
    fit = None
    usable = [c for c in x.columns if x[c].nunique() > 1]
    if n_events > 0 and usable:
        try:
            fit = sm.PHReg(time, x[usable].to_numpy(float), status=status, strata=strata,
                           ties="efron").fit(disp=False)
        except (np.linalg.LinAlgError, ValueError):  # pragma: no cover - degenerate data
            fit = None
    for name, (term, reference, mask) in terms.items():
        mask = np.asarray(mask, dtype=bool)
        row = {"model": model, "term": term, "reference": reference, "hazard_ratio": math.nan,
               "lower": math.nan, "upper": math.nan, "p_value": math.nan,
               "accounts": int(mask.sum()), "events": int(status[mask].sum()), "n": n,
               "n_events": n_events, "strata": "segment"}
        if fit is not None and name in usable:
            j = usable.index(name)
            b, se = float(fit.params[j]), float(fit.bse[j])
            row.update(hazard_ratio=math.exp(b), lower=math.exp(b - z * se),
                       upper=math.exp(b + z * se), p_value=float(fit.pvalues[j]))
        rows.append(row)
    return rows



# ======================================================================================
# Does a CS activity help?
# ======================================================================================
OUTCOMES = ("ttv", "retention_12m", "nps")


@dataclass(frozen=True)
class ActivityEffect(Result):
    """Result of :func:`activity_effect`.

    Attributes
    ----------
    estimates : pandas.DataFrame
        Two rows, ``estimate`` = ``"naive"`` and ``"adjusted"``: ``activity``,
        ``outcome``, ``measure``, ``treated_accounts``, ``control_accounts``,
        ``treated_value``, ``control_value``, ``difference`` (treated - control),
        ``lower``, ``upper``, ``p_value``, ``strata_used``, ``strata_dropped``,
        ``treated_dropped`` (treated accounts in strata without a comparison),
        ``adjusted_for``. Also :meth:`summary`.
    strata : pandas.DataFrame
        One row per stratum of the adjusted estimate: the ``adjust_for`` columns (binned
        for numbers), ``treated``, ``control``, ``treated_value``, ``control_value``,
        ``difference``, ``se``, ``weight``, ``used``.
    accounts : pandas.DataFrame
        One row per eligible account: ``account_id``, ``treated``, ``stratum`` and the
        outcome's inputs (for ``"ttv"``: ``time`` = days from the landmark).
    statement : str
        The result in words, saying it is an association.
    activity, outcome : str
        What was compared.
    landmark_days : int or None
        For ``outcome="ttv"``: plays on days 0 to ``landmark_days - 1`` after the clock
        start are landmarks (``window_days``); None otherwise.
    landmark_accounts : int or None
        Accounts in at least one landmark comparison (still onboarding on a play day);
        None for other outcomes.
    landmark_excluded : dict
        Accounts left out of the played group: ``play_on_or_after_value`` (their first
        play came on or after the day they reached the stage).
    """

    estimates: pd.DataFrame
    strata: pd.DataFrame
    accounts: pd.DataFrame
    statement: str
    activity: str = ""
    outcome: str = ""
    landmark_days: int | None = None
    landmark_accounts: int | None = None
    landmark_excluded: Mapping[str, int] = field(default_factory=dict)

    title = "Effect of a CS play"

    def summary(self) -> pd.DataFrame:
        """The naive and adjusted differences with their intervals."""
        return self.estimates


def activity_effect(ws, activity: str, outcome: str = "ttv",
                    adjust_for: Sequence[str] = ("segment", "employees"), *, criteria=None,
                    stage: str | None = None, window_days: int = 30, horizon_days: int = 180,
                    bins: int = 4, as_of=None, alpha: float = 0.05) -> ActivityEffect:
    """Do accounts that received a CS activity do better? Naive and adjusted differences.

    **Treated** accounts had at least one ``cs_activities`` row of ``activity`` within the
    first ``window_days`` days of their onboarding clock (local days: clock start <=
    date of ``occurred_at`` < clock start + ``window_days``, in the workspace's time
    zone). Accounts whose window has not closed by the as-of date, or without a clock
    start, are left out (the treatment is not known yet). Outcomes, each
    censoring-aware:

    - ``"ttv"``: a **landmark at each play** (metrics.md, "effect of a CS play", the
      play as a time-varying covariate): for each day d < ``window_days`` on which an
      account had its first play (local days since its clock start), the accounts still
      onboarding on day d that had the play that day are compared with those still
      onboarding that had not had it yet, the clock restarted at day d; a comparison
      account that gets the play later is censored then. The outcome is the restricted
      mean days from day d to the stage up to ``horizon_days`` (area under the
      Kaplan-Meier curve), with the Kaplan-Meier variance ``sum A_j^2 d_j / (n_j (n_j -
      d_j))``, A_j the area under S from event time t_j to the horizon; the days are
      averaged with weights proportional to the played accounts (variance: played parts
      independent, comparison parts taken as fully correlated, which is conservative).
      Negative difference = faster. Classifying an account by a play that came after its
      clock started while counting days from the clock start would credit the played
      accounts with the days they had to stay un-onboarded to receive it (immortal-time
      bias: about +12 days with no true effect in a simulation); a single landmark at a
      fixed day L would miss an effect already spent before L. Accounts whose first play
      came on or after the day they reached the stage are not treated (counted in
      :attr:`ActivityEffect.landmark_excluded`).
    - ``"retention_12m"``: Kaplan-Meier share still a customer 365 days after signup
      (:func:`cs_analysis.retention.account_lifetimes`), Greenwood variance. Accounts
      that churned before their window closed are left out (they had no chance to get
      the activity).
    - ``"nps"``: NPS = (promoters - detractors) / responses x 100 of the ``nps``
      responses the accounts gave after their window closed, up to the as-of date (with
      ``respondent_id``, each respondent's latest response per calendar quarter);
      delta-method variance (promoters 9-10, detractors 0-6; responses treated as
      independent).

    The **naive** difference compares all treated with all other eligible accounts. The
    **adjusted** one compares them within strata of ``adjust_for``: categorical columns
    as they are (nulls as ``"(missing)"``), numeric ones cut into ``bins`` quantile bins
    within each combination of the categorical ones. Strata with fewer than two treated
    or two untreated accounts are dropped (counted). The stratum differences are
    averaged with weights proportional to their treated accounts (the effect among the
    accounts that received the activity); variance = sum of weight^2 x (variance
    treated + variance untreated). Intervals are normal, ``difference +- z x se``.

    This is an association, not proof of an effect: accounts that received the activity
    may differ in ways not in ``adjust_for``.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; needs ``cs_activities``.
    activity : str
        A ``cs_activities.activity`` value, e.g. ``"training"``.
    outcome : str
        ``"ttv"``, ``"retention_12m"`` or ``"nps"``.
    adjust_for : list of str
        ``accounts`` columns.
    criteria : Criteria, str, Path or mapping, optional
        Onboarding criteria (clock start, stage); default :func:`default_criteria_path`.
    stage : str, optional
        For ``"ttv"``; default the last stage ("value").
    window_days : int
        Days from the clock start in which the activity counts.
    horizon_days : int
        Horizon of the restricted mean TTV.
    bins : int
        Quantile bins of numeric ``adjust_for`` columns.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    alpha : float
        1 - confidence level.

    Returns
    -------
    ActivityEffect
    """
    check_choice("outcome", outcome, OUTCOMES)
    window_days = check_int("window_days", window_days, minimum=1)
    horizon_days = check_int("horizon_days", horizon_days, minimum=1)
    bins = check_int("bins", bins, minimum=1)
    alpha = check_alpha(alpha)
    adjust_for = by_list(adjust_for)
    as_of_d = resolve_as_of(ws, as_of)
    as_of_ts = pd.Timestamp(as_of_d)
    acts = ws.table("cs_activities", columns=["account_id", "activity", "occurred_at"])
    known = known_values(ws, "cs_activities", "activity")
    if activity not in known:
        raise ValueError(f"no cs_activities of activity {activity!r}; the workspace's "
                         f"activities are: {', '.join(known) or '(none)'}")
    ttv = time_to_value(ws, criteria, stage if outcome == "ttv" else None, as_of=as_of_d,
                        by=adjust_for)
    crit = load_criteria(criteria)
    st = crit.stage(stage) if outcome == "ttv" else crit.stages[-1]
    ttv = ttv[ttv["stage"] == st.name]
    base = ttv[ttv["status"].isin(OBSERVED)].copy()
    landmark = int(window_days)
    excluded: dict[str, int] = {}
    base["_w0"] = base["clock_start"]
    base["_w1"] = base["clock_start"] + pd.Timedelta(days=landmark)
    if outcome != "ttv":  # the treatment must be known: the window has closed
        base = base[base["_w1"] <= as_of_ts + DAY]
    base["_w1c"] = utc_bounds(base["_w1"], ws.timezone)
    base["_w0"] = utc_bounds(base["_w0"], ws.timezone)
    windows = base[["account_id", "_w0", "_w1c"]].astype(
        {"account_id": "str", "_w0": "datetime64[us]", "_w1c": "datetime64[us]"})
    a = acts.filter(acts.activity == activity, acts.occurred_at < end_ts(as_of_d, ws.timezone))
    first_play = pd.Series(dtype="datetime64[us]")
    if not windows.empty:
        w = ibis.memtable(windows)
        j = a.join(w, "account_id")
        j = j.filter(j.occurred_at >= j._w0, j.occurred_at < j._w1c)
        got = j.group_by("account_id").agg(_first=j.occurred_at.min()).to_pandas()
        first_play = pd.Series(pd.to_datetime(got["_first"]).astype("datetime64[us]")
                               .to_numpy(), index=got["account_id"].astype("str").to_numpy())
    played = first_play.reindex(base["account_id"].astype("str")).to_numpy()
    base["treated"] = pd.notna(played)
    if outcome == "ttv":
        # the local day (since the clock start) of the first play; treated = before value
        day = (local_dates(pd.Series(played, index=base.index), ws.timezone)
               - base["clock_start"]).dt.days
        base["_play"] = day.astype("float")
        base["treated"] = base["_play"].notna() & (base["_play"] < base["days"])
        excluded = {"play_on_or_after_value": int((base["_play"].notna()
                                                   & ~base["treated"]).sum())}
    if outcome == "ttv":
        base["_time"] = base["days"].astype(float)
        base["_event"] = base["reached"].astype(int)
        measure = (f"restricted mean days from the play (landmark) to {st.label.lower()} "
                   f"(up to {int(horizon_days)} days)")
    elif outcome == "retention_12m":
        from cs_analysis.retention import account_lifetimes

        lt = account_lifetimes(ws, as_of=as_of_d).set_index("account_id")
        base = base[base["account_id"].isin(lt.index)].copy()
        life = lt.reindex(base["account_id"])
        churn = pd.to_datetime(life["churn_date"]).to_numpy()
        alive = pd.isna(churn) | (churn > base["_w1"].to_numpy())
        base = base[alive].copy()
        life = lt.reindex(base["account_id"])
        base["_time"] = life["lifetime_days"].to_numpy(float)
        base["_event"] = life["churned"].to_numpy(int)
        measure = "share still a customer 365 days after signup"
    else:
        w1 = base[["account_id", "_w1"]].assign(_w1=utc_bounds(base["_w1"], ws.timezone))
        resp = _nps_responses(ws, as_of_d, w1)
        base = base.merge(resp, on="account_id", how="left")
        for c in ("responses", "promoters", "detractors"):
            base[c] = base[c].fillna(0).astype("int64")
        base = base[base["responses"] > 0].copy()
        measure = "NPS of responses after the window (points)"

    strata_cols = []
    for col in adjust_for:
        lab = f"_s_{col}"
        base[lab] = base[col].astype("str").where(base[col].notna(), MISSING)
        strata_cols.append((col, lab))
    cat = [lab for col, lab in strata_cols
           if not (pd.api.types.is_numeric_dtype(base[col])
                   and not pd.api.types.is_bool_dtype(base[col]))]
    for col, lab in strata_cols:
        if lab in cat:
            continue
        base[lab] = _quantile_bins(base, col, cat, int(bins))
    labs = [lab for _, lab in strata_cols]
    stratum = pd.Series(ALL_ACCOUNTS, index=base.index, dtype="str")
    for k, lab in enumerate(labs):
        part = base[lab].astype("str")
        stratum = part if k == 0 else stratum + " · " + part
    base["stratum"] = stratum

    def arm(frame):
        if outcome == "retention_12m":
            km = kaplan_meier(frame["_time"], frame["_event"])
            s, se = km.at(365.0)
            return s, se ** 2 if not is_missing(se) else math.nan
        return _nps(frame)

    z = z_value(alpha)

    def compare(frame):
        """(treated value, its variance, control value, its variance, n treated, n control)."""
        if outcome == "ttv":
            return _play_time_effect(frame["_time"].to_numpy(float),
                                     frame["_event"].to_numpy(bool),
                                     frame["_play"].to_numpy(float), landmark,
                                     float(horizon_days))
        t, c = frame[frame["treated"]], frame[~frame["treated"]]
        if len(t) < 1 or len(c) < 1:
            return math.nan, math.nan, math.nan, math.nan, len(t), len(c)
        (tv, tvar), (cv, cvar) = arm(t), arm(c)
        return tv, tvar, cv, cvar, len(t), len(c)

    rows = []
    tv, tvar, cv, cvar, n_t, n_c = compare(base)
    ok = not any(is_missing(v) for v in (tv, tvar, cv, cvar))
    diff, se = (tv - cv, math.sqrt(tvar + cvar)) if ok else (math.nan, math.nan)
    rows.append(_effect_row("naive", tv, cv, diff, se, n_t, n_c, z))
    strata_rows = []
    for key, g in base.groupby(labs if labs else "stratum", sort=True, dropna=False):
        row = dict(zip(adjust_for, key if isinstance(key, tuple) else (key,), strict=False))
        a_v, a_var, b_v, b_var, n_t, n_c = compare(g)
        row.update(treated=n_t, control=n_c, treated_value=math.nan,
                   control_value=math.nan, difference=math.nan, se=math.nan, weight=0.0,
                   used=False)
        if n_t >= 2 and n_c >= 2 and not any(is_missing(v) for v in (a_v, a_var, b_v,
                                                                       b_var)):
            row.update(treated_value=a_v, control_value=b_v, difference=a_v - b_v,
                       se=math.sqrt(a_var + b_var), used=True)
        strata_rows.append(row)
    strata = pd.DataFrame(strata_rows)
    used = strata[strata["used"]] if not strata.empty else strata
    if len(used):
        wts = used["treated"] / used["treated"].sum()
        strata.loc[used.index, "weight"] = wts
        adj = float((wts * used["difference"]).sum())
        adj_se = float(math.sqrt((wts ** 2 * used["se"] ** 2).sum()))
        tv_a = float((wts * used["treated_value"]).sum())
        cv_a = float((wts * used["control_value"]).sum())
        rows.append(_effect_row("adjusted", tv_a, cv_a, adj, adj_se, int(used["treated"].sum()),
                                int(used["control"].sum()), z))
    else:
        rows.append(_effect_row("adjusted", math.nan, math.nan, math.nan, math.nan, 0, 0, z))
    summary = pd.DataFrame(rows)
    summary.insert(1, "activity", activity)
    summary.insert(2, "outcome", outcome)
    summary.insert(3, "measure", measure)
    n_dropped = int((~strata["used"]).sum()) if not strata.empty else 0
    summary["strata_used"] = [1, len(used)]
    summary["strata_dropped"] = [0, n_dropped]
    summary["treated_dropped"] = [0, int(strata.loc[~strata["used"], "treated"].sum())
                                  if not strata.empty else 0]
    summary["adjusted_for"] = ", ".join(adjust_for) or "(nothing)"
    keep = ["account_id", "treated", "stratum"] + (
        ["_time", "_event"] if outcome != "nps" else ["responses", "promoters", "detractors"])
    if outcome == "ttv":
        keep.append("_play")
    accounts = base[keep].rename(columns={"_time": "time", "_event": "event",
                                          "_play": "play_day"}).reset_index(drop=True)
    statement = _effect_statement(summary, activity, outcome, adjust_for, window_days, alpha)
    notes: tuple[str, ...] = ()
    kept = None
    if outcome == "ttv":
        plays = base["_play"][base["_play"] < landmark]
        kept = int((base["days"] > plays.min()).sum()) if len(plays) else 0
        notes = (f"Landmark at each play: an account that had {activity} on day d (d < "
                 f"{landmark}) is compared with the accounts still onboarding on day d that "
                 f"had not had it yet (followed until they get it), days counted from day d; "
                 f"{int(summary.iloc[0]['treated_accounts'])} played accounts and "
                 f"{int(summary.iloc[0]['control_accounts'])} comparison accounts; "
                 f"{excluded['play_on_or_after_value']} had the play only on or after "
                 "reaching the stage (not counted as treated).",)
    return ActivityEffect(estimates=summary, strata=strata, accounts=accounts,
                          statement=statement, activity=activity, outcome=outcome,
                          landmark_days=landmark if outcome == "ttv" else None,
                          landmark_accounts=kept,
                          landmark_excluded=excluded, notes=notes)


def _play_time_effect(days, reached, play, window: int, tau: float):
    """Restricted mean days to the stage from each play day, played vs not yet played.

    Sequential landmarks (one per day d < ``window`` on which someone had the play): the
    accounts still onboarding on day d (``days > d``) that had the play on day d against
    those that had not had it by day d, each followed from day d; a comparison account
    that gets the play later is censored then (it stops being a "not yet" account). The
    landmark days' restricted means are averaged with weights proportional to the played
    accounts. Variance: the played accounts' parts are independent (each account is
    played once); the comparison accounts recur across days, so their variance is taken
    as fully correlated, ``(sum w_d se_d)^2``, which is conservative.

    Returns
    -------
    tuple
        ``(played value, variance, comparison value, variance, played accounts,
        comparison accounts)``; NaN values when no day has both.
    """
    days = np.asarray(days, float)
    reached = np.asarray(reached, bool)
    play = np.asarray(play, float)
    vals, n_played, controls = [], 0, np.zeros(len(days), bool)
    first = play[~np.isnan(play) & (play < window)]
    for d in np.unique(first):
        still = days > d
        t = still & (play == d)
        c = still & ~(play <= d)  # NaN (never played) compares False: a comparison
        if not t.any() or not c.any():
            continue
        later = ~np.isnan(play[c]) & (play[c] < days[c])
        tc = np.where(later, play[c], days[c]) - d
        ec = reached[c] & ~later
        a, va = _rmst(days[t] - d, reached[t], tau)
        b, vb = _rmst(tc, ec, tau)
        if any(is_missing(v) for v in (a, va, b, vb)):
            continue
        vals.append((int(t.sum()), a, va, b, vb))
        n_played += int(t.sum())
        controls |= c
    if not vals:
        return math.nan, math.nan, math.nan, math.nan, n_played, int(controls.sum())
    w = np.array([v[0] for v in vals], float)
    w /= w.sum()
    a, va, b, vb = (np.array([v[k] for v in vals], float) for k in range(1, 5))
    return (float((w * a).sum()), float((w ** 2 * va).sum()), float((w * b).sum()),
            float((w * np.sqrt(vb)).sum() ** 2), n_played, int(controls.sum()))


def _effect_row(estimate, tv, cv, diff, se, nt, nc, z) -> dict:
    from scipy.stats import norm

    ok = not (is_missing(diff) or is_missing(se)) and se > 0
    return {"estimate": estimate, "treated_accounts": int(nt), "control_accounts": int(nc),
            "treated_value": tv, "control_value": cv, "difference": diff,
            "lower": diff - z * se if ok else math.nan,
            "upper": diff + z * se if ok else math.nan,
            "p_value": float(2 * norm.sf(abs(diff / se))) if ok else math.nan}


def _quantile_bins(frame: pd.DataFrame, col: str, within: list[str], bins: int) -> pd.Series:
    """Quantile bin labels of a numeric column within groups of ``within`` columns."""
    out = pd.Series(MISSING, index=frame.index, dtype="str")
    parts = [g.index for _, g in frame.groupby(within, sort=False)] if within else [
        frame.index]
    for idx in parts:
        x = frame.loc[idx, col].astype(float)
        ok = x.notna()
        if not ok.any():
            continue
        ranks = x[ok].rank(method="first")
        q = np.ceil(ranks / len(ranks) * bins).astype(int).clip(1, bins)
        for b in sorted(q.unique()):
            members = q[q == b].index
            lo, hi = x[members].min(), x[members].max()
            out[members] = f"{col} {_num(lo)}–{_num(hi)}"
    return out


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _rmst(time, event, tau: float) -> tuple[float, float]:
    """Restricted mean up to ``tau`` of a Kaplan-Meier curve, and its variance."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    if len(time) == 0:
        return math.nan, math.nan
    km = kaplan_meier(time, event)
    keep = km.times < tau
    t, s = km.times[keep], km.surv[keep]
    n, d = km.n_risk[keep], km.n_events[keep]
    grid = np.r_[0.0, t, tau]
    level = np.r_[1.0, s]
    widths = np.diff(grid)
    area = float((level * widths).sum())
    # area under S from each event time to tau
    tail = np.cumsum((level * widths)[::-1])[::-1][1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(tail > 0, tail ** 2 * d / (n * (n - d)), 0.0)
    return area, float(np.nansum(terms))


def _nps(frame: pd.DataFrame) -> tuple[float, float]:
    n = float(frame["responses"].sum())
    if n <= 0:
        return math.nan, math.nan
    pp, pd_ = frame["promoters"].sum() / n, frame["detractors"].sum() / n
    return 100 * (pp - pd_), 100 ** 2 * (pp + pd_ - (pp - pd_) ** 2) / n


def _nps_responses(ws, as_of: dt.date, windows: pd.DataFrame) -> pd.DataFrame:
    """Per account: NPS responses, promoters, detractors after its window (engine)."""
    cols = ["account_id", "survey", "score", "responded_at"]
    has_resp = ws.has("survey_responses", "respondent_id")
    sr = ws.table("survey_responses", columns=cols + (["respondent_id"] if has_resp else []))
    sr = sr.filter(sr.survey == "nps", sr.responded_at < end_ts(as_of, ws.timezone))
    w = ibis.memtable(windows.astype({"account_id": "str", "_w1": "datetime64[us]"}))
    j = sr.join(w, "account_id")
    j = j.filter(j.responded_at >= j._w1)
    if has_resp:
        wave = period_expr(j.responded_at, "quarter", ws.timezone)
        j = j.mutate(_wave=wave)
        win = ibis.window(group_by=[j.account_id, j.respondent_id, j._wave],
                          order_by=ibis.desc(j.responded_at))
        j = j.mutate(_rn=ibis.row_number().over(win))
        j = j.filter(j.respondent_id.isnull() | (j._rn == 0))
    agg = j.group_by("account_id").agg(
        # ifelse, not bool.cast: PostgreSQL cannot cast boolean to bigint
        responses=j.count(), promoters=ibis.ifelse(j.score >= 9, 1, 0).cast("int64").sum(),
        detractors=ibis.ifelse(j.score <= 6, 1, 0).cast("int64").sum()).to_pandas()
    agg["account_id"] = agg["account_id"].astype("str")
    return agg


def _effect_statement(summary, activity, outcome, adjust_for, window_days, alpha) -> str:
    naive, adj = summary.iloc[0], summary.iloc[1]
    level = f"{(1 - alpha) * 100:.0f}%"
    unit = {"ttv": " days", "retention_12m": " points", "nps": " NPS points"}[outcome]
    scale = 100.0 if outcome == "retention_12m" else 1.0

    def fmt(r):
        if is_missing(r["difference"]):
            return "not computable"
        return (f"{r['difference'] * scale:+.1f}{unit} ({level} CI "
                f"{r['lower'] * scale:+.1f} to {r['upper'] * scale:+.1f})")

    what = {"ttv": ("the days still needed to reach value from the day of the play, "
                    "against accounts still onboarding that day that had not had it yet "
                    "(restricted mean; negative = faster)"),
            "retention_12m": "12-month retention", "nps": "NPS"}[outcome]
    adj_text = ", ".join(adjust_for) or "nothing"
    return (f"Accounts that received {activity} within {window_days} days of their "
            f"onboarding start, compared with those that did not, on {what}: naive "
            f"difference {fmt(naive)} ({int(naive['treated_accounts'])} vs "
            f"{int(naive['control_accounts'])} accounts); comparing accounts with the same "
            f"{adj_text}: {fmt(adj)}. This is an association, not proof that {activity} "
            "causes the difference: accounts that received it may differ in other ways "
            f"that are not adjusted for.")

