"""The retention dashboard (``dashboards/retention.ipynb``).

:class:`RetentionDashboard` calls :mod:`cs_analysis.retention` and computes no metric
itself: the ``combine_*`` functions that sum per-group results into the all-accounts view
(so one query serves both) live in :mod:`cs_analysis.retention` and are re-exported here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

import ipywidgets as widgets
import pandas as pd

from cs_analysis.dashboard.base import (
    KPI,
    Dashboard,
    Panel,
    View,
    account_filters,
    date_text,
    fit_chart,
    fmt_money,
    fmt_pct,
    is_missing,
    toggle_filter,
)
from cs_analysis.i18n import N_
from cs_analysis.retention import ALL as ALL_ACCOUNTS
from cs_analysis.retention import combine_bridge, combine_cohort_cells, combine_trailing

__all__ = [
    "HORIZON_MONTHS",
    "RetentionDashboard",
    "combine_bridge",
    "combine_cohort_cells",
    "combine_trailing",
]

#: Months in the retention dashboard's headline horizon (logo retention "at 12 months",
#: trailing-12-month GRR / NRR, the 12-month MRR bridge).
HORIZON_MONTHS = 12
_PERIODS_PER_YEAR = {"month": 12, "quarter": 4}


def _months_formatter(t):
    _ = t
    unit = _("{months:.1f} months")
    return lambda days: unit.format(months=days / 30.4375)


#: Columns of the retention summary shown on screen, with their headers (the CSV has all;
#: English message ids, translated where shown).
_SUMMARY_LABELS = {
    "customers": N_("Customers"), "churned": N_("Churned"),
    "logo_retention_12m": N_("Logo retention 12 mo"), "logo_ci_lower": N_("95% CI low"),
    "logo_ci_upper": N_("95% CI high"), "grr_12m": N_("GRR 12 mo"), "nrr_12m": N_("NRR 12 mo"),
    "paying_at_start": N_("Paying at start"), "start_mrr": N_("MRR at start"),
    "median_lifetime_months": N_("Median lifetime (mo)"),
}
_GROUP_LABELS = {"segment": N_("Segment"), "plan": N_("Plan"), "region": N_("Region"),
                 "group": N_("Group")}
_SUMMARY_SHOWN = ["segment", "plan", "region", "group", *_SUMMARY_LABELS]


class RetentionDashboard(Dashboard):
    """Do customers stay and grow? Logo and revenue retention with their sample sizes.

    Filters: segment, plan, region (accounts columns present in the workspace), signup
    cohort range, grain (month / quarter), basis (contract / product usage) and the
    column to compare groups by. KPI tiles (each with its interval and sample size):

    - **Logo retention at 12 months**: :func:`~cs_analysis.retention.average_retention`
      of bounded :func:`~cs_analysis.retention.cohort_retention` at period 12 (month
      grain) or 4 (quarter grain): the cohort-size-weighted share of accounts retained at
      that period, over the cohorts observable there, with a Wilson interval.
    - **GRR** and **NRR**, trailing 12 months to the last complete month
      (:func:`~cs_analysis.retention.revenue_retention`): GRR = (MRR at the start of the
      accounts paying at the start - their contraction - their churned MRR) / MRR at the
      start; NRR = the same accounts' MRR at the end / their MRR at the start.
    - **Median lifetime**: Kaplan-Meier median of signup-to-churn time, censored at the
      as-of date (:func:`~cs_analysis.retention.survival`), with its interval.

    Charts: cohort triangle, retention curves per group, Kaplan-Meier curves per group
    (with the log-rank test in the caption), the MRR bridge of the last 12 months and the
    GRR / NRR trend. Table: one row per group plus all accounts, with the counts behind
    every rate; downloadable as CSV. Revenue numbers take longest, so they arrive in a
    second stage (:meth:`Dashboard.stages`).
    """

    notebook = "retention.ipynb"
    fallback_title = "Retention and revenue"
    #: Accounts columns offered as filters and as "compare by" choices.
    dimensions: ClassVar[tuple[str, ...]] = ("segment", "plan", "region")
    #: Groups smaller than this are flagged as not conclusive.
    small_sample: ClassVar[int] = 30
    #: Points of a retention curve resting on fewer accounts are not drawn (noise).
    min_curve_accounts: ClassVar[int] = 10

    # -- filters ------------------------------------------------------------------
    def make_filters(self):
        """Account filters, signup cohorts, grain, retained basis and split."""
        _ = self.t
        filters: dict[str, widgets.Widget] = dict(account_filters(self.ws, self.dimensions,
                                                                  t=_))
        cohorts = self.cohort_filter()
        if cohorts is not None:
            filters["cohorts"] = cohorts
        filters["grain"] = toggle_filter("grain", _("Grain"),
                                         [(_("Month"), "month"), (_("Quarter"), "quarter")])
        filters["basis"] = toggle_filter(
            "basis", _("Retained by"),
            [(_("Contract"), "contract"), (_("Product usage"), "activity")])
        present = [c for c in self.dimensions if c in filters]
        if present:
            filters["compare"] = toggle_filter(
                "compare", _("Compare"), [(_(_GROUP_LABELS.get(c, c)), c) for c in present])
        return filters

    def _where(self, params: Mapping[str, Any]) -> dict[str, Any]:
        where = {k: v for k, v in params.items() if k in self.dimensions}
        return {**where, **self.cohort_scope(params)}

    # -- the view ------------------------------------------------------------------
    def compute(self, params):
        """The complete view (the last of :meth:`stages`)."""
        return deque(self.stages(params), maxlen=1)[0]

    def stages(self, params):
        """Three stages, fastest first: logo retention; survival; revenue retention."""
        from cs_analysis import retention as rt

        _ = self.t
        ws = self.scoped(self._where(params))
        grain = params.get("grain", "month")
        basis = params.get("basis", "contract")
        by = params.get("compare")
        if by is not None and not ws.has("accounts", by):
            by = None
        as_of = self.as_of or ws.as_of
        horizon = _PERIODS_PER_YEAR[grain] * HORIZON_MONTHS // 12
        unit = _("month") if grain == "month" else _("quarter")
        basis_text = _("contract in force") if basis == "contract" else _("product usage")
        csv_name = "retention_summary.csv"

        # 1. logo retention: one query (per group, summed for the total)
        cells_by = rt.cohort_retention(ws, grain, basis, by=by, as_of=as_of)
        cells = combine_cohort_cells(cells_by, by)
        curve = rt.average_retention(cells, small_sample=self.small_sample)
        curve_by = (rt.average_retention(cells_by, by=by, small_sample=self.small_sample)
                    if by else curve)
        logo = self._logo_kpi(curve, horizon, unit, basis_text)
        retention_panels = self._retention_panels(cells, curve_by, by, unit, basis_text)
        labels = cells["cohort_label"] if not cells.empty else pd.Series([], dtype=str)
        span = (_("cohorts {first} – {last}", first=labels.min(), last=labels.max()) + " · "
                if len(labels) else "")
        tail = _("data as of {date} · retained = {basis}",
                 date=date_text(as_of, self.lang), basis=basis_text)
        pending_median = KPI(_("Median customer lifetime"), None, pending=True)
        pending_revenue = [KPI(_("GRR, trailing 12 months"), None, pending=True),
                           KPI(_("NRR, trailing 12 months"), None, pending=True)]
        pending_panels = [
            Panel("survival", _("Customer survival"), pending=True),
            Panel("bridge", _("MRR bridge, last 12 months"), pending=True),
            Panel("trend", _("GRR and NRR, trailing 12 months"), pending=True)]
        yield View(kpis=[logo, *pending_revenue, pending_median],
                   panels=[*retention_panels, *pending_panels], table=None,
                   scope=span + tail, csv_name=csv_name)

        # 2. survival: lifetimes in the engine, Kaplan-Meier in statsmodels
        surv = rt.survival(ws, as_of=as_of, small_sample=self.small_sample)
        surv_by = (rt.survival(ws, by=by, as_of=as_of, small_sample=self.small_sample)
                   if by else surv)
        median = self._median_kpi(surv)
        survival_panel = self._survival_panel(surv_by, by)
        accounts = int(surv.groups["accounts"].sum()) if not surv.groups.empty else 0
        scope = _("{n:,} customers in scope", n=accounts) + f" · {span}{tail}"
        notes = self._notes(surv_by, by, accounts)
        yield View(kpis=[logo, *pending_revenue, median],
                   panels=[*retention_panels, survival_panel, *pending_panels[1:]],
                   table=None, scope=scope, notes=notes, csv_name=csv_name)

        # 3. revenue retention: the slowest (MRR per account and period end)
        rev = rt.revenue_retention(ws, grain, by=by, as_of=as_of)
        revenue = self._revenue_parts(rev, by, horizon, ws.currency)
        table = self._summary_table(by, horizon, curve, curve_by, surv, surv_by, rev)
        yield View(
            kpis=[logo, revenue["grr"], revenue["nrr"], median],
            panels=[*retention_panels, survival_panel, *revenue["panels"]],
            table=table,
            table_title=(_("Summary by {group}", group=_(_GROUP_LABELS.get(by, by)))
                         if by else _("Summary")),
            table_formats=self._table_formats(ws.currency, self.lang), table_columns=_SUMMARY_SHOWN,
            table_labels={**{k: _(v) for k, v in _SUMMARY_LABELS.items()},
                          (by or "group"): _(_GROUP_LABELS.get(by or "group", by or "group"))},
            scope=scope, notes=notes, csv_name=csv_name)

    def _logo_kpi(self, curve, horizon, unit, basis_text) -> KPI:
        _ = self.t
        at = curve[curve["period"] == horizon]
        if at.empty:
            return KPI(_("Logo retention at 12 months"), None,
                       detail=_("No cohort in this selection is 12 months old yet"))
        r = at.iloc[0]
        return KPI(
            _("Logo retention at 12 months"), float(r["rate"]),
            detail=_("95% CI {lower}–{upper} · {cohorts} cohorts · {basis} at {unit} "
                     "{horizon}", lower=fmt_pct(r["lower"]), upper=fmt_pct(r["upper"]),
                     cohorts=int(r["cohorts"]), basis=basis_text, unit=unit,
                     horizon=horizon),
            n=int(r["accounts"]),
            warning=_("Too few accounts to conclude") if bool(r["small_sample"]) else "")

    def _median_kpi(self, surv) -> KPI:
        _ = self.t
        s = surv.groups
        label = _("Median customer lifetime")
        if s.empty:
            return KPI(label, None, detail=_("No customers in scope"))
        row = s.iloc[0]
        warn = _("Too few accounts to conclude") if bool(row["small_sample"]) else ""
        if is_missing(row["median_days"]):
            return KPI(label, _("Not reached"), format=str,
                       detail=_("More than half are still customers"), n=int(row["accounts"]),
                       warning=warn)
        lo, hi = row["median_lower"], row["median_upper"]
        ci = (_("95% CI {lower:.1f}–{upper:.1f} months", lower=lo / 30.4375,
                upper=hi / 30.4375)
              if not (is_missing(lo) or is_missing(hi)) else _("interval not bounded"))
        return KPI(label, float(row["median_days"]), format=_months_formatter(_),
                   detail=ci + " · " + _("{n:,} churned", n=int(row["churned"])),
                   n=int(row["accounts"]), warning=warn)

    def _notes(self, surv_by, by, accounts) -> list[str]:
        _ = self.t
        notes = []
        summary = surv_by.groups
        small = (summary.loc[summary["small_sample"].astype(bool), by].tolist()
                 if by and not summary.empty else [])
        if small:
            notes.append(_("{groups}: fewer than {n} customers, so differences with other "
                           "groups are not conclusive.", groups=", ".join(map(str, small)),
                           n=self.small_sample))
        if accounts and accounts < self.small_sample:
            notes.append(_("Only {n} customers in this selection: treat every number as "
                           "anecdotal.", n=accounts))
        return notes

    def _retention_panels(self, cells, curve_by, by, unit, basis_text) -> list[Panel]:
        from cs_analysis import charts

        _ = self.t
        drawn = curve_by[curve_by["accounts"] >= self.min_curve_accounts]
        group = _(_GROUP_LABELS.get(by, by)) if by else ""
        return [
            Panel("triangle", _("Cohort retention"),
                  fit_chart(charts.cohort_heatmap(cells), width=None, t=_)
                  if not cells.empty else None,
                  caption=_("Share of each signup cohort retained ({basis}) at each {unit}; "
                            "blank cells are not observable yet.", basis=basis_text,
                            unit=unit), wide=True,
                  renderer="canvas"),
            Panel("curves", _("Retention curve by {group}", group=group) if by
                  else _("Retention curve"),
                  fit_chart(charts.retention_curves(drawn), t=_) if not drawn.empty else None,
                  caption=_("Cohort-size-weighted average over the cohorts observable at "
                            "each {unit}, with 95% Wilson intervals; hollow points: fewer "
                            "than {small} accounts; {unit}s with fewer than {fewest} are not "
                            "drawn.", unit=unit, small=self.small_sample,
                            fewest=self.min_curve_accounts)),
        ]

    def _survival_panel(self, surv_by, by) -> Panel:
        from cs_analysis import charts

        _ = self.t
        lr = surv_by.logrank
        group = _(_GROUP_LABELS.get(by, by)) if by else ""
        if by and not lr.empty:
            p = float(lr["p_value"].iloc[0])
            verdict = _("unlikely to be chance") if p < 0.05 else _("could be chance")
            caption = _("Log-rank test across {group} groups: p = {p:.2g}, so the difference "
                        "is {verdict}. Bands: 95% pointwise intervals.", group=group, p=p,
                        verdict=verdict)
        else:
            caption = _("Share of customers still customers after each number of days; "
                        "bands: 95% pointwise intervals.")
        return Panel("survival", _("Customer survival by {group}", group=group) if by
                     else _("Customer survival"),
                     fit_chart(charts.km_curves(surv_by.curves), t=_)
                     if not surv_by.curves.empty else None, caption=caption)

    def _revenue_parts(self, rev, by, horizon, currency) -> dict:
        from cs_analysis import charts

        _ = self.t
        trailing = combine_trailing(rev.trailing, by)
        if trailing.empty:
            grr = KPI(_("GRR, trailing 12 months"), None,
                      detail=_("Not 12 months of revenue yet"))
            nrr = KPI(_("NRR, trailing 12 months"), None,
                      detail=_("Not 12 months of revenue yet"))
        else:
            last = trailing.iloc[-1]
            window = _("{start} – {end} · start MRR {mrr}",
                       start=date_text(last["window_start"], self.lang),
                       end=date_text(last["window_end"], self.lang),
                       mrr=fmt_money(last["start_mrr"], currency, self.lang))
            n = int(last["accounts"])
            warn = _("Too few accounts to conclude") if n < self.small_sample else ""
            grr = KPI(_("GRR, trailing 12 months"), float(last["grr"]), detail=window, n=n,
                      n_label=N_("paying accounts"), warning=warn)
            nrr = KPI(_("NRR, trailing 12 months"), float(last["nrr"]), detail=window, n=n,
                      n_label=N_("paying accounts"), warning=warn)
        periods = sorted(rev.bridge["period"].unique()) if not rev.bridge.empty else []
        bridge = (combine_bridge(rev.window_bridge(start=periods[-horizon:][0]), by)
                  if periods else pd.DataFrame())
        return {"grr": grr, "nrr": nrr, "panels": [
            Panel("bridge", _("MRR bridge, last 12 months"),
                  fit_chart(charts.mrr_waterfall(bridge), t=_) if not bridge.empty else None,
                  caption=_("MRR at the start, what new, reactivated, expanding, "
                            "contracting and churned accounts changed, and MRR at the end.")),
            Panel("trend", _("GRR and NRR, trailing 12 months"),
                  fit_chart(charts.grr_nrr_trend(trailing), t=_)
                  if not trailing.empty else None,
                  caption=_("Each point: the 12 months ending that month, for the accounts "
                            "paying at the window's start.")),
        ]}

    def _summary_table(self, by, horizon, curve, curve_by, surv, surv_by, rev) -> pd.DataFrame:
        """One row per group (and all accounts): the headline numbers and their counts."""
        label = by or "group"

        def rows(curve_frame, surv_frame, trailing, key):
            at = curve_frame[curve_frame["period"] == horizon]
            last = (trailing[trailing["window_end"] == trailing["window_end"].max()]
                    if not trailing.empty else trailing)
            table = surv_frame.groups
            gcol = surv_frame.by
            if gcol is None:   # one row, all accounts
                table = table.assign(_k=ALL_ACCOUNTS)
                gcol = "_k"
            out = []
            for g in table[gcol].tolist():
                s = table[table[gcol] == g].iloc[0]
                a = at[at[key] == g] if key in at.columns else at
                t = last[last[key] == g] if key in last.columns else last
                a = a.iloc[0] if len(a) else None
                t = t.iloc[0] if len(t) else None
                out.append({
                    label: g,
                    "customers": int(s["accounts"]),
                    "churned": int(s["churned"]),
                    "logo_retention_12m": a["rate"] if a is not None else float("nan"),
                    "logo_ci_lower": a["lower"] if a is not None else float("nan"),
                    "logo_ci_upper": a["upper"] if a is not None else float("nan"),
                    "accounts_at_12m": int(a["accounts"]) if a is not None else 0,
                    "retained_at_12m": int(a["retained"]) if a is not None else 0,
                    "grr_12m": t["grr"] if t is not None else float("nan"),
                    "nrr_12m": t["nrr"] if t is not None else float("nan"),
                    "paying_at_start": int(t["accounts"]) if t is not None else 0,
                    "start_mrr": t["start_mrr"] if t is not None else float("nan"),
                    "end_mrr": t["end_mrr"] if t is not None else float("nan"),
                    "median_lifetime_months": s["median_days"] / 30.4375,
                    "small_sample": bool(s["small_sample"]),
                })
            return out

        total = rows(curve.assign(_k=ALL_ACCOUNTS), surv,
                     combine_trailing(rev.trailing, by), "_k")
        for r in total:
            r[label] = ALL_ACCOUNTS
        if not by:
            return pd.DataFrame(total)
        per = rows(curve_by, surv_by, rev.trailing, by)
        return pd.DataFrame(per + total)

    @staticmethod
    def _table_formats(currency: str, lang: str | None = None) -> dict:
        def pct1(x):
            return fmt_pct(x, 1)

        return {"logo_retention_12m": pct1, "logo_ci_lower": pct1, "logo_ci_upper": pct1,
                "grr_12m": pct1, "nrr_12m": pct1,
                "start_mrr": lambda x: fmt_money(x, currency, lang),
                "end_mrr": lambda x: fmt_money(x, currency, lang),
                "median_lifetime_months": lambda x: f"{x:.1f}"}
