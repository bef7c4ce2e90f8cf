"""The renewals dashboard (``dashboards/renewals.ipynb``).

Calls :mod:`cs_analysis.renewals` (renewal calendar, churn to date) and
:mod:`cs_analysis.support` (ticket times) with the filters' scope; all numbers come from
there.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

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
    fmt_pct,
    is_missing,
    toggle_filter,
)
from cs_analysis.i18n import N_
from cs_analysis.renewals import churn_to_date, renewal_calendar, renewal_notes
from cs_analysis.support import ticket_metrics

__all__ = ["HORIZONS", "RenewalsDashboard"]

#: Horizon choices (days ahead of the as-of date).
HORIZONS = (30, 60, 90, 120, 180)
#: Months of ticket-time trend shown.
TREND_MONTHS = 12
#: Axis, legend and tooltip titles of this dashboard's charts (English message ids, as
#: :mod:`cs_analysis.charts` writes them; :func:`~cs_analysis.dashboard.base.relabel_chart`
#: translates them).
CHART_TITLES = (N_("Week of the renewal"), N_("MRR at stake"), N_("week of"),
                N_("resolution time (hours)"), N_("logo churn"))
#: Headers of the renewal calendar shown on screen (the CSV keeps the column names).
_TABLE_LABELS = {
    "account_name": N_("Account"), "segment": N_("Segment"), "csm_owner": N_("CSM"),
    "renewal_date": N_("Renews"), "days_to_renewal": N_("Days"),
    "mrr_at_stake": N_("MRR at stake"), "term_months": N_("Term (months)"),
    "renewal_basis": N_("Renewal date from"),
    "days_since_cs_activity": N_("Days since CS touch"),
    "open_tickets": N_("Open tickets"), "open_critical_tickets": N_("Open critical")}


class RenewalsDashboard(Dashboard):
    """Renewals dashboard: what renews soon, churn so far, and how support holds up.

    Filters: segment, CSM (``csm_owner``) and the horizon (30-180 days). KPI tiles:

    - **Renewing** accounts within the horizon and their **MRR at stake**
      (:func:`renewal_calendar`), with the share of it behind open critical tickets;
    - **Logo churn** and **gross MRR churn** of the quarter to date, beside the same
      span of last quarter (:func:`churn_to_date`), and logo churn to date per segment.

    Charts: MRR at stake per renewal week (critical tickets in red), churn to date by
    segment against the same span last quarter and the last complete quarter, median and
    p90 resolution time per month (Kaplan-Meier, open tickets censored;
    :func:`ticket_metrics`). Table: the renewal calendar, soonest first; CSV download.

    Parameters
    ----------
    ws : Workspace
    critical : tuple of str
        Ticket priorities counted as critical.
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook = "renewals.ipynb"
    fallback_title = "Renewals and support"
    small_sample: ClassVar[int] = 30

    def __init__(self, ws, *, critical: tuple[str, ...] = ("P1", "P2"), **kwargs):
        self.critical = tuple(critical)
        super().__init__(ws, **kwargs)

    # -- filters ------------------------------------------------------------------
    def make_filters(self):
        """Segment, CSM and horizon."""
        _ = self.t
        filters = dict(account_filters(self.ws, ("segment", "csm_owner"), t=_))
        filters["horizon"] = toggle_filter(
            "horizon", _("Horizon"), [(_("{n} days", n=h), h) for h in HORIZONS], value=90)
        return filters

    def _where(self, params) -> dict:
        return {k: params.get(k) for k in ("segment", "csm_owner")}

    # -- shared account-level frames --------------------------------------------------
    def calendar_all(self) -> pd.DataFrame:
        """The whole workspace's calendar at the longest horizon (narrowed per view)."""
        return self.memo("calendar", max(HORIZONS), lambda: renewal_calendar(
            self.ws, max(HORIZONS), as_of=self.as_of, critical=self.critical))

    def warm_up(self) -> None:
        """The calendar for every horizon is one frame: compute it once."""
        self.calendar_all()

    # -- the view ------------------------------------------------------------------
    def compute(self, params):
        """KPI tiles, renewal chart, churn-to-date chart, ticket-time trend, calendar."""
        from cs_analysis import charts

        _ = self.t
        lang = self.lang
        where = self._where(params)
        ws = self.scoped(where)
        ids = self.scope_ids(where)
        horizon = int(params.get("horizon") or 90)

        def money(x):
            return fmt_money(x, ws.currency, lang)

        def pct1(x):
            return fmt_pct(x, 1)

        cal = self.in_scope(self.calendar_all(), ids)
        cal = cal[cal["days_to_renewal"] <= horizon].reset_index(drop=True)
        at_stake = float(cal["mrr_at_stake"].sum())
        crit_mrr = float(cal.loc[cal["open_critical_tickets"] > 0, "mrr_at_stake"].sum())
        n_crit = int((cal["open_critical_tickets"] > 0).sum())
        key = tuple(sorted((k, str(v)) for k, v in where.items()))
        ctd = self.memo("churn", key, lambda: churn_to_date(ws, "quarter", by=None,
                                                             as_of=self.as_of))
        ctd_seg = self.memo("churn_seg", key, lambda: churn_to_date(
            ws, "quarter", by="segment", as_of=self.as_of)) if ws.has(
            "accounts", "segment") else None
        t = ctd.table.set_index("window") if len(ctd.table) else None

        def cell(window, col):
            if t is None or window not in t.index:
                return None
            return t.loc[window, col]

        kpis = [
            KPI(_("Renewing in {n} days", n=horizon), len(cal), format=fmt_int,
                detail=_("{n:,} with an open critical ticket", n=n_crit), n=len(cal)),
            KPI(_("MRR at stake"), at_stake, format=money,
                detail=_("{mrr} behind open critical tickets", mrr=money(crit_mrr))),
        ]
        n_start = cell("to date", "accounts")
        few = _("Too few accounts to conclude")
        warn = (few if n_start is not None and 0 < n_start < self.small_sample else "")
        label = cell("to date", "label") or _("Quarter to date")
        kpis.append(KPI(_("Logo churn, quarter to date"), cell("to date", "logo_churn"),
                        format=pct1,
                        detail=_("{span} · same span last quarter {rate}", span=label,
                                 rate=pct1(cell("same span last period", "logo_churn"))),
                        n=None if n_start is None else int(n_start),
                        n_label=N_("paying at the start"), warning=warn))
        kpis.append(KPI(_("Gross MRR churn, quarter to date"),
                        cell("to date", "gross_mrr_churn"), format=pct1,
                        detail=_("last complete quarter {rate} · net {net} to date",
                                 rate=pct1(cell("last complete period", "gross_mrr_churn")),
                                 net=pct1(cell("to date", "net_mrr_churn")))))
        if ctd_seg is not None and len(ctd_seg.table):
            seg = ctd_seg.table
            to_date = seg[seg["window"] == "to date"]
            same = seg[seg["window"] == "same span last period"].set_index("segment")
            for _i, r in to_date.iterrows():
                prev = same["logo_churn"].get(r["segment"]) if len(same) else None
                n = int(r["accounts"])
                kpis.append(KPI(_("{segment}: logo churn QTD", segment=r["segment"]),
                                r["logo_churn"], format=pct1,
                                detail=_("same span last quarter {rate}", rate=pct1(prev)),
                                n=n, n_label=N_("paying at the start"),
                                warning=few if 0 < n < self.small_sample else ""))

        def trend():
            tm = self.memo("tickets", key, lambda: ticket_metrics(
                ws, grain="month", as_of=self.as_of, periods=TREND_MONTHS))
            table = tm.table
            if table.empty or table["tickets"].sum() == 0:
                return None
            return fit_chart(charts.ticket_time_trend(table, metric="resolution"), t=_)

        panels = [
            Panel("calendar", _("Renewals in the next {n} days", n=horizon),
                  build=lambda: fit_chart(charts.renewal_calendar_chart(cal), t=_)
                  if len(cal) else None,
                  caption=_("MRR at stake per week of renewal; red: accounts with an open "
                            "{priorities} ticket.", priorities="/".join(self.critical)),
                  empty=N_("No renewal in this horizon for this selection."), wide=True),
            Panel("churn", _("Logo churn: quarter to date vs last quarter"),
                  build=lambda: fit_chart(charts.churn_to_date_bars(
                      ctd_seg.table if ctd_seg is not None else ctd.table,
                      value="logo_churn"), t=_)
                  if len(ctd.table) else None,
                  caption=_("Churned accounts / accounts paying at the start of the window; "
                            "compare 'to date' with the same span of last quarter.")),
            Panel("tickets", _("Resolution time per month"),
                  build=trend,
                  caption=_("Kaplan-Meier median (solid) and p90 (dashed), hours; tickets "
                            "still open count as 'at least this long'."),
                  empty=N_("No tickets in this selection.")),
        ]
        notes = list(renewal_notes(cal))
        scope = _("{n:,} accounts renewing in {days} days · data as of {date}", n=len(cal),
                  days=horizon, date=date_text(self.as_of or self.ws.as_of, lang))
        labels = {k: _(v) for k, v in _TABLE_LABELS.items()}
        table = cal.copy()
        table["renewal_date"] = table["renewal_date"].dt.date
        if "last_cs_activity" in table:
            table["last_cs_activity"] = table["last_cs_activity"].dt.date
        return View(kpis=kpis, panels=panels, table=table,
                    table_title=N_("Renewal calendar, soonest first"),
                    table_columns=[c for c in labels if c in table], table_labels=labels,
                    table_formats={"mrr_at_stake": money, "term_months": fmt_int,
                                   "days_since_cs_activity": lambda x: _("none")
                                   if is_missing(x)
                                   else fmt_int(x)},
                    scope=scope, notes=notes, csv_name="renewal_calendar.csv")
