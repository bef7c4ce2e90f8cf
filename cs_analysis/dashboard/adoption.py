"""The product adoption dashboard (``dashboards/adoption.ipynb``).

Calls :mod:`cs_analysis.adoption` (feature adoption, stickiness, usage trend and drops,
seat utilisation) with the filters' scope; all numbers come from there. Account-level
results (usage trend, drop list, seats, per-account stickiness) are computed once for the
whole workspace and narrowed on each filter change; the feature × segment table is asked
of the engine per scope (from the load-time rollup, never the raw events).
"""

from __future__ import annotations

import math
from typing import ClassVar

import pandas as pd

from cs_analysis.adoption import (
    feature_adoption,
    seat_utilisation,
    stickiness,
    usage_drops,
    usage_trend,
)
from cs_analysis.dashboard.base import (
    KPI,
    Dashboard,
    Panel,
    View,
    account_filters,
    date_text,
    fit_chart,
    fmt_int,
    fmt_money,
    is_missing,
)
from cs_analysis.i18n import N_
from cs_analysis.time import to_date

__all__ = ["AdoptionDashboard"]

#: Axis, legend and tooltip titles of this dashboard's charts (English message ids, as
#: :mod:`cs_analysis.charts` writes them; translated by ``fit_chart(..., t=)``).
CHART_TITLES = (N_("Adoption"), N_("DAU/WAU"), N_("Accounts"),
                N_("Active users ÷ seats (last bin: 150% or more)"))
#: Headers of the usage-drop list shown on screen (the CSV keeps the column names).
_TABLE_LABELS = {
    "account_name": N_("Account"), "segment": N_("Segment"), "plan": N_("Plan"),
    "csm_owner": N_("CSM"), "usage_class": N_("Usage"), "wau_mean": N_("Weekly users"),
    "change": N_("vs previous"), "days_since_use": N_("Days since use"),
    "mrr": N_("MRR"), "renewal_date": N_("Renewal"), "days_to_renewal": N_("Days to renewal")}


def _date(x) -> str:
    return "–" if is_missing(x) else f"{pd.Timestamp(x):%Y-%m-%d}"


class AdoptionDashboard(Dashboard):
    """Product adoption: which features accounts use, and whose usage is fading.

    Filters: segment, plan, CSM (``csm_owner``), signup cohorts. KPI tiles:

    - **Active accounts**: live accounts with an event in the window / live accounts.
    - **Median breadth**: the median share of the features an active account used.
    - **Fading accounts**: ``declining`` + ``dropped`` (:func:`usage_trend`), with the
      MRR at stake.
    - **Median seat utilisation**: active users in 30 days ÷ seats
      (:func:`seat_utilisation`); accounts without seats are counted apart.

    Charts: feature × segment adoption heatmap, stickiness (DAU/WAU) trend, usage
    classes, seat utilisation distribution. Table: the usage-drop list with MRR and
    renewal date (soonest renewal first), downloadable as CSV.

    Parameters
    ----------
    ws : Workspace
    window : str
        Feature adoption window (default ``"90D"``).
    weeks : int
        Usage trend window, in weeks.
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook = "adoption.ipynb"
    fallback_title = "Product adoption"
    small_sample: ClassVar[int] = 30

    def __init__(self, ws, *, window: str = "90D", weeks: int = 12, **kwargs):
        self.window = window
        self.weeks = int(weeks)
        super().__init__(ws, **kwargs)

    # -- filters ------------------------------------------------------------------
    def make_filters(self):
        """Segment, plan, CSM and signup cohorts."""
        filters = dict(account_filters(self.ws, ("segment", "plan", "csm_owner"), t=self.t))
        cohorts = self.cohort_filter()
        if cohorts is not None:
            filters["cohorts"] = cohorts
        return filters

    def _where(self, params) -> dict:
        return {**{k: params.get(k) for k in ("segment", "plan", "csm_owner")},
                **self.cohort_scope(params)}

    # -- whole-workspace, account-level parts (narrowed per scope) -----------------
    def account_level(self):
        """Usage trend, drop list, seats and per-account stickiness of every account."""
        def run():
            as_of = self.as_of
            trend = usage_trend(self.ws, self.weeks, as_of=as_of)
            drops = usage_drops(self.ws, self.weeks, as_of=as_of)
            seats = seat_utilisation(self.ws, as_of=as_of) if self.ws.has(
                "subscriptions") else None
            st = stickiness(self.ws, "week", as_of=as_of)
            return trend, drops, seats, st

        return self.memo("account_level", None, run)

    def warm_up(self) -> None:
        """Compute the account-level parts before anyone changes a filter."""
        try:
            self.account_level()
        except Exception:  # noqa: BLE001 - the view that needs them shows the error
            pass

    # -- the view ------------------------------------------------------------------
    def compute(self, params):
        """KPI tiles, heatmap, stickiness, usage classes, seats, drop list."""
        from cs_analysis import charts

        _ = self.t
        lang = self.lang
        where = self._where(params)
        ws = self.scoped(where)
        ids = self.scope_ids(where)
        by = "segment" if ws.has("accounts", "segment") else None
        fa = feature_adoption(ws, by=by, window=self.window, as_of=self.as_of)
        trend_all, drops_all, seats_all, st = self.account_level()
        trend = self.in_scope(trend_all, ids)
        drops = self.in_scope(drops_all, ids).reset_index(drop=True)
        st_acc = self.in_scope(st.accounts, ids)
        seats = self.in_scope(seats_all.accounts, ids) if seats_all is not None else None

        live = len(trend)

        def money(x):
            return fmt_money(x, ws.currency, lang)

        active = int(trend["account_id"].isin(fa.accounts["account_id"]).sum())
        as_of = to_date(self.as_of) if self.as_of else ws.as_of
        warn = _("Too few accounts to conclude") if 0 < live < self.small_sample else ""
        kpis = [
            KPI(_("Active accounts ({days} days)", days=fa.window_days),
                active / live if live else None,
                detail=_("{active:,} of {live:,} live accounts had an event", active=active,
                         live=live), n=live, warning=warn),
            KPI(_("Median breadth"), fa.accounts["breadth"].median() if len(fa.accounts)
                else None,
                detail=_("share of the {n} features an active account used",
                         n=len(fa.key_features)), n=len(fa.accounts)),
            KPI(_("Fading accounts"), len(drops), format=fmt_int,
                detail=_("declining or dropped · MRR {mrr} at stake",
                         mrr=money(drops["mrr"].sum())), n=live, n_label=N_("live accounts")),
        ]
        if seats is not None:
            known = seats[seats["status"] == "ok"]
            kpis.append(KPI(_("Median seat utilisation"),
                            known["utilisation"].median() if len(known) else None,
                            detail=_("active users in 30 days ÷ seats · {n:,} without seats",
                                     n=int((seats["status"] != "ok").sum())),
                            n=len(known), n_label=N_("accounts with seats")))

        # stickiness trend of the accounts in scope (sums over accounts, as the analysis)
        rows = []
        for (p, label), s in st_acc.groupby(["period", "period_label"], sort=True):
            au, dm = int(s["active_users"].sum()), float(s["dau_mean"].sum())
            rows.append({"period": p, "period_label": label, "active_accounts": len(s),
                         "active_users": au, "dau_mean": dm,
                         "stickiness": dm / au if au else math.nan})
        st_trend = pd.DataFrame(rows, columns=["period", "period_label", "active_accounts",
                                               "active_users", "dau_mean", "stickiness"])
        panels = [
            Panel("heatmap", _("Feature adoption by segment"),
                  build=lambda: fit_chart(charts.adoption_heatmap(
                      fa.features, group=by), t=_) if len(fa.features) else None,
                  caption=_("Share of accounts active in the last {days} days that used each "
                            "feature (hover for the 95% interval).", days=fa.window_days),
                  wide=True),
            Panel("stickiness", _("Stickiness (DAU/WAU)"),
                  build=lambda: fit_chart(charts.stickiness_trend(st_trend, ratio="DAU/WAU"),
                                          t=_)
                  if len(st_trend) else None,
                  caption=_("Mean daily active users ÷ the week's active users; 14% = one "
                            "day a week, 71% = every working day.")),
            Panel("classes", _("Usage trend"),
                  build=lambda: fit_chart(charts.usage_classes(trend), t=_) if live else None,
                  caption=_("Weekly active users over the last {weeks} weeks (Theil-Sen "
                            "slope); dropped = no use in 30 days.", weeks=self.weeks)),
        ]
        if seats is not None:
            panels.append(Panel(
                "seats", _("Seats bought vs used"),
                build=lambda: fit_chart(charts.seat_utilisation_hist(seats), t=_)
                if seats["utilisation"].notna().any() else None,
                caption=_("Active users in the last 30 days ÷ seats on running contracts."),
                empty=N_("No account in this selection has seats recorded.")))
        labels = {k: _(v) for k, v in _TABLE_LABELS.items()}
        on_screen = [c for c in labels if c in drops]
        notes = list(fa.notes)
        if seats_all is not None and seats is not None and (seats["status"] != "ok").any():
            notes.append(_("{n:,} live accounts have no seats recorded; they are not in the "
                           "seat chart (never guessed).", n=int((seats["status"] != "ok").sum())))
        scope = _("{n:,} live accounts in scope · adoption over {days} days · data as of "
                  "{date}", n=live, days=fa.window_days, date=date_text(as_of, lang))
        return View(kpis=kpis, panels=panels, table=drops,
                    table_title=N_("Fading accounts: soonest renewal first"),
                    table_columns=on_screen, table_labels=labels,
                    table_formats={"wau_mean": lambda x: "–" if is_missing(x) else f"{x:.1f}",
                                   "change": lambda x: "–" if is_missing(x) else
                                   f"{x:+.0%}",
                                   "days_since_use": fmt_int, "mrr": money,
                                   "renewal_date": _date, "days_to_renewal": fmt_int},
                    scope=scope, notes=notes, csv_name="usage_drops.csv")

