"""The onboarding dashboard (``dashboards/onboarding.ipynb``).

Calls :mod:`cs_analysis.onboarding` (time-to-value, stalled accounts) with the filters'
scope; all numbers come from there.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from cs_analysis.dashboard.base import (
    KPI,
    Dashboard,
    ErrorPanel,
    Panel,
    View,
    account_filters,
    fit_chart,
    fmt_int,
    fmt_pct,
    is_missing,
    toggle_filter,
)
from cs_analysis.formatting import fmt_date
from cs_analysis.i18n import N_, resolve_language, translator
from cs_analysis.onboarding import (
    CriteriaError,
    load_criteria,
    stalled_accounts,
    stalled_per_owner,
    time_to_value,
    ttv_curves,
    ttv_summary,
)
from cs_analysis.time import to_date

__all__ = ["OnboardingDashboard"]


def _days_formatter(t):
    _ = t
    unit = _("{days:.0f} days")
    return lambda x: "–" if is_missing(x) else unit.format(days=x)


#: Why an onboarding is stalled (data values of the ``why`` column; labels on screen).
_WHY = (N_("past target, idle"), N_("past target"), N_("idle"))
#: Stage labels of the default criteria file (a criteria file may carry its own words).
_STAGE_LABELS = (N_("Set-up complete"), N_("Value realized"))


class OnboardingDashboard(Dashboard):
    """Onboarding dashboard: how fast customers reach value, which onboardings need help.

    Filters: segment, CSM (``csm_owner``), signup cohorts, and the stage ("set-up" or
    "value", from the criteria file). KPI tiles (with intervals and sample sizes):

    - **Median days to <stage>**: Kaplan-Meier median of :func:`ttv_summary`.
    - **Reached within target**: what actually happened, the Aalen-Johansen cumulative
      incidence of the stage by the target (churn before value counted as not reached);
      the detail gives 1 - S(target) of Kaplan-Meier, the share in a world without churn.
    - **Still onboarding** and **stalled** (:func:`stalled_accounts`, default
      ``idle_days``).

    Charts: the share of accounts at the stage after each number of days by segment
    (:func:`ttv_curves`, targets marked), median vs target per segment, stalled
    onboardings per CSM. Table: the stalled onboardings, per CSM and riskiest first,
    with the next step; downloadable as CSV.

    Parameters
    ----------
    ws : Workspace
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    idle_days : int
        Days without a milestone that make an onboarding stalled.
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook = "onboarding.ipynb"
    fallback_title = "Onboarding and time to value"
    small_sample: ClassVar[int] = 30

    def __init__(self, ws, criteria=None, *, idle_days: int = 14, **kwargs):
        self.criteria = load_criteria(criteria).check(ws)
        self.idle_days = int(idle_days)
        super().__init__(ws, **kwargs)

    @classmethod
    def launch(cls, workspace=None, criteria=None, *, lang=None, **kwargs):
        """Open the workspace and criteria, or a friendly error panel.

        A criteria file that cannot be read, or whose names do not fit the workspace,
        shows its own message (file, line, what is wrong) instead of a generic error.

        Parameters
        ----------
        workspace : str, Path, Workspace or None
            As for :meth:`Dashboard.launch`.
        criteria : str, Path, mapping or Criteria, optional
            '' or None: :func:`default_criteria_path`.
        **kwargs
            Passed to the class.
        """
        from cs_analysis.dashboard.base import _url_language
        from cs_analysis.workspace import Workspace, open_workspace

        code = resolve_language(lang or _url_language())
        _ = translator(code)
        hint = _("Fix the onboarding criteria file (the message names the line), then "
                 "reload.")
        try:
            crit = load_criteria(criteria or None)
        except CriteriaError as exc:
            return ErrorPanel(str(exc), hint, lang=code)
        try:
            ws = workspace if isinstance(workspace, Workspace) else open_workspace(
                workspace or None)
            crit.check(ws)
        except CriteriaError as exc:
            return ErrorPanel(str(exc), hint, lang=code)
        except Exception:  # noqa: BLE001 - the base class words other errors for people
            return super().launch(workspace, criteria=crit, lang=lang, **kwargs)
        return super().launch(ws, criteria=crit, lang=lang, **kwargs)

    # -- filters ------------------------------------------------------------------
    def make_filters(self):
        """Segment, CSM, signup cohorts and stage."""
        _ = self.t
        filters = dict(account_filters(self.ws, ("segment", "csm_owner"), t=_))
        cohorts = self.cohort_filter()
        if cohorts is not None:
            filters["cohorts"] = cohorts
        if len(self.criteria.stages) > 1:
            filters["stage"] = toggle_filter(
                "stage", _("Stage"), [(_(s.label), s.name) for s in self.criteria.stages],
                value=self.criteria.stages[-1].name)
        return filters

    def _where(self, params) -> dict:
        return {**{k: params.get(k) for k in ("segment", "csm_owner")},
                **self.cohort_scope(params)}

    # -- the view ------------------------------------------------------------------
    def accounts_at(self, stage: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Whole-workspace :func:`time_to_value` and :func:`stalled_accounts` of a stage.

        Both are one row per account, so a filter change only narrows them
        (:meth:`Dashboard.in_scope`); the engine is asked once per stage.
        """
        def run():
            ttv = time_to_value(self.ws, self.criteria, stage, as_of=self.as_of)
            stalled = stalled_accounts(self.ws, self.criteria, self.idle_days, stage=stage,
                                       as_of=self.as_of)
            return ttv, stalled

        return self.memo("accounts_at", stage, run)

    def compute(self, params):
        """KPI tiles, TTV curves, median vs target, stalled per CSM, stalled table.

        Numbers are those of the analyses on ``ws.where(<filters>)``: the stage's
        account-level frames narrowed to the accounts in scope, the stalled list
        renumbered (its order is a total order, so the scope's order is the same).
        """
        from cs_analysis import charts

        _ = self.t
        days = _days_formatter(_)
        where = self._where(params)
        ws = self.scoped(where)
        ids = self.scope_ids(where)
        crit = self.criteria
        st = crit.stage(params.get("stage") or None)
        as_of = self.as_of
        by = "segment" if ws.has("accounts", "segment") else None
        ttv_all, stalled_all = self.accounts_at(st.name)
        ttv = self.in_scope(ttv_all, ids)
        stalled = self.in_scope(stalled_all, ids).reset_index(drop=True)
        stalled["risk_rank"] = np.arange(1, len(stalled) + 1)
        overall = ttv_summary(ws, crit, by=None, stage=st.name, as_of=as_of, ttv=ttv)
        per = ttv_summary(ws, crit, by=by, stage=st.name, as_of=as_of, ttv=ttv)
        curves = ttv_curves(ws, crit, by=by, stage=st.name, as_of=as_of, ttv=ttv)

        row = overall.iloc[0] if len(overall) else None
        n = int(row["accounts"]) if row is not None else 0
        warn = _("Too few accounts to conclude") if 0 < n < self.small_sample else ""
        label = st.label.lower() if self.lang == "en" else _(st.label)
        if row is None or n == 0:
            median = KPI(_("Median days to {stage}", stage=label), None,
                         detail=_("No onboarding in scope"))
            within = KPI(_("Reached within target"), None, detail=_("No onboarding in scope"))
        else:
            ci = (_("95% CI {lower}–{upper}", lower=days(row["median_lower"]),
                    upper=days(row["median_upper"]))
                  if not is_missing(row["median_lower"]) else _("interval not bounded"))
            median = KPI(_("Median days to {stage}", stage=label), row["median_days"],
                         format=days,
                         detail=ci + " · " + _("{n:,} reached", n=int(row["reached"])),
                         n=n, warning=warn)
            # what actually happened (Aalen-Johansen: churn before value counts as not
            # reached), and, for comparison, the share in a world without churn (1 - KM)
            wci = (_("95% CI {lower}–{upper}", lower=fmt_pct(row["within_cif_lower"]),
                     upper=fmt_pct(row["within_cif_upper"]))
                   if not is_missing(row["within_cif_lower"]) else "")
            km = (_("{share} if none had churned (Kaplan-Meier)",
                    share=fmt_pct(row["share_within_target"]))
                  if not is_missing(row["share_within_target"]) else "")
            within = KPI(_("Reached within target"), row["share_within_target_cif"],
                         detail=" · ".join(p for p in (wci, _("what actually happened"), km)
                                           if p), n=n, warning=warn)
        onboarding = int((ttv["status"] == "in_progress").sum())
        still = KPI(_("Still onboarding"), onboarding, format=fmt_int,
                    detail=_("{n:,} churned before {stage}",
                             n=int((ttv["status"] == "churned_before").sum()), stage=label),
                    n=n)
        stalled_kpi = KPI(_("Stalled onboardings"), len(stalled), format=fmt_int,
                          detail=_("past target or no milestone for {days} days",
                                   days=self.idle_days),
                          n=onboarding, n_label=N_("still onboarding"))

        stalled_by_csm = stalled_per_owner(stalled)
        panels = [
            Panel("curves", _("Accounts at {stage} after each number of days", stage=label),
                  build=lambda: fit_chart(charts.ttv_curves(curves), t=_) if not curves.empty
                  else None,
                  caption=_("Kaplan-Meier: share that reached the stage, counting accounts "
                            "still onboarding (or churned) only while observed. Dashed "
                            "lines: targets."), wide=True),
            Panel("targets", _("Median days vs target"),
                  build=lambda: fit_chart(charts.ttv_targets(per), t=_)
                  if per["accounts"].sum() else None,
                  caption=_("Median with its 95% interval; ticks mark each segment's "
                            "target; labels: share within target if no account had churned "
                            "(Kaplan-Meier) and, in brackets, the share that actually did "
                            "(churn before value counted).")),
            Panel("stalled", _("Stalled onboardings per CSM"),
                  build=lambda: fit_chart(charts.stalled_by_owner(stalled_by_csm), t=_)
                  if not stalled_by_csm.empty else None,
                  caption=_("Past the target, or no new milestone for {days} days.",
                            days=self.idle_days),
                  empty=_("No stalled onboarding in this selection.")),
        ]
        table = stalled.sort_values(["csm_owner", "risk_rank"], na_position="last") if (
            "csm_owner" in stalled) else stalled
        why = np.select([table["past_target"] & table["idle"], table["past_target"]],
                        ["past target, idle", "past target"], "idle") if len(table) else []
        table = table.assign(why=pd.Series(why, index=table.index, dtype="str"))
        table = table.reset_index(drop=True)
        labels = {"csm_owner": _("CSM"), "risk_rank": _("Risk rank"),
                  "account_name": _("Account"), "segment": _("Segment"),
                  "days_in_onboarding": _("Days onboarding"), "target_days": _("Target days"),
                  "days_since_progress": _("Days idle"),
                  "last_milestone": _("Last milestone"), "next_step": _("Next step"),
                  "open_tickets": _("Open tickets"), "why": _("Stalled because")}
        why_labels = {w: _(w) for w in _WHY}
        on_screen = [c for c in labels if c in table]
        notes = []
        small = per[per["small_sample"].astype(bool)][by].tolist() if by else []
        if small and len(per) > 1:
            notes.append(_("{groups}: fewer than {n} onboardings, so differences with other "
                           "segments are not conclusive.", groups=", ".join(map(str, small)),
                           n=self.small_sample))
        no_clock = int((ttv["status"] == "no_clock_start").sum())
        if no_clock:
            notes.append(_("{n:,} accounts have no {clock} and are left out (see the "
                           "criteria file's if_no_clock_start).", n=no_clock,
                           clock=crit.clock_start))
        as_of_d = to_date(as_of) if as_of else ws.as_of
        scope = _("{n:,} onboardings in scope · clock starts at {clock} · data as of {date}",
                  n=n, clock=crit.clock_start.replace("_", " "),
                  date=fmt_date(as_of_d, self.lang))
        return View(kpis=[median, within, still, stalled_kpi], panels=panels, table=table,
                    table_title=_("Stalled onboardings by CSM, riskiest first"),
                    table_columns=on_screen, table_labels=labels,
                    table_formats={"days_in_onboarding": fmt_int, "target_days": fmt_int,
                                   "days_since_progress": fmt_int,
                                   "why": lambda w: why_labels.get(w, w)},
                    scope=scope, notes=notes, csv_name="stalled_onboardings.csv")
