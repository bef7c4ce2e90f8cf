"""The people at a customer: one account's stakeholder map and which gaps go with churn."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cs_analysis.journey.compare import escape_text as _e
from cs_analysis.journey.maps import CHAMPION_ROLES, KEY_ROLES, ROLES, SMALL_SAMPLE
from cs_analysis.time import resolve_as_of

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
    if "left_at" in df:
        df["left_at"] = pd.to_datetime(df["left_at"])
    return df


def _champion_mask(people: pd.DataFrame, at: pd.Series, champion_roles, min_sentiment
                   ) -> pd.Series:
    present = people["left_at"].isna() | (people["left_at"] > at) if "left_at" in people \
        else pd.Series(True, index=people.index)
    champ = present & people["role"].isin(list(champion_roles))
    if "sentiment" in people and min_sentiment is not None:
        champ &= people["sentiment"].astype("Float64").fillna(-99) >= min_sentiment
    return champ.astype(bool)


def stakeholder_split(ws, as_of: dt.date, split: str) -> pd.Series:
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
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    champ = _champion_mask(people, pd.Series(end, index=people.index), CHAMPION_ROLES, 1)
    doms = people[champ].groupby("account_id")["domain"].agg(set) if "domain" in people \
        else pd.Series(dtype=object)

    def label(s):
        return "both" if len(s) > 1 else next(iter(s))

    out = doms.map(label)
    allacc = people["account_id"].unique()
    return out.reindex(allacc).fillna("none")


@dataclass
class StakeholderMap:
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
    people = _people(ws, as_of, [account_id])
    if people.empty:
        from cs_analysis.workspace import WorkspaceError

        raise WorkspaceError(f"no stakeholders recorded for account {account_id!r}")
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    left = people["left_at"] if "left_at" in people else pd.Series(pd.NaT, index=people.index)
    people["present"] = (left.isna() | (left >= end)).astype(bool)
    people["champion"] = _champion_mask(people, pd.Series(end, index=people.index),
                                        champion_roles, min_sentiment)
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
    (censored), as in :func:`cs_analysis.retention.account_lifetimes`. Gaps:

    - **no executive sponsor / decision maker / owner / heavy user / admin**, **no
      technical champion**, **no business champion**: measured on the people present on
      the account's last day followed (the day before churn, or the as-of date); the
      whole follow-up counts as exposure with the gap (a simplification: people data are
      a snapshot).
    - **key person left**: a person in ``key_roles`` left during the follow-up; the
      follow-up is split at the first such departure (exposure before it counts without
      the gap, after it with), so longer-lived accounts do not look worse just for having
      had more time to lose someone.

    **churn_per_year** = churned accounts / account-years of exposure, in the accounts (or
    time) with and without the gap; **rate_ratio** = with / without, with a Wald interval
    on the log scale (sqrt(1/d1 + 1/d0)). ``churn_share`` = churned / accounts (with the
    gap at the end) is given for reading, not for comparing.

    Returns
    -------
    pandas.DataFrame
        One row per gap: ``gap``, ``accounts`` (with the gap), ``churned``,
        ``churn_share``, ``exposure_years``, ``churn_per_year``, ``accounts_without``,
        ``churned_without``, ``exposure_years_without``, ``churn_per_year_without``,
        ``rate_ratio``, ``lower``, ``upper``, ``small_sample``.
    """
    from scipy.stats import norm

    from cs_analysis.retention import account_lifetimes

    as_of = resolve_as_of(ws, as_of)
    z = float(norm.ppf(1 - alpha / 2))
    lt = account_lifetimes(ws, as_of=as_of)
    lt["account_id"] = lt["account_id"].astype("str")
    lt["end"] = (pd.to_datetime(lt["signup_date"])
                 + pd.to_timedelta(lt["lifetime_days"], unit="D"))
    people = _people(ws, as_of, None)
    people = people.merge(lt[["account_id", "signup_date", "end"]], on="account_id")
    left = people["left_at"] if "left_at" in people else pd.Series(pd.NaT, index=people.index)
    present = left.isna() | (left >= people["end"])
    base = lt.set_index("account_id")
    years = base["lifetime_days"] / 365.25
    churn = base["churned"].astype(bool)
    gaps: dict[str, pd.Series] = {}
    roles_present = people[present].groupby("account_id")["role"].agg(set)
    roles_present = roles_present.reindex(base.index).map(
        lambda s: s if isinstance(s, set) else set())
    for r in ROLES:
        gaps[f"no {r}"] = roles_present.map(lambda s, r=r: r not in s)
    if "domain" in people:
        champ = _champion_mask(people, people["end"], champion_roles, min_sentiment)
        doms = people[champ].groupby("account_id")["domain"].agg(set).reindex(base.index)
        doms = doms.map(lambda s: s if isinstance(s, set) else set())
        gaps["no technical champion"] = doms.map(lambda s: "technical" not in s)
        gaps["no business champion"] = doms.map(lambda s: "business" not in s)
    rows = []
    for gap, has in gaps.items():
        has = has.astype(bool)
        rows.append(_coverage_row(gap, churn[has].sum(), has.sum(), years[has].sum(),
                                  churn[~has].sum(), (~has).sum(), years[~has].sum(), z,
                                  small_sample))
    if "left_at" in people:
        key = people["role"].isin(list(key_roles)) & left.notna() & (left < people["end"])
        first = people[key].groupby("account_id")["left_at"].min().reindex(base.index)
        signup = pd.to_datetime(base["signup_date"])
        before = ((first - signup).dt.days.clip(lower=0) / 365.25).where(first.notna(), years)
        after = (years - before).clip(lower=0)
        had = first.notna()
        # a churn counts with the gap when it came after the first key departure
        d1 = int((churn & had).sum())
        d0 = int((churn & ~had).sum())
        rows.append(_coverage_row("key person left", d1, int(had.sum()), float(after.sum()),
                                  d0, int((~had).sum()), float(before.sum()), z, small_sample,
                                  accounts_without=len(base)))
    out = pd.DataFrame(rows)
    out.attrs = {"as_of": as_of, "alpha": alpha}
    return out


def _coverage_row(gap, d1, n1, e1, d0, n0, e0, z, small, accounts_without=None) -> dict:
    rr, lo, hi = _rate_ratio(float(d1), float(e1), float(d0), float(e0), z)
    return {"gap": gap, "accounts": int(n1), "churned": int(d1), "churn_share": _div(d1, n1),
            "exposure_years": float(e1), "churn_per_year": _div(d1, e1),
            "accounts_without": int(n0 if accounts_without is None else accounts_without),
            "churned_without": int(d0), "exposure_years_without": float(e0),
            "churn_per_year_without": _div(d0, e0), "rate_ratio": rr, "lower": lo,
            "upper": hi, "small_sample": bool(n1 < small)}


