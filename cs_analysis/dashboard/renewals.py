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
    fit_chart,
    fmt_int,
    fmt_money,
    fmt_pct,
    is_missing,
    toggle_filter,
)
from cs_analysis.renewals import churn_to_date, renewal_calendar, renewal_notes
from cs_analysis.support import ticket_metrics

__all__ = ["HORIZONS", "RenewalsDashboard"]

#: Horizon choices (days ahead of the as-of date).
HORIZONS = (30, 60, 90, 120, 180)
#: Months of ticket-time trend shown.
TREND_MONTHS = 12


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
        filters = dict(account_filters(self.ws, ("segment", "csm_owner"),
                                       labels={"csm_owner": "CSM"}))
        filters["horizon"] = toggle_filter(
            "horizon", "Horizon", [(f"{h} days", h) for h in HORIZONS], value=90)
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

        where = self._where(params)
        ws = self.scoped(where)
        ids = self.scope_ids(where)
        horizon = int(params.get("horizon") or 90)

        def money(x):
            return fmt_money(x, ws.currency)

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
            KPI(f"Renewing in {horizon} days", len(cal), format=fmt_int,
                detail=f"{n_crit:,} with an open critical ticket", n=len(cal)),
            KPI("MRR at stake", at_stake, format=money,
                detail=f"{money(crit_mrr)} behind open critical tickets"),
        ]
        n_start = cell("to date", "accounts")
        warn = ("Too few accounts to conclude" if n_start is not None
                and 0 < n_start < self.small_sample else "")
        label = cell("to date", "label") or "Quarter to date"
        kpis.append(KPI("Logo churn, quarter to date", cell("to date", "logo_churn"),
                        format=lambda x: fmt_pct(x, 1),
                        detail=f"{label} · same span last quarter "
                               f"{fmt_pct(cell('same span last period', 'logo_churn'), 1)}",
                        n=None if n_start is None else int(n_start),
                        n_label="paying at the start", warning=warn))
        kpis.append(KPI("Gross MRR churn, quarter to date",
                        cell("to date", "gross_mrr_churn"), format=lambda x: fmt_pct(x, 1),
                        detail="last complete quarter "
                               f"{fmt_pct(cell('last complete period', 'gross_mrr_churn'), 1)}"
                               " · net "
                               f"{fmt_pct(cell('to date', 'net_mrr_churn'), 1)} to date"))
        if ctd_seg is not None and len(ctd_seg.table):
            seg = ctd_seg.table
            to_date = seg[seg["window"] == "to date"]
            same = seg[seg["window"] == "same span last period"].set_index("segment")
            for _, r in to_date.iterrows():
                prev = same["logo_churn"].get(r["segment"]) if len(same) else None
                n = int(r["accounts"])
                kpis.append(KPI(f"{r['segment']}: logo churn QTD", r["logo_churn"],
                                format=lambda x: fmt_pct(x, 1),
                                detail=f"same span last quarter {fmt_pct(prev, 1)}",
                                n=n, n_label="paying at the start",
                                warning="Too few accounts to conclude"
                                if 0 < n < self.small_sample else ""))

        def trend():
            tm = self.memo("tickets", key, lambda: ticket_metrics(
                ws, grain="month", as_of=self.as_of, periods=TREND_MONTHS))
            table = tm.table
            if table.empty or table["tickets"].sum() == 0:
                return None
            return fit_chart(charts.ticket_time_trend(table, metric="resolution"))

        panels = [
            Panel("calendar", f"Renewals in the next {horizon} days",
                  build=lambda: fit_chart(charts.renewal_calendar_chart(cal))
                  if len(cal) else None,
                  caption="MRR at stake per week of renewal; red: accounts with an open "
                          f"{'/'.join(self.critical)} ticket.",
                  empty="No renewal in this horizon for this selection.", wide=True),
            Panel("churn", "Logo churn: quarter to date vs last quarter",
                  build=lambda: fit_chart(charts.churn_to_date_bars(
                      ctd_seg.table if ctd_seg is not None else ctd.table,
                      value="logo_churn"))
                  if len(ctd.table) else None,
                  caption="Churned accounts / accounts paying at the start of the window; "
                          "compare 'to date' with the same span of last quarter."),
            Panel("tickets", "Resolution time per month",
                  build=trend,
                  caption="Kaplan-Meier median (solid) and p90 (dashed), hours; tickets "
                          "still open count as 'at least this long'.",
                  empty="No tickets in this selection."),
        ]
        notes = list(renewal_notes(cal))
        scope = (f"{len(cal):,} accounts renewing in {horizon} days · data as of "
                 f"{(self.as_of or self.ws.as_of):%d %b %Y}")
        labels = {"account_name": "Account", "segment": "Segment", "csm_owner": "CSM",
                  "renewal_date": "Renews", "days_to_renewal": "Days",
                  "mrr_at_stake": "MRR at stake", "term_months": "Term (months)",
                  "renewal_basis": "Renewal date from",
                  "days_since_cs_activity": "Days since CS touch",
                  "open_tickets": "Open tickets", "open_critical_tickets": "Open critical"}
        table = cal.copy()
        table["renewal_date"] = table["renewal_date"].dt.date
        if "last_cs_activity" in table:
            table["last_cs_activity"] = table["last_cs_activity"].dt.date
        return View(kpis=kpis, panels=panels, table=table,
                    table_title="Renewal calendar, soonest first",
                    table_columns=[c for c in labels if c in table], table_labels=labels,
                    table_formats={"mrr_at_stake": money, "term_months": fmt_int,
                                   "days_since_cs_activity": lambda x: "none" if is_missing(x)
                                   else fmt_int(x)},
                    scope=scope, notes=notes, csv_name="renewal_calendar.csv")
