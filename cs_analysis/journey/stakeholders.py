"""The people at a customer: one account's stakeholder map and which gaps go with churn."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cs_analysis.errors import check_alpha, check_int
from cs_analysis.journey.compare import escape_text as _e
from cs_analysis.journey.maps import CHAMPION_ROLES, KEY_ROLES, ROLES, SMALL_SAMPLE
from cs_analysis.results import Result
from cs_analysis.time import local_dates, resolve_as_of

_SMALL = SMALL_SAMPLE


def _div(a, b) -> float:
    return float(a) / float(b) if b else math.nan


# ======================================================================================
# Stakeholders
# ======================================================================================
def _people(ws, as_of: dt.date, accounts: Sequence[str] | None = None) -> pd.DataFrame:
    cols = [c for c in ("account_id", "person_id", "role", "name", "title", "domain",
                        "influence", "sentiment", "decision_style", "left_at")
            if ws.has("stakeholders", c)]
    t = ws.table("stakeholders", columns=["account_id", "person_id", "role"])
    if accounts is not None:
        t = t.filter(t.account_id.isin([str(a) for a in accounts]))
    df = t.select(*cols).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    if "left_at" in df:  # the local day the person left (a stored UTC timestamp, or a date)
        df["left_at"] = local_dates(df["left_at"], ws.timezone).astype("datetime64[us]")
    return df


def _champion_mask(people: pd.DataFrame, day: dt.date, champion_roles, min_sentiment
                   ) -> pd.Series:
    """Champions on local ``day``: still there (left after it), in a champion role, positive."""
    at = pd.Timestamp(day)
    present = people["left_at"].isna() | (people["left_at"] > at) if "left_at" in people \
        else pd.Series(True, index=people.index)
    champ = present & people["role"].isin(list(champion_roles))
    if "sentiment" in people and min_sentiment is not None:
        champ &= people["sentiment"].astype("Float64").fillna(-99) >= min_sentiment
    return champ.astype(bool)


def stakeholder_split(ws, *, as_of: dt.date, split: str) -> pd.Series:
    """Per account: its most common decision style, or its champions' domains."""
    if not ws.has("stakeholders"):
        return pd.Series(dtype="str")
    people = _people(ws, as_of)
    if split == "decision_style":
        if "decision_style" not in people:
            return pd.Series(dtype="str")
        d = people.dropna(subset=["decision_style"])
        return d.groupby("account_id")["decision_style"].agg(
            lambda s: s.value_counts().sort_index().idxmax())
    champ = _champion_mask(people, as_of, CHAMPION_ROLES, 1)
    doms = people[champ].groupby("account_id")["domain"].agg(set) if "domain" in people \
        else pd.Series(dtype=object)

    def label(s):
        return "both" if len(s) > 1 else next(iter(s))

    out = doms.map(label)
    allacc = people["account_id"].unique()
    return out.reindex(allacc).fillna("none")


@dataclass(frozen=True)
class StakeholderMap(Result):
    """Result of :func:`stakeholder_map`.

    Attributes
    ----------
    account_id : str
    people : pandas.DataFrame
        One row per person: ``person_id``, ``name``, ``title``, ``role``, ``domain``,
        ``influence``, ``sentiment``, ``decision_style``, ``left_at``, ``present`` (at
        the as-of date), ``champion``, ``key_person``, ``left_recently``; ordered by
        role (as in :data:`ROLES`), then influence.
    grid : pandas.DataFrame
        People present, by ``role`` (rows) and ``domain`` (columns).
    decision_style : str or None
        The account's most common decision style.
    flags : dict of str to bool
        ``no_technical_champion``, ``no_business_champion``, ``key_person_left``.
    departed : list of str
        Names (with roles) of key people who left in the last ``recent_days``.
    """

    account_id: str
    people: pd.DataFrame
    grid: pd.DataFrame
    decision_style: str | None
    flags: dict[str, bool]
    departed: list[str]

    title = "Stakeholder map"

    def summary(self) -> pd.DataFrame:
        """The people, by role: who is there, who champions, who left."""
        cols = ["role", "domain", "name", "title", "influence", "sentiment", "present",
                "champion", "left_at"]
        return self.people[[c for c in cols if c in self.people.columns]]

    def _repr_html_(self) -> str:
        return self.html()

    def html(self) -> str:
        """The map as an escaped HTML card: flags, then people by role and domain."""
        flags = [k.replace("_", " ") for k, v in self.flags.items() if v]
        flag_html = "".join(f'<span class="cs-flag">{_e(f)}</span>' for f in flags) or \
            '<span class="cs-flag-ok">no coverage gap</span>'
        rows = "".join(
            f'<tr class="{"cs-left" if not p.present else ""}"><td>{_e(p.role)}</td>'
            f'<td>{_e(getattr(p, "domain", ""))}</td><td>{_e(getattr(p, "name", ""))}</td>'
            f'<td>{_e(getattr(p, "title", ""))}</td><td>{_e(getattr(p, "influence", ""))}</td>'
            f'<td>{_e(getattr(p, "sentiment", ""))}</td>'
            f'<td>{"champion" if p.champion else ""}</td>'
            f'<td>{"left " + str(p.left_at.date()) if not p.present else ""}</td></tr>'
            for p in self.people.itertuples(index=False))
        return (f'<div class="cs-stakeholders"><div>{flag_html}</div>'
                f'<div>Decision style: {_e(self.decision_style or "unknown")}</div>'
                '<table class="cs-table-grid"><thead><tr><th>role</th><th>domain</th>'
                '<th>name</th><th>title</th><th>influence</th><th>sentiment</th><th></th>'
                f'<th></th></tr></thead><tbody>{rows}</tbody></table></div>')


def stakeholder_map(ws, account_id: str, *, as_of=None, recent_days: int = 90,
                    champion_roles: Sequence[str] = CHAMPION_ROLES,
                    key_roles: Sequence[str] = KEY_ROLES, min_sentiment: int | None = 1
                    ) -> StakeholderMap:
    """The people at one customer, by role and domain, with coverage flags.

    Definitions: a person is **present** at the as-of date when ``left_at`` is empty or
    after that day. A **champion** is a present person whose role is one of
    ``champion_roles`` and whose ``sentiment`` is at least ``min_sentiment`` (when the
    workspace has sentiment; None: any sentiment). Flags: **no technical champion** / **no
    business champion**: no champion of that ``domain``; **key person left**: a person in
    one of ``key_roles`` left in the ``recent_days`` days up to the as-of date.

    Parameters
    ----------
    ws : Workspace
    account_id : str
    as_of : date or str, optional
    recent_days : int
    champion_roles, key_roles : sequence of str
    min_sentiment : int, optional

    Returns
    -------
    StakeholderMap
    """
    as_of = resolve_as_of(ws, as_of)
    recent_days = check_int("recent_days", recent_days, minimum=0)
    people = _people(ws, as_of, [account_id])
    if people.empty:
        from cs_analysis.workspace import WorkspaceError

        raise WorkspaceError(f"no stakeholders recorded for account {account_id!r}")
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    left = people["left_at"] if "left_at" in people else pd.Series(pd.NaT, index=people.index)
    people["present"] = (left.isna() | (left >= end)).astype(bool)
    people["champion"] = _champion_mask(people, as_of, champion_roles, min_sentiment)
    people["key_person"] = people["role"].isin(list(key_roles))
    start = end - pd.Timedelta(days=recent_days)
    people["left_recently"] = (people["key_person"] & left.notna() & (left >= start)
                               & (left < end)).astype(bool)
    order = {r: i for i, r in enumerate(ROLES)}
    people = people.assign(_o=people["role"].map(order).fillna(len(ROLES)),
                           _i=-people["influence"].astype("Float64").fillna(0)
                           if "influence" in people else 0)
    people = people.sort_values(["_o", "_i", "person_id"]).drop(columns=["_o", "_i"])
    people = people.reset_index(drop=True)
    present = people[people["present"]]
    dom = "domain" if "domain" in people else None
    grid = (present.groupby(["role", dom]).size().unstack(fill_value=0) if dom
            else present.groupby("role").size().to_frame("people"))
    grid = grid.reindex([r for r in ROLES if r in grid.index] +
                        [r for r in grid.index if r not in ROLES])
    champs = people[people["champion"]]
    flags = {
        "no_technical_champion": dom is not None and not (champs[dom] == "technical").any(),
        "no_business_champion": dom is not None and not (champs[dom] == "business").any(),
        "key_person_left": bool(people["left_recently"].any()),
    }
    style = None
    if "decision_style" in people and people["decision_style"].notna().any():
        style = str(people["decision_style"].dropna().value_counts().sort_index().idxmax())
    departed = [f"{p.name if 'name' in people else p.person_id} ({p.role})"
                for p in people[people["left_recently"]].itertuples(index=False)]
    return StakeholderMap(str(account_id), people, grid, style, flags, departed)


def _rate_ratio(d1, e1, d0, e0, z) -> tuple[float, float, float]:
    if not (e1 > 0 and e0 > 0 and d1 > 0 and d0 > 0):
        rr = (d1 / e1) / (d0 / e0) if e1 > 0 and e0 > 0 and d0 > 0 else math.nan
        return rr, math.nan, math.nan
    rr = (d1 / e1) / (d0 / e0)
    se = math.sqrt(1 / d1 + 1 / d0)
    return rr, rr * math.exp(-z * se), rr * math.exp(z * se)


def stakeholder_coverage(ws, *, as_of=None, champion_roles: Sequence[str] = CHAMPION_ROLES,
                         key_roles: Sequence[str] = KEY_ROLES, min_sentiment: int | None = 1,
                         alpha: float = 0.05, small_sample: int = _SMALL) -> pd.DataFrame:
    """Which stakeholder gaps go with churn, across accounts.

    Each account is followed from signup to its churn date (churned) or the as-of date
    (censored), as in :func:`cs_analysis.retention.account_lifetimes`. Departures
    (``left_at``) are read as local dates in the workspace's time zone. Every gap is a
    time-varying state: the follow-up is split at the day the gap opens, the time before
    counts as exposure without the gap and the time after as exposure with it, and a
    churn counts with the gap when the gap had opened before it. So an account whose
    sponsor left late in its life contributes most of its time to "with a sponsor", and
    longer-lived accounts do not look worse just for having had more time to lose someone.

    - **no executive sponsor / decision maker / owner / heavy user / admin**: opens when
      the last person in that role leaves (at signup when the account has nobody in that
      role; never while one of them stays). People data record departures, not arrivals,
      so a person is taken to be there from signup until ``left_at``.
    - **no technical champion** / **no business champion**: likewise for the champions of
      that domain (role in ``champion_roles``, ``sentiment`` >= ``min_sentiment``).
    - **key person left**: opens at the first departure of a person in ``key_roles``.

    **churn_per_year** = churned accounts / account-years of exposure, with and without
    the gap; **rate_ratio** = with / without (the maximum-likelihood hazard ratio of an
    exponential model with the gap as a time-varying covariate), with a Wald interval on
    the log scale (sqrt(1/d1 + 1/d0)). ``churn_share`` = churned with the gap / accounts
    that had the gap, for reading, not for comparing.

    Parameters
    ----------
    ws : Workspace
    as_of : date or str, optional
        Keyword only; default the workspace's as-of date.
    champion_roles, key_roles : sequence of str
    min_sentiment : int, optional
    alpha : float
        0.05 gives 95% intervals.
    small_sample : int
        Gaps that fewer accounts had are flagged ``small_sample``.

    Returns
    -------
    pandas.DataFrame
        One row per gap: ``gap``, ``accounts`` (that had the gap during follow-up),
        ``churned`` (with the gap), ``churn_share``, ``exposure_years``, ``churn_per_year``,
        ``accounts_without`` (with some follow-up without it), ``churned_without``,
        ``exposure_years_without``, ``churn_per_year_without``, ``rate_ratio``, ``lower``,
        ``upper``, ``small_sample``.
    """
    from scipy.stats import norm

    from cs_analysis.retention import account_lifetimes

    alpha = check_alpha(alpha)
    small_sample = check_int("small_sample", small_sample, minimum=0)
    as_of = resolve_as_of(ws, as_of)
    z = float(norm.ppf(1 - alpha / 2))
    lt = account_lifetimes(ws, as_of=as_of)
    lt["account_id"] = lt["account_id"].astype("str")
    base = lt.set_index("account_id")
    signup = pd.to_datetime(base["signup_date"]).astype("datetime64[us]")
    end = signup + pd.to_timedelta(base["lifetime_days"], unit="D")
    churn = base["churned"].astype(bool)
    people = _people(ws, as_of, None)
    people = people[people["account_id"].isin(base.index)]
    left = people["left_at"] if "left_at" in people else pd.Series(pd.NaT, index=people.index)
    people = people.assign(left_at=left)

    def when_none_left(mask: pd.Series) -> pd.Series:
        """Day the last eligible person left; signup when none; NaT while one stays."""
        elig = people[mask]
        last = elig.groupby("account_id")["left_at"].agg(
            lambda s: pd.NaT if s.isna().any() else s.max())
        opened = pd.to_datetime(last.reindex(base.index)).astype("datetime64[us]")
        return opened.where(base.index.isin(elig["account_id"]), signup)

    opens: dict[str, pd.Series] = {}
    for r in ROLES:
        opens[f"no {r}"] = when_none_left(people["role"] == r)
    if "domain" in people:
        champ = people["role"].isin(list(champion_roles))
        if "sentiment" in people and min_sentiment is not None:
            champ &= people["sentiment"].astype("Float64").fillna(-99) >= min_sentiment
        for d in ("technical", "business"):
            opens[f"no {d} champion"] = when_none_left(champ & (people["domain"] == d))
    if "left_at" in people:
        key = people["role"].isin(list(key_roles)) & people["left_at"].notna()
        first = people[key].groupby("account_id")["left_at"].min()
        opens["key person left"] = pd.to_datetime(first.reindex(base.index)).astype(
            "datetime64[us]")
    rows = []
    for gap, opened in opens.items():
        opened = opened.clip(lower=signup)
        had = opened.notna() & (opened < end)
        split = opened.where(had, end)
        before = (split - signup).dt.days / 365.25
        after = (end - split).dt.days / 365.25
        rows.append(_coverage_row(gap, int((churn & had).sum()), int(had.sum()),
                                  float(after.sum()), int((churn & ~had).sum()),
                                  int((split > signup).sum()), float(before.sum()), z,
                                  small_sample))
    return pd.DataFrame(rows)


def _coverage_row(gap, d1, n1, e1, d0, n0, e0, z, small) -> dict:
    rr, lo, hi = _rate_ratio(float(d1), float(e1), float(d0), float(e0), z)
    return {"gap": gap, "accounts": int(n1), "churned": int(d1), "churn_share": _div(d1, n1),
            "exposure_years": float(e1), "churn_per_year": _div(d1, e1),
            "accounts_without": int(n0), "churned_without": int(d0),
            "exposure_years_without": float(e0), "churn_per_year_without": _div(d0, e0),
            "rate_ratio": rr, "lower": lo, "upper": hi, "small_sample": bool(n1 < small)}
