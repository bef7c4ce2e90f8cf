"""The capacity-planning dashboard (``dashboards/capacity_planning.ipynb``).

Calls :mod:`cs_analysis.capacity` once for what needs the workspace (today's book by tier
and phase, each live account's tier and phase, the staff), then redraws from those small
frames: moving a slider (hours per tier, utilisation, pipeline growth) is arithmetic
(:func:`~cs_analysis.capacity.plan_capacity`), never an engine query.
"""

from __future__ import annotations

from typing import ClassVar

import ipywidgets as widgets
import pandas as pd

from cs_analysis.capacity import (
    NO_CSM,
    TIERS,
    CapacityError,
    CoverageError,
    load_model,
    load_pipeline,
    per_csm_hours,
    plan_capacity,
    plan_inputs,
    workload,
)
from cs_analysis.dashboard.base import (
    KPI,
    Dashboard,
    ErrorPanel,
    Panel,
    View,
    choice_filter,
    fit_chart,
    fmt_int,
    fmt_pct,
    is_missing,
)

__all__ = ["CapacityPlanningDashboard"]

#: The base case of the plan (the capacity model as it is).
BASE = "base"


def _fte(x) -> str:
    return f"{x:.1f} CSMs"


def _slider(name: str, label: str, value: float, lo: float, hi: float, step: float,
            fmt: str = ".2f") -> widgets.FloatSlider:
    w = widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=label,
                            readout_format=fmt, continuous_update=False,
                            layout=widgets.Layout(width="340px"))
    w.add_class("cs-filter")
    w.add_class(f"cs-filter-{name}")
    w.add_class("cs-slider")
    w.style.description_width = "initial"
    return w


class CapacityPlanningDashboard(Dashboard):
    """Capacity planning: CSMs needed per month, hires, and today's workload per CSM.

    Filters: the scenario (base case and the capacity model's scenarios) and sliders for
    the adoption hours per account-month of each tier (onboarding and renewal hours scale
    with them), the utilisation target and the pipeline's growth. KPI tiles:

    - **CSMs needed at peak**: the plan's largest ``csms_needed_fte`` (hours / capacity of
      one CSM), for the chosen scenario;
    - **Hires in the plan**: hires joining so that each is ramped when needed (late ones:
      needed sooner than the ramp allows);
    - **Peak onboardings in flight** against the specialists' places;
    - **Overloaded CSMs today**: books needing more hours than a CSM's capacity.

    Charts: CSMs needed per month for the base case and the scenario, with the staff's
    ramped capacity; workload per CSM. Table: per-CSM workload (downloadable as CSV).

    Parameters
    ----------
    ws : Workspace
    model, pipeline, criteria : optional
        Capacity model, pipeline and onboarding criteria (default files).
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook = "capacity_planning.ipynb"
    fallback_title = "Capacity planning"
    growth_range: ClassVar[tuple[int, int]] = (-50, 100)

    def __init__(self, ws, model=None, pipeline=None, *, criteria=None, **kwargs):
        self.model = load_model(model if model is not None and model != "" else None)
        self.pipeline = load_pipeline(pipeline if isinstance(pipeline, pd.DataFrame)
                                      else (pipeline or None))
        self.criteria = criteria or None
        super().__init__(ws, **kwargs)

    @classmethod
    def launch(cls, workspace=None, model=None, pipeline=None, **kwargs):
        """Open the workspace, model and pipeline, or a friendly error panel.

        A model or pipeline file with a mistake shows its own message (file, line or row,
        column, what was expected).
        """
        hint = "Fix the file named in the message, then reload."
        try:
            model = load_model(model or None)
            pipeline = load_pipeline(pipeline if isinstance(pipeline, pd.DataFrame)
                                     else (pipeline or None))
        except (CapacityError, CoverageError) as exc:
            return ErrorPanel(str(exc), hint)
        return super().launch(workspace, model=model, pipeline=pipeline, **kwargs)

    # -- filters ------------------------------------------------------------------
    def make_filters(self):
        """Scenario, hours per tier, utilisation and pipeline growth."""
        m = self.model
        out = {"scenario": choice_filter("scenario", "Scenario", [BASE, *m.scenarios],
                                         all_label=None, value=BASE)}
        for t in TIERS:
            base = m.hours[t]["adoption"]
            hi = max(2 * base, base + 1.0)
            out[f"hours_{t}"] = _slider(f"hours_{t}", f"{t.capitalize()} touch, h/account",
                                        base, 0.0, round(hi, 2), 0.05 if hi <= 5 else 0.5)
        out["utilisation"] = _slider("utilisation", "Utilisation target",
                                     m.utilisation_target, 0.3, 1.0, 0.05)
        lo, hi = self.growth_range
        out["growth"] = _slider("growth", "Pipeline growth (%)", 0.0, lo, hi, 5.0, ".0f")
        return out

    # -- what needs the workspace, once --------------------------------------------
    def inputs(self):
        """Today's book by tier and phase and the staff (:func:`plan_inputs`), once."""
        return self.memo("inputs", (), lambda: plan_inputs(
            self.ws, self.model, self.pipeline, as_of=self.as_of, criteria=self.criteria))

    def book(self) -> pd.DataFrame:
        """Each live account's CSM, tier and phase today (:func:`workload`), once."""
        return self.memo("book", (), lambda: workload(
            self.ws, self.model, as_of=self.as_of, criteria=self.criteria).accounts)

    def factors(self, params) -> dict[str, float]:
        """Hours factor per tier: the slider's adoption hours / the model's."""
        out = {}
        for t in TIERS:
            base = self.model.hours[t]["adoption"]
            value = params.get(f"hours_{t}")
            out[t] = (float(value) / base) if base and value is not None else 1.0
        return out

    def plan(self, params, scenario: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The plan for a scenario under the sliders' settings (arithmetic only)."""
        over = dict(self.model.scenarios.get(scenario, {})) if scenario != BASE else {}
        over.pop("description", None)
        hf = self.factors(params)
        for t, f in (over.pop("hours_factor", None) or {}).items():
            hf[t] *= f
        growth = 1 + float(params.get("growth") or 0) / 100
        return plan_capacity(
            self.inputs(), self.model, scenario=scenario,
            pipeline_factor=float(over.pop("pipeline_factor", 1.0) or 1.0) * growth,
            month_factors=over.pop("month_factors", None) or None, hours_factor=hf,
            utilisation_target=float(params.get("utilisation") or
                                     self.model.utilisation_target),
            new_account_tiers=over.pop("new_account_tiers", None) or None)

    # -- the view ------------------------------------------------------------------
    def compute(self, params):
        """KPIs, the CSMs-needed chart, workload per CSM and its table."""
        from cs_analysis import charts

        scenario = params.get("scenario") or BASE
        model = self.model.with_changes(hours_factor=self.factors(params),
                                        utilisation_target=params.get("utilisation"))
        inputs = self.inputs()
        months, hires = self.plan(params, scenario)
        frames = [months]
        if scenario != BASE:
            frames.insert(0, self.plan(params, BASE)[0])
        both = pd.concat(frames, ignore_index=True)

        book = self.book()
        hours = [model.hours[t][p] for t, p in zip(book["tier"], book["phase"], strict=True)]
        per_csm = per_csm_hours(book.assign(hours=hours), model)
        peak = months.loc[months["csms_needed_fte"].idxmax()]
        late = int(hires["late"].sum())
        first = hires["join_month"].min() if len(hires) else None
        flight = months["onboardings_in_flight"]
        places = model.specialists * model.concurrent_limit
        over = int(per_csm["overloaded"].fillna(False).astype(bool).sum())
        people = int((per_csm["csm_owner"] != NO_CSM).sum())
        kpis = [
            KPI("CSMs needed at peak", float(peak["csms_needed_fte"]), format=_fte,
                detail=f"{int(peak['csms_needed'])} CSMs in {peak['month']} · "
                       f"{inputs.headcount} on staff", n=None),
            KPI("Hires in the plan", len(hires), format=fmt_int,
                detail=(f"first joins {first}" + (f" · {late} late" if late else ""))
                if len(hires) else "the staff covers the plan"),
            KPI("Peak onboardings in flight", float(flight.max()), format=lambda x: f"{x:.0f}",
                detail=f"{places} places ({model.specialists} specialists × "
                       f"{model.concurrent_limit}) · "
                       f"{int(months['specialists_needed'].max())} specialists needed"),
            KPI("Overloaded CSMs today", over, format=fmt_int,
                detail=f"capacity {model.csm_capacity:.0f} h/month each "
                       f"({fmt_pct(model.utilisation_target)} of "
                       f"{model.csm_hours_per_month:.0f} h)", n=people, n_label="CSMs"),
        ]
        panels = [
            Panel("csms", "CSMs needed per month",
                  build=lambda: fit_chart(charts.csms_needed(both)),
                  caption="Solid: CSMs needed (hours ÷ one CSM's capacity). Dashed: staff "
                          "capacity, hires counted as they ramp up.", wide=True),
            Panel("workload", "Workload per CSM today",
                  build=lambda: fit_chart(charts.csm_workload(per_csm))
                  if per_csm["capacity_hours"].notna().any() else None,
                  caption="Hours a month of each CSM's book at these hours per account; "
                          "dashed: capacity.",
                  empty="No account has a CSM in this workspace."),
        ]
        labels = {"csm_owner": "CSM", "accounts": "Accounts", "onboarding": "Onboarding",
                  "adoption": "Adoption", "renewal": "Renewal window",
                  "hours": "Hours / month", "capacity_hours": "Capacity (h)",
                  "load": "Load", "overloaded": "Overloaded"}
        table = per_csm[list(labels)].copy()
        notes = [n for n in inputs.notes if "CSMs on staff" in n]
        if scenario != BASE:
            desc = self.model.scenarios.get(scenario, {}).get("description") or ""
            notes.append(f"Scenario {scenario}: {desc}".strip().rstrip(":"))
        if late:
            notes.append(f"{late} hire(s) are needed sooner than a {model.ramp_months}-month "
                         "ramp allows: capacity falls short until they are ramped up.")
        scope = (f"{int(book.shape[0]):,} live accounts today · plan "
                 f"{months['month'].iloc[0]} – {months['month'].iloc[-1]} · data as of "
                 f"{inputs.as_of:%d %b %Y}")
        return View(kpis=kpis, panels=panels, table=table,
                    table_title="Workload per CSM today", table_labels=labels,
                    table_formats={"hours": lambda x: f"{x:.1f}",
                                   "capacity_hours": lambda x: "–" if x != x else f"{x:.0f}",
                                   "load": lambda x: "–" if x != x else fmt_pct(x),
                                   "overloaded": lambda x: "–" if is_missing(x) else (
                                       "yes" if bool(x) else "")},
                    scope=scope, notes=notes, csv_name="csm_workload.csv")
