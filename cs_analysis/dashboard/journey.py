"""The journey dashboards: the facilitators' workshop and the shared goals review.

``dashboards/journey_workshop.ipynb`` (:class:`JourneyWorkshopDashboard`, :func:`resume`)
edits an agreed map through :class:`cs_analysis.journey.WorkshopSession`;
``dashboards/shared_goals.ipynb`` (:class:`SharedGoalsDashboard`) tracks the agreed
goals with :func:`cs_analysis.journey.goal_progress`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from cs_analysis.dashboard.base import (
    ALL,
    KPI,
    Dashboard,
    Panel,
    View,
    _url_language,
    account_filters,
    choice_filter,
    date_text,
    esc,
    fmt_int,
    fmt_pct,
    relabel_chart,
    toggle_filter,
)
from cs_analysis.i18n import N_, translator
from cs_analysis.journey import (
    GOAL_METRICS,
    LAYERS,
    JourneyMap,
    JourneyMapError,
    Stage,
    WorkshopSession,
    add_goal,
    add_stage,
    default_maps,
    edit_stage,
    export_handout,
    format_target,
    goal_progress,
    journey_reach,
    latest_agreed,
    load_map,
    merge_maps,
    merge_stages,
    move_stage,
    remove_stage,
    rename_stage,
    set_signal,
    slug,
    stage_flow,
)

__all__ = ["JourneyWorkshopDashboard", "SharedGoalsDashboard", "resume"]


#: Days of waiting after which an account counts as stalled (stage_flow's default).
_STALL_DAYS = 30
_SPLITS = ((N_("no split"), ""), (N_("segment"), "segment"),
           (N_("champion domain"), "champion_domain"), (N_("decision style"), "decision_style"))
#: Axis, legend and tooltip titles of the journey charts (English message ids, as
#: :mod:`cs_analysis.charts` writes them; translated with ``relabel_chart``).
CHART_TITLES = (N_("Days from the previous stage (median, quartiles)"),
                N_("Accounts that reached the stage"),
                N_("Where accounts get to (bars) and stall (red: share stalled before it)"),
                N_("Days between stages (censoring-aware)"), N_("Goal against its target (dashed)"),
                N_("stage share"), N_("active share"), N_("NPS"), N_("CSAT"), N_("CES"))
#: Headers of the stage-data table shown on screen (the CSV keeps the column names).
_FLOW_LABELS = {
    "position": N_("#"), "stage": N_("Stage"), "has_signal": N_("Data signal"),
    "accounts": N_("Accounts"), "reached": N_("Accounts reached"),
    "reached_share": N_("Reached share"),
    "from_reached": N_("Reached the previous stage"), "converted": N_("Converted"),
    "conversion": N_("Conversion"), "stalled": N_("Stalled"),
    "stalled_share": N_("Stalled share"), "median_days": N_("Median days"),
    "p25_days": N_("Days, 25th percentile"), "p75_days": N_("Days, 75th percentile"),
    "segment": N_("Segment"), "champion_domain": N_("Champion domain"),
    "decision_style": N_("Decision style"), "signal": N_("Signal"),
    "from_stage": N_("Previous stage"), "waiting": N_("Waiting"),
    "churned_before": N_("Churned before"), "small_sample": N_("Small sample")}
#: The goal layers as people read them (the map's keys stay English).
LAYER_LABELS = (N_("adoption"), N_("outcome"), N_("experience"))
#: Headers of the shared goals table shown on screen.
_GOAL_LABELS = {
    "goal": N_("Goal"), "layer": N_("Layer"), "metric": N_("Metric"),
    "period_label": N_("Period"), "value": N_("Value"), "target": N_("Target"),
    "met": N_("Target met"), "numerator": N_("Numerator"), "denominator": N_("Denominator"),
    "small_sample": N_("Small sample"), "segment": N_("Segment"), "period": N_("Period number"),
    "period_start": N_("Period start"), "lower": N_("95% CI low"), "upper": N_("95% CI high"),
    "direction": N_("Direction")}


def _css_widget(widget, *classes):
    for c in classes:
        widget.add_class(c)
    return widget


def _flow_formats() -> dict:
    return {"reached_share": fmt_pct, "conversion": fmt_pct, "stalled_share": fmt_pct}


class JourneyWorkshopDashboard(Dashboard):
    """The facilitators' workshop dashboard: compare, overlay data, edit, agree, save.

    Shows the two teams' maps side by side (differences highlighted), the agreed map
    being edited with the data per stage (:func:`stage_flow`, filterable by segment and
    split by segment / champion domain / decision style), an editor (rename, reorder,
    merge, add, remove stages; set signals and texts; add shared goals) that autosaves to
    the workshop draft after every edit (:class:`WorkshopSession`), a button saving the
    agreed map as a new version, and one exporting the handout.

    Parameters
    ----------
    ws : Workspace
    product, cs : JourneyMap or path, optional
        The two teams' maps (default: the demo's).
    folder : str or Path, optional
        Workshop folder (default :func:`workshop_dir`).
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook: ClassVar[str] = "journey_workshop.ipynb"
    #: views depend on the session's drafts, not only on the filters: never shared
    share_views: ClassVar[bool] = False
    fallback_title: ClassVar[str] = "Journey alignment workshop"

    def __init__(self, ws, *, product=None, cs=None, folder=None, **kwargs):
        self.session = WorkshopSession(product, cs, folder)
        super().__init__(ws, **kwargs)
        self._build_editor()
        kids = list(self.widget.children)
        at = kids.index(self._table)
        self.widget.children = tuple(kids[:at] + [self._workshop] + kids[at:])
        self._sync()

    # -- dashboard --------------------------------------------------------------------
    def make_filters(self):
        """Segment (scope) and the split of the stage data."""
        _ = self.t
        out = dict(account_filters(self.ws, ("segment",), t=_))
        out["split"] = choice_filter("split", _("Split by"),
                                     [label for label, _key in _SPLITS], all_label=None)
        out["split"].options = [(_(label), label) for label, _key in _SPLITS]
        return out

    def params(self) -> dict[str, Any]:
        """Filter values plus the agreed map's fingerprint (edits recompute the view)."""
        return {**super().params(), "_map": self.session.map.fingerprint()}

    def reach(self, journey: JourneyMap):
        """:func:`journey_reach` of ``journey`` over the whole workspace, every split carried.

        Asked of the engine once per map version (an edit changes the fingerprint); a
        filter change narrows it to the accounts in scope.
        """
        # stakeholder splits cope with a missing table ("(unknown)"); accounts columns not
        by = [v for _label, v in _SPLITS if v and (v in ("champion_domain", "decision_style")
                                              or self.ws.has("accounts", v))]
        return self.memo("reach", journey.fingerprint(), lambda: journey_reach(
            self.ws, journey, by=by, as_of=self.as_of), size=4)

    def compute(self, params):
        """Stage flow of the agreed map in the scope: KPIs, funnel, days, table."""
        from cs_analysis import charts

        _ = self.t
        ws = self.scoped(params)
        split = dict(_SPLITS).get(params.get("split"), "") or None
        m = self.session.map
        reach = self.reach(m).narrow(self.scope_ids(params))
        if split and split not in reach.frame:  # not in this workspace: the analysis says so
            flow = stage_flow(ws, m, by=split, as_of=self.as_of, stall_days=_STALL_DAYS)
        else:
            flow = stage_flow(ws, m, by=split, as_of=self.as_of, reach=reach,
                              stall_days=_STALL_DAYS)
        total = (stage_flow(ws, m, as_of=self.as_of, reach=reach, stall_days=_STALL_DAYS)
                 if split else flow)
        sig = total[total["has_signal"]]
        n = int(total["accounts"].iloc[0]) if len(total) else 0
        kpis = [KPI(_("Accounts in scope"), n, fmt_int, n=None)]
        if not sig.empty:
            last = sig.iloc[-1]
            kpis.append(KPI(_("Reached '{stage}'", stage=last["stage"]),
                            float(last["reached_share"]), fmt_pct,
                            detail=_("{k} of {n}", k=fmt_int(last["reached"]), n=fmt_int(n)),
                            n=n))
            worst = sig.sort_values(["stalled", "position"], ascending=[False, True]).iloc[0]
            kpis.append(KPI(_("Most stalled before"), float(worst["stalled"]), fmt_int,
                            detail=_("'{stage}': waiting over {days} days",
                                     stage=worst["stage"], days=_STALL_DAYS),
                            n=int(worst["from_reached"])))
        kpis.append(KPI(_("Stages in the agreed map"), len(m.stages), fmt_int,
                        detail=_("{k} with a data signal · {goals} goals", k=len(sig),
                                 goals=len(m.goals))))
        panels = [
            Panel("funnel", _("Accounts per stage"),
                  caption=_("Bars: share of accounts that reached the stage; red ticks: "
                            "share stalled before it."), wide=True,
                  build=lambda: relabel_chart(charts.journey_funnel(flow, by=split), _)
                  if not sig.empty else None),
            Panel("days", _("Days between stages"),
                  caption=_("Median and quartiles from the Kaplan-Meier estimate; accounts "
                            "still on the way are censored, not dropped."),
                  build=lambda: relabel_chart(charts.journey_days(flow, by=split), _)
                  if not sig.empty else None),
        ]
        self._last_flow = total
        scope = _("{n} accounts · data as of {date}", n=fmt_int(n),
                  date=date_text(self.as_of or self.ws.as_of, self.lang))
        return View(kpis=kpis, panels=panels, table=flow, table_title=N_("Data per stage"),
                    table_labels={k: _(v) for k, v in _FLOW_LABELS.items()},
                    table_formats=_flow_formats(), scope=scope, csv_name="journey_flow.csv")

    def set_language(self, lang) -> None:
        """The base class's relabelling, plus the workshop editor's labels."""
        super().set_language(lang)
        self._label_editor()
        self._sync()

    # -- editor ---------------------------------------------------------------------
    def _build_editor(self):
        import ipywidgets as widgets

        w = widgets
        lay = w.Layout(width="auto")
        self._compare = _css_widget(w.HTML(), "cs-journey-compare-box")
        self._agreed = _css_widget(w.HTML(), "cs-journey-agreed")
        self._status = _css_widget(w.HTML(), "cs-journey-status")
        self._stage = _css_widget(w.Dropdown(options=[""]), "cs-journey-stage")
        self._name = _css_widget(w.Text(), "cs-journey-name")
        self._goal_text = _css_widget(w.Text(), "cs-journey-goaltext")
        self._success = _css_widget(w.Text(), "cs-journey-success")
        self._owner = _css_widget(w.Text(), "cs-journey-owner")
        self._sig_kind = _css_widget(w.Dropdown(options=[
            "none", "milestone", "events", "active_users", "survey"]), "cs-journey-sigkind")
        self._sig_value = _css_widget(w.Text(), "cs-journey-sigvalue")
        self._sig_n = _css_widget(w.BoundedIntText(value=1, min=1, max=100000),
                                  "cs-journey-sign")
        self._sig_extra = _css_widget(w.Text(), "cs-journey-sigextra")
        self._g_name = _css_widget(w.Text(), "cs-journey-gname")
        self._g_layer = _css_widget(w.Dropdown(options=list(LAYERS)), "cs-journey-glayer")
        self._g_metric = _css_widget(w.Dropdown(options=list(GOAL_METRICS)),
                                     "cs-journey-gmetric")
        self._g_days = _css_widget(w.BoundedIntText(value=45, min=1, max=3650),
                                   "cs-journey-gdays")
        self._g_target = _css_widget(w.FloatText(value=0.6), "cs-journey-gtarget")
        self._handout = _css_widget(w.HTML(), "cs-journey-handout")
        #: (widget, attribute, English message id) of every editor label, relabelled by
        #: :meth:`_label_editor` when the language changes.
        self._editor_labels = [
            (self._stage, "description", N_("Stage")),
            (self._name, "description", N_("Name")),
            (self._name, "placeholder", N_("new name")),
            (self._goal_text, "description", N_("Customer goal")),
            (self._success, "description", N_("Success")),
            (self._owner, "description", N_("Owner team")),
            (self._sig_kind, "description", N_("Signal")),
            (self._sig_value, "description", N_("Name(s)")),
            (self._sig_value, "placeholder", N_("milestone, event names (comma) or survey")),
            (self._sig_n, "description", N_("At least")),
            (self._sig_extra, "description", N_("Touchpoint / days")),
            (self._sig_extra, "placeholder", N_("survey touchpoint, or within days")),
            (self._g_name, "description", N_("Goal name")),
            (self._g_layer, "description", N_("Layer")),
            (self._g_metric, "description", N_("Metric")),
            (self._g_days, "description", N_("Within days")),
            (self._g_target, "description", N_("Target")),
        ]

        def button(label, cls, handler):
            b = w.Button(layout=lay)
            b.add_class(cls)
            b.on_click(lambda _b: self._guard(handler))
            self._editor_labels.append((b, "description", label))
            return b

        stage_row = w.HBox([self._stage, self._name,
                            button(N_("Rename"), "cs-journey-rename", self._on_rename),
                            button(N_("Add after"), "cs-journey-add", self._on_add),
                            button(N_("Move up"), "cs-journey-up", lambda: self._on_move(-1)),
                            button(N_("Move down"), "cs-journey-down",
                                   lambda: self._on_move(1)),
                            button(N_("Merge with next"), "cs-journey-merge", self._on_merge),
                            button(N_("Remove"), "cs-journey-remove", self._on_remove)])
        text_row = w.HBox([self._goal_text, self._success, self._owner,
                           button(N_("Update texts"), "cs-journey-texts", self._on_texts)])
        sig_row = w.HBox([self._sig_kind, self._sig_value, self._sig_n, self._sig_extra,
                          button(N_("Set signal"), "cs-journey-signal-set", self._on_signal)])
        goal_row = w.HBox([self._g_name, self._g_layer, self._g_metric, self._g_days,
                           self._g_target, button(N_("Add goal (uses the stage above)"),
                                                  "cs-journey-goal-add", self._on_goal)])
        save_row = w.HBox([button(N_("Undo"), "cs-journey-undo", self._on_undo),
                           button(N_("Save agreed map (new version)"), "cs-journey-save",
                                  self._on_save),
                           button(N_("Export handout"), "cs-journey-export", self._on_export)])
        for row in (stage_row, text_row, sig_row, goal_row, save_row):
            row.layout.flex_flow = "row wrap"
        self._stage.observe(lambda _c: self._fill_stage(), names="value")
        self._head1 = w.HTML()
        self._head2 = w.HTML()
        self._workshop = w.VBox([self._head1, self._compare, self._head2, self._agreed,
                                 stage_row, text_row, sig_row, goal_row, save_row,
                                 self._status, self._handout])
        self._workshop.add_class("cs-journey-workshop")
        self._label_editor()

    def _label_editor(self) -> None:
        """Put the editor's labels in the dashboard's language."""
        _ = self.t
        for widget, attr, message in self._editor_labels:
            setattr(widget, attr, _(message))
        for widget in (self._stage, self._sig_kind, self._g_layer, self._g_metric):
            widget.style.description_width = "initial"
        head1 = esc(_("1. The two teams' maps"))
        head2 = esc(_("2. The agreed map (edits are saved as you make them)"))
        self._head1.value = f'<h3 class="cs-journey-h">{head1}</h3>'
        self._head2.value = f'<h3 class="cs-journey-h">{head2}</h3>'

    def _guard(self, handler) -> None:
        try:
            handler()
        except (JourneyMapError, ValueError) as exc:
            self._say(str(exc), error=True)
            return
        self._sync()
        self._cache.clear()
        self.refresh()

    def _say(self, text: str, error: bool = False) -> None:
        cls = "cs-error" if error else "cs-note"
        self._status.value = f'<div class="{cls}">{esc(text)}</div>'

    def _selected(self) -> str:
        _ = self.t
        name = self._stage.value
        if not name:
            raise JourneyMapError(_("pick a stage first"))
        return name

    def _edited(self, what: str) -> None:
        _ = self.t
        self._say(_("{what} · draft saved to {path} at {time}", what=what,
                         path=self.session.draft_path,
                         time=dt.datetime.now().strftime("%H:%M:%S")))

    def _on_rename(self):
        _ = self.t
        old = self._selected()
        self.session.apply(rename_stage, old, self._name.value)
        self._pending_select = self._name.value.strip()
        self._edited(_("Renamed '{old}' to '{new}'", old=old, new=self._pending_select))

    def _on_add(self):
        _ = self.t
        name = self._name.value.strip()
        after = self._stage.value or None
        self.session.apply(add_stage, Stage(name=name, owner="shared") if name else name,
                           after=after)
        self._pending_select = name
        self._edited(_("Added '{name}'", name=name))

    def _on_move(self, step: int):
        _ = self.t
        name = self._selected()
        i = self.session.map.index(name)
        self.session.apply(move_stage, name, i + step)
        self._pending_select = name
        self._edited(_("Moved '{name}'", name=name))

    def _on_merge(self):
        _ = self.t
        name = self._selected()
        i = self.session.map.index(name)
        if i + 1 >= len(self.session.map.stages):
            raise JourneyMapError(_("'{name}' is the last stage; nothing to merge it with",
                                         name=name))
        other = self.session.map.stages[i + 1].name
        self.session.apply(merge_stages, name, other)
        self._pending_select = name
        self._edited(_("Merged '{other}' into '{name}'", other=other, name=name))

    def _on_remove(self):
        _ = self.t
        name = self._selected()
        self.session.apply(remove_stage, name)
        self._edited(_("Removed '{name}'", name=name))

    def _on_texts(self):
        _ = self.t
        name = self._selected()
        self.session.apply(edit_stage, name, customer_goal=self._goal_text.value,
                           success=self._success.value, owner=self._owner.value)
        self._pending_select = name
        self._edited(_("Updated the texts of '{name}'", name=name))

    def _on_signal(self):
        _ = self.t
        name = self._selected()
        kind, value = self._sig_kind.value, self._sig_value.value.strip()
        extra = self._sig_extra.value.strip()
        if kind == "none":
            sig = None
        elif kind == "milestone":
            sig = {"milestone": value}
        elif kind == "survey":
            sig = {"survey": value, **({"touchpoint": extra} if extra else {})}
        else:
            names = [x.strip() for x in value.split(",") if x.strip()] or "any"
            sig = ({"events": names, "at_least": int(self._sig_n.value)} if kind == "events"
                   else {"active_users": int(self._sig_n.value),
                         **({"events": names} if names != "any" else {})})
            if kind == "events" and extra:
                if not extra.isdigit():
                    raise JourneyMapError(_("within days must be a whole number, got "
                                                 "{value}", value=repr(extra)))
                sig["within_days"] = int(extra)
        self.session.apply(set_signal, name, sig)
        self._pending_select = name
        self._edited(_("Set the signal of '{name}'", name=name))

    def _on_goal(self):
        _ = self.t
        raw = {"name": self._g_name.value.strip(), "layer": self._g_layer.value,
               "metric": self._g_metric.value, "target": float(self._g_target.value)}
        if raw["metric"] == "stage_share":
            raw.update(stage=self._selected(), within_days=int(self._g_days.value))
        self.session.apply(add_goal, raw)
        self._edited(_("Added goal '{name}'", name=raw["name"]))

    def _on_undo(self):
        _ = self.t
        self.session.undo()
        self._edited(_("Undone"))

    def _on_save(self):
        _ = self.t
        path = self.session.save()
        self._say(_("Saved version {version} of the agreed map to {path}",
                         version=self.session.map.version, path=path))

    def _on_export(self):
        import base64

        m = self.session.map
        progress = goal_progress(self.ws, m, as_of=self.as_of) if m.goals else None
        flow = getattr(self, "_last_flow", None)
        stem = self.session.folder / f"{self.session.name}-v{m.version}-handout"
        _ = self.t
        out = export_handout(m, stem, flow=flow, progress=progress,
                             as_of=self.as_of or self.ws.as_of, lang=self.lang)
        data = base64.b64encode(out["html"].read_bytes()).decode("ascii")
        link = esc(_("Download the handout (HTML, printable)"))
        self._handout.value = (f'<a class="cs-download" download="{esc(out["html"].name)}" '
                               f'href="data:text/html;base64,{data}">{link}</a>')
        self._say(_("Handout written to {html} and {pdf}", html=out["html"], pdf=out["pdf"])
                  if "pdf" in out else
                  _("Handout written to {html} (no PDF converter found)", html=out["html"]))

    # -- drawing the workshop part ------------------------------------------------------
    def reload_draft(self) -> None:
        """Re-read the draft from disk (a kernel started before the last edits)."""
        self.session.reload()
        self._sync()
        self.refresh()

    def _sync(self) -> None:
        m = self.session.map
        self._compare.value = self.session.comparison.html(self.lang)
        self._agreed.value = _agreed_html(m, self.t)
        names = m.stage_names
        want = getattr(self, "_pending_select", None) or self._stage.value
        self._stage.options = names
        self._stage.value = want if want in names else (names[0] if names else None)
        self._pending_select = None
        self._fill_stage()
        if self.session.notice:
            self._say(self.session.notice, error=True)

    def _fill_stage(self) -> None:
        name = self._stage.value
        if not name:
            return
        try:
            s = self.session.map.stage(name)
        except JourneyMapError:
            return
        self._goal_text.value, self._success.value = s.customer_goal, s.success
        self._owner.value = s.owner


def _agreed_html(m: JourneyMap, t=None) -> str:
    _ = t or translator()
    rows = "".join(
        f'<tr data-stage="{esc(s.name)}"><td>{i}</td><td class="cs-journey-stage-name">'
        f'{esc(s.name)}</td><td>{esc(", ".join(s.aliases))}</td><td>{esc(s.customer_goal)}</td>'
        f'<td>{esc(s.success)}</td><td>{esc(s.signal.describe() if s.signal else "")}</td>'
        f"<td>{esc(s.owner)}</td></tr>"
        for i, s in enumerate(m.stages, 1))
    goals = "".join(f"<li><b>{esc(g.name)}</b> ({esc(g.layer)}): {esc(g.definition())}</li>"
                    for g in m.goals)
    if not goals:
        goals = "<li>" + esc(_("No shared goal yet: add at least one.")) + "</li>"
    p = m.persona
    heads = "".join(f"<th>{esc(_(h))}</th>" for h in (
        "#", N_("Stage"), N_("Also called"), N_("Customer goal"), N_("Success"),
        N_("Data signal"), N_("Owner team")))
    persona, shared = esc(_("Persona:")), esc(_("Shared goals"))
    version = esc(_("Version {n}", n=m.version))
    return (f'<div class="cs-journey-agreed-map"><p><b>{persona}</b> '
            f'{esc(p.name)} · {esc(p.role)} · {esc(p.domain)}</p>'
            f'<table class="cs-journey-compare"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{rows}</tbody></table><p><b>{shared}</b></p>"
            f'<ul>{goals}</ul><p class="cs-journey-version">{version}</p></div>')


def resume(app) -> Any:
    """In a preheated Voila kernel, wait for the viewer, then re-read the workshop draft.

    A preheated kernel runs the dashboard before anyone opens it, so edits saved since
    (by another viewer's kernel) would be missing; this waits for the page request
    (:func:`voila.utils.wait_for_request`, a no-op outside preheated Voila) and reloads.
    Returns ``app`` unchanged otherwise (an error panel is left alone).
    """
    if isinstance(app, JourneyWorkshopDashboard):
        try:
            from voila.utils import wait_for_request

            wait_for_request()
        except ImportError:  # pragma: no cover - voila is a dependency
            pass
        app.reload_draft()
        lang = _url_language()  # the request's ?lang= (see follow_request)
        if lang:
            app.set_language(lang)
    return None


class SharedGoalsDashboard(Dashboard):
    """Both teams review the agreed goal metrics over time against their targets.

    The goals come from the latest saved agreed map in the workshop folder
    (:func:`latest_agreed`), else from the demo's two example maps merged. One KPI tile
    and one chart per goal, with the goal's definition beside it (:meth:`Goal.definition`).

    Parameters
    ----------
    ws : Workspace
    journey : JourneyMap or path, optional
        The map whose goals are tracked (default as above).
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook: ClassVar[str] = "shared_goals.ipynb"
    #: views depend on the latest agreed journey map (it changes in workshops): not shared
    share_views: ClassVar[bool] = False
    fallback_title: ClassVar[str] = "Shared goals"

    def __init__(self, ws, *, journey=None, **kwargs):
        if journey is None:
            journey = latest_agreed() or merge_maps(*default_maps())
        self.journey = load_map(journey)
        super().__init__(ws, **kwargs)

    def warm_up(self) -> None:
        """Compute both grains now, so toggling the grain needs no query.

        A grain that fails is left for its view to report.
        """
        for grain in ("quarter", "month"):
            try:
                self.progress(grain)
            except Exception:  # noqa: BLE001, S112 - shown by the view that needs it
                continue

    def make_filters(self):
        """Segment, grain, and whether to split the lines by segment."""
        _ = self.t
        out = dict(account_filters(self.ws, ("segment",), t=_))
        out["grain"] = toggle_filter("grain", _("Periods"), [(_("Quarter"), "quarter"),
                                                             (_("Month"), "month")])
        if self.ws.has("accounts", "segment"):
            out["by_segment"] = toggle_filter("by_segment", _("Lines"),
                                              [(_("All together"), False),
                                               (_("By segment"), True)])
        return out

    def progress(self, grain: str) -> tuple[Any, Any]:
        """:func:`goal_progress` over the whole workspace: in total, and by segment.

        Asked of the engine once per grain. Every goal metric is computed within each
        segment on its own (shares of that segment's accounts, scores of its responses),
        so the rows of one segment are the progress of ``ws.where(segment=...)`` (less
        the periods in which that segment has no account or response, which have no
        value either way); a filter change only picks rows.
        """
        def run():
            total = goal_progress(self.ws, self.journey, grain=grain, as_of=self.as_of)
            by = (goal_progress(self.ws, self.journey, grain=grain, by="segment",
                                as_of=self.as_of)
                  if self.ws.has("accounts", "segment") else None)
            return total, by

        return self.memo("progress", grain, run)

    def compute(self, params):
        """Goal progress in the scope: one KPI and one chart per goal."""
        from cs_analysis import charts

        _ = self.t
        segment = params.get("segment")
        by = "segment" if params.get("by_segment") else None
        grain = params.get("grain") or "quarter"
        total_all, by_segment = self.progress(grain)
        if segment in (None, ALL, ""):
            total = total_all
            prog = by_segment if by else total_all
        else:  # one segment: its rows of the split progress
            rows = by_segment[by_segment["segment"] == str(segment)].reset_index(drop=True)
            total = rows.drop(columns="segment")
            prog = rows if by else total
        kpis, panels = [], []
        for g in self.journey.goals:
            t = total[(total["goal"] == g.name) & total["value"].notna()]
            if t.empty:
                kpis.append(KPI(g.name, None, detail=_("no observable period yet")))
            else:
                last = t.iloc[-1]
                status = _("target met") if bool(last["met"]) else _("below target")
                kpis.append(KPI(g.name, float(last["value"]),
                                lambda v, g=g: format_target(g.metric, v),
                                detail=_("{period} · target {target} · {status}",
                                         period=last["period_label"],
                                         target=format_target(g.metric, g.target),
                                         status=status),
                                n=int(last["denominator"]),
                                n_label=N_("responses") if g.metric in ("nps", "csat", "ces")
                                else N_("accounts"),
                                warning=_("small sample") if bool(last["small_sample"])
                                else ""))
            d = prog[prog["goal"] == g.name]
            panels.append(Panel(f"goal-{slug(g.name)}", f"{g.name} ({_(g.layer)})",
                                caption=g.definition(),
                                build=lambda d=d: relabel_chart(charts.goal_trend(d, by=by), _)
                                if d["value"].notna().any() else None))
        return View(kpis=kpis, panels=panels, table=prog,
                    table_title=N_("Goal values per period"),
                    table_labels={k: _(v) for k, v in _GOAL_LABELS.items()},
                    scope=_("{n} shared goals from '{title}' (version {version})",
                            n=len(self.journey.goals), title=self.journey.title,
                            version=self.journey.version),
                    csv_name="shared_goals.csv")
