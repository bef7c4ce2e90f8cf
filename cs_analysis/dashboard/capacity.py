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
    date_text,
    fit_chart,
    fmt_int,
    fmt_pct,
    is_missing,
)
from cs_analysis.i18n import N_

__all__ = ["CapacityPlanningDashboard"]

#: The base case of the plan (the capacity model as it is).
BASE = "base"


#: Axis, legend and tooltip titles of this dashboard's charts (English message ids, as
#: :mod:`cs_analysis.charts` writes them; translated by ``fit_chart(..., t=)``).
CHART_TITLES = (N_("Hours of account work per month"), N_("load"), N_("Scenario"),
                N_("CSMs needed"), N_("staff capacity"), N_("hires joining"),
                N_("CSMs (full-time equivalents)"))
#: Touch tiers as people read them (the model's keys stay English).
_TIER_LABELS = {"high": N_("High touch, h/account"), "low": N_("Low touch, h/account"),
                "tech": N_("Tech touch, h/account")}
#: Headers of the per-CSM workload table shown on screen (the CSV keeps the column names).
_TABLE_LABELS = {"csm_owner": N_("CSM"), "accounts": N_("Accounts"),
                 "onboarding": N_("Onboarding"), "adoption": N_("Adoption phase"),
                 "renewal": N_("Renewal window"), "hours": N_("Hours / month"),
                 "capacity_hours": N_("Capacity (h)"), "load": N_("Load"),
                 "overloaded": N_("Overloaded")}


def _fte_formatter(t):
    _ = t
    unit = _("{n:.1f} CSMs")
    return lambda x: unit.format(n=x)


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
        from cs_analysis.dashboard.base import _url_language
        from cs_analysis.i18n import resolve_language, translator

        _ = translator(resolve_language(kwargs.get("lang") or _url_language()))
        hint = _("Fix the file named in the message, then reload.")
        try:
            model = load_model(model or None)
            pipeline = load_pipeline(pipeline if isinstance(pipeline, pd.DataFrame)
                                     else (pipeline or None))
        except (CapacityError, CoverageError) as exc:
            return ErrorPanel(str(exc), hint, lang=_.lang)
        return super().launch(workspace, model=model, pipeline=pipeline, **kwargs)

    # -- filters ------------------------------------------------------------------
    def make_filters(self):
        """Scenario, hours per tier, utilisation and pipeline growth."""
        _ = self.t
        m = self.model
        out = {"scenario": choice_filter("scenario", _("Scenario"), [BASE, *m.scenarios],
                                         all_label=None, value=BASE)}
        out["scenario"].options = [(_("Base case"), BASE), *((s, s) for s in m.scenarios)]
        for t in TIERS:
            base = m.hours[t]["adoption"]
            hi = max(2 * base, base + 1.0)
            label = (_(_TIER_LABELS[t]) if t in _TIER_LABELS
                     else f"{t.capitalize()} touch, h/account")
            out[f"hours_{t}"] = _slider(f"hours_{t}", label,
                                        base, 0.0, round(hi, 2), 0.05 if hi <= 5 else 0.5)
        out["utilisation"] = _slider("utilisation", _("Utilisation target"),
                                     m.utilisation_target, 0.3, 1.0, 0.05)
        lo, hi = self.growth_range
        out["growth"] = _slider("growth", _("Pipeline growth (%)"), 0.0, lo, hi, 5.0, ".0f")
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

        _ = self.t
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
        hires_detail = (_("first joins {month}", month=first)
                        + (" · " + _("{n} late", n=late) if late else "")
                        if len(hires) else _("the staff covers the plan"))
        kpis = [
            KPI(_("CSMs needed at peak"), float(peak["csms_needed_fte"]),
                format=_fte_formatter(_),
                detail=_("{n} CSMs in {month} · {staff} on staff",
                         n=int(peak["csms_needed"]), month=peak["month"],
                         staff=inputs.headcount), n=None),
            KPI(_("Hires in the plan"), len(hires), format=fmt_int, detail=hires_detail),
            KPI(_("Peak onboardings in flight"), float(flight.max()),
                format=lambda x: f"{x:.0f}",
                detail=_("{places} places ({specialists} specialists × {limit}) · {needed} "
                         "specialists needed", places=places, specialists=model.specialists,
                         limit=model.concurrent_limit,
                         needed=int(months["specialists_needed"].max()))),
            KPI(_("Overloaded CSMs today"), over, format=fmt_int,
                detail=_("capacity {capacity:.0f} h/month each ({share} of {hours:.0f} h)",
                         capacity=model.csm_capacity,
                         share=fmt_pct(model.utilisation_target),
                         hours=model.csm_hours_per_month), n=people, n_label=N_("CSMs")),
        ]
        panels = [
            Panel("csms", _("CSMs needed per month"),
                  build=lambda: fit_chart(charts.csms_needed(both), t=_),
                  caption=_("Solid: CSMs needed (hours ÷ one CSM's capacity). Dashed: staff "
                            "capacity, hires counted as they ramp up."), wide=True),
            Panel("workload", _("Workload per CSM today"),
                  build=lambda: fit_chart(charts.csm_workload(per_csm), t=_)
                  if per_csm["capacity_hours"].notna().any() else None,
                  caption=_("Hours a month of each CSM's book at these hours per account; "
                            "dashed: capacity."),
                  empty=N_("No account has a CSM in this workspace.")),
        ]
        labels = {k: _(v) for k, v in _TABLE_LABELS.items()}
        table = per_csm[list(labels)].copy()
        notes = ([_("{n} CSMs on staff (csm_owner values of the live book; set csm.headcount "
                    "in the model to override)", n=inputs.headcount)]
                 if any("CSMs on staff" in n for n in inputs.notes) else [])
        if scenario != BASE:
            desc = self.model.scenarios.get(scenario, {}).get("description") or ""
            notes.append(_("Scenario {name}: {description}", name=scenario,
                           description=desc).strip().rstrip(":"))
        if late:
            notes.append(_("{n} hire(s) are needed sooner than a {ramp}-month ramp allows: "
                           "capacity falls short until they are ramped up.", n=late,
                           ramp=model.ramp_months))
        scope = _("{n:,} live accounts today · plan {first} – {last} · data as of {date}",
                  n=int(book.shape[0]), first=months["month"].iloc[0],
                  last=months["month"].iloc[-1], date=date_text(inputs.as_of, self.lang))
        return View(kpis=kpis, panels=panels, table=table,
                    table_title=N_("Workload per CSM today"), table_labels=labels,
                    table_formats={"hours": lambda x: f"{x:.1f}",
                                   "capacity_hours": lambda x: "–" if x != x else f"{x:.0f}",
                                   "load": lambda x: "–" if x != x else fmt_pct(x),
                                   "overloaded": lambda x: "–" if is_missing(x) else (
                                       _("yes") if bool(x) else "")},
                    scope=scope, notes=notes, csv_name="csm_workload.csv")
