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
    esc,
    fmt_int,
    fmt_pct,
    toggle_filter,
)
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
_SPLITS = (("no split", ""), ("segment", "segment"), ("champion domain", "champion_domain"),
           ("decision style", "decision_style"))


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
        out = dict(account_filters(self.ws, ("segment",), t=self.t))
        out["split"] = choice_filter("split", "Split by", [label for label, _ in _SPLITS],
                                     all_label=None)
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
        by = [v for _, v in _SPLITS if v and (v in ("champion_domain", "decision_style")
                                              or self.ws.has("accounts", v))]
        return self.memo("reach", journey.fingerprint(), lambda: journey_reach(
            self.ws, journey, by=by, as_of=self.as_of), size=4)

    def compute(self, params):
        """Stage flow of the agreed map in the scope: KPIs, funnel, days, table."""
        from cs_analysis import charts

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
        kpis = [KPI("Accounts in scope", n, fmt_int, n=None)]
        if not sig.empty:
            last = sig.iloc[-1]
            kpis.append(KPI(f"Reached '{last['stage']}'", float(last["reached_share"]),
                            fmt_pct, detail=f"{fmt_int(last['reached'])} of {fmt_int(n)}",
                            n=n))
            worst = sig.sort_values(["stalled", "position"], ascending=[False, True]).iloc[0]
            kpis.append(KPI("Most stalled before", float(worst["stalled"]), fmt_int,
                            detail=f"'{worst['stage']}': waiting over "
                                   f"{_STALL_DAYS} days",
                            n=int(worst["from_reached"])))
        kpis.append(KPI("Stages in the agreed map", len(m.stages), fmt_int,
                        detail=f"{len(sig)} with a data signal · {len(m.goals)} goals"))
        panels = [
            Panel("funnel", "Accounts per stage",
                  caption="Bars: share of accounts that reached the stage; red ticks: "
                  "share stalled before it.", wide=True,
                  build=lambda: charts.journey_funnel(flow, by=split)
                  if not sig.empty else None),
            Panel("days", "Days between stages",
                  caption="Median and quartiles from the Kaplan-Meier estimate; accounts "
                  "still on the way are censored, not dropped.",
                  build=lambda: charts.journey_days(flow, by=split)
                  if not sig.empty else None),
        ]
        self._last_flow = total
        scope = f"{fmt_int(n)} accounts · data as of {self.as_of or self.ws.as_of}"
        return View(kpis=kpis, panels=panels, table=flow, table_title="Data per stage",
                    table_formats=_flow_formats(), scope=scope, csv_name="journey_flow.csv")

    # -- editor ---------------------------------------------------------------------
    def _build_editor(self):
        import ipywidgets as widgets

        w = widgets
        lay = w.Layout(width="auto")
        self._compare = _css_widget(w.HTML(), "cs-journey-compare-box")
        self._agreed = _css_widget(w.HTML(), "cs-journey-agreed")
        self._status = _css_widget(w.HTML(), "cs-journey-status")
        self._stage = _css_widget(w.Dropdown(description="Stage", options=[""]),
                                  "cs-journey-stage")
        self._name = _css_widget(w.Text(description="Name", placeholder="new name"),
                                 "cs-journey-name")
        self._goal_text = _css_widget(w.Text(description="Customer goal"), "cs-journey-goaltext")
        self._success = _css_widget(w.Text(description="Success"), "cs-journey-success")
        self._owner = _css_widget(w.Text(description="Owner team"), "cs-journey-owner")
        self._sig_kind = _css_widget(w.Dropdown(description="Signal", options=[
            "none", "milestone", "events", "active_users", "survey"]), "cs-journey-sigkind")
        self._sig_value = _css_widget(w.Text(description="Name(s)", placeholder=(
            "milestone, event names (comma) or survey")), "cs-journey-sigvalue")
        self._sig_n = _css_widget(w.BoundedIntText(description="At least", value=1, min=1,
                                                   max=100000), "cs-journey-sign")
        self._sig_extra = _css_widget(w.Text(description="Touchpoint / days",
                                             placeholder="survey touchpoint, or within days"),
                                      "cs-journey-sigextra")
        self._g_name = _css_widget(w.Text(description="Goal name"), "cs-journey-gname")
        self._g_layer = _css_widget(w.Dropdown(description="Layer", options=list(LAYERS)),
                                    "cs-journey-glayer")
        self._g_metric = _css_widget(w.Dropdown(description="Metric",
                                                options=list(GOAL_METRICS)), "cs-journey-gmetric")
        self._g_days = _css_widget(w.BoundedIntText(description="Within days", value=45, min=1,
                                                    max=3650), "cs-journey-gdays")
        self._g_target = _css_widget(w.FloatText(description="Target", value=0.6),
                                     "cs-journey-gtarget")
        self._handout = _css_widget(w.HTML(), "cs-journey-handout")

        def button(label, cls, handler):
            b = w.Button(description=label, layout=lay)
            b.add_class(cls)
            b.on_click(lambda _b: self._guard(handler))
            return b

        stage_row = w.HBox([self._stage, self._name,
                            button("Rename", "cs-journey-rename", self._on_rename),
                            button("Add after", "cs-journey-add", self._on_add),
                            button("Move up", "cs-journey-up", lambda: self._on_move(-1)),
                            button("Move down", "cs-journey-down", lambda: self._on_move(1)),
                            button("Merge with next", "cs-journey-merge", self._on_merge),
                            button("Remove", "cs-journey-remove", self._on_remove)])
        text_row = w.HBox([self._goal_text, self._success, self._owner,
                           button("Update texts", "cs-journey-texts", self._on_texts)])
        sig_row = w.HBox([self._sig_kind, self._sig_value, self._sig_n, self._sig_extra,
                          button("Set signal", "cs-journey-signal-set", self._on_signal)])
        goal_row = w.HBox([self._g_name, self._g_layer, self._g_metric, self._g_days,
                           self._g_target, button("Add goal (uses the stage above)",
                                                  "cs-journey-goal-add", self._on_goal)])
        save_row = w.HBox([button("Undo", "cs-journey-undo", self._on_undo),
                           button("Save agreed map (new version)", "cs-journey-save",
                                  self._on_save),
                           button("Export handout", "cs-journey-export", self._on_export)])
        for row in (stage_row, text_row, sig_row, goal_row, save_row):
            row.layout.flex_flow = "row wrap"
        self._stage.observe(lambda _c: self._fill_stage(), names="value")
        head = w.HTML('<h3 class="cs-journey-h">1. The two teams\' maps</h3>')
        head2 = w.HTML('<h3 class="cs-journey-h">2. The agreed map (edits are saved as you '
                       'make them)</h3>')
        self._workshop = w.VBox([head, self._compare, head2, self._agreed, stage_row, text_row,
                                 sig_row, goal_row, save_row, self._status, self._handout])
        self._workshop.add_class("cs-journey-workshop")

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
        name = self._stage.value
        if not name:
            raise JourneyMapError("pick a stage first")
        return name

    def _edited(self, what: str) -> None:
        self._say(f"{what} · draft saved to {self.session.draft_path} at "
                  f"{dt.datetime.now().strftime('%H:%M:%S')}")

    def _on_rename(self):
        old = self._selected()
        self.session.apply(rename_stage, old, self._name.value)
        self._pending_select = self._name.value.strip()
        self._edited(f"Renamed '{old}' to '{self._pending_select}'")

    def _on_add(self):
        name = self._name.value.strip()
        after = self._stage.value or None
        self.session.apply(add_stage, Stage(name=name, owner="shared") if name else name,
                           after=after)
        self._pending_select = name
        self._edited(f"Added '{name}'")

    def _on_move(self, step: int):
        name = self._selected()
        i = self.session.map.index(name)
        self.session.apply(move_stage, name, i + step)
        self._pending_select = name
        self._edited(f"Moved '{name}'")

    def _on_merge(self):
        name = self._selected()
        i = self.session.map.index(name)
        if i + 1 >= len(self.session.map.stages):
            raise JourneyMapError(f"'{name}' is the last stage; nothing to merge it with")
        other = self.session.map.stages[i + 1].name
        self.session.apply(merge_stages, name, other)
        self._pending_select = name
        self._edited(f"Merged '{other}' into '{name}'")

    def _on_remove(self):
        name = self._selected()
        self.session.apply(remove_stage, name)
        self._edited(f"Removed '{name}'")

    def _on_texts(self):
        name = self._selected()
        self.session.apply(edit_stage, name, customer_goal=self._goal_text.value,
                           success=self._success.value, owner=self._owner.value)
        self._pending_select = name
        self._edited(f"Updated the texts of '{name}'")

    def _on_signal(self):
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
                    raise JourneyMapError(f"within days must be a whole number, got {extra!r}")
                sig["within_days"] = int(extra)
        self.session.apply(set_signal, name, sig)
        self._pending_select = name
        self._edited(f"Set the signal of '{name}'")

    def _on_goal(self):
        raw = {"name": self._g_name.value.strip(), "layer": self._g_layer.value,
               "metric": self._g_metric.value, "target": float(self._g_target.value)}
        if raw["metric"] == "stage_share":
            raw.update(stage=self._selected(), within_days=int(self._g_days.value))
        self.session.apply(add_goal, raw)
        self._edited(f"Added goal '{raw['name']}'")

    def _on_undo(self):
        self.session.undo()
        self._edited("Undone")

    def _on_save(self):
        path = self.session.save()
        self._say(f"Saved version {self.session.map.version} of the agreed map to {path}")

    def _on_export(self):
        import base64

        m = self.session.map
        progress = goal_progress(self.ws, m, as_of=self.as_of) if m.goals else None
        flow = getattr(self, "_last_flow", None)
        stem = self.session.folder / f"{self.session.name}-v{m.version}-handout"
        out = export_handout(m, stem, flow=flow, progress=progress,
                             as_of=self.as_of or self.ws.as_of)
        data = base64.b64encode(out["html"].read_bytes()).decode("ascii")
        pdf = f" and {out['pdf']}" if "pdf" in out else " (no PDF converter found)"
        self._handout.value = (f'<a class="cs-download" download="{esc(out["html"].name)}" '
                               f'href="data:text/html;base64,{data}">Download the handout '
                               f"(HTML, printable)</a>")
        self._say(f"Handout written to {out['html']}{pdf}")

    # -- drawing the workshop part ------------------------------------------------------
    def reload_draft(self) -> None:
        """Re-read the draft from disk (a kernel started before the last edits)."""
        self.session.reload()
        self._sync()
        self.refresh()

    def _sync(self) -> None:
        m = self.session.map
        self._compare.value = self.session.comparison.html()
        self._agreed.value = _agreed_html(m)
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


def _agreed_html(m: JourneyMap) -> str:
    rows = "".join(
        f'<tr data-stage="{esc(s.name)}"><td>{i}</td><td class="cs-journey-stage-name">'
        f'{esc(s.name)}</td><td>{esc(", ".join(s.aliases))}</td><td>{esc(s.customer_goal)}</td>'
        f'<td>{esc(s.success)}</td><td>{esc(s.signal.describe() if s.signal else "")}</td>'
        f"<td>{esc(s.owner)}</td></tr>"
        for i, s in enumerate(m.stages, 1))
    goals = "".join(f"<li><b>{esc(g.name)}</b> ({esc(g.layer)}): {esc(g.definition())}</li>"
                    for g in m.goals) or "<li>No shared goal yet: add at least one.</li>"
    p = m.persona
    return (f'<div class="cs-journey-agreed-map"><p><b>Persona:</b> {esc(p.name)} · '
            f'{esc(p.role)} · {esc(p.domain)}</p><table class="cs-journey-compare"><thead><tr>'
            "<th>#</th><th>Stage</th><th>Also called</th><th>Customer goal</th>"
            "<th>Success</th><th>Data signal</th><th>Owner</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p><b>Shared goals</b></p><ul>{goals}</ul>"
            f'<p class="cs-journey-version">Version {m.version}</p></div>')


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
        out = dict(account_filters(self.ws, ("segment",), t=self.t))
        out["grain"] = toggle_filter("grain", "Periods", [("Quarter", "quarter"),
                                                          ("Month", "month")])
        if self.ws.has("accounts", "segment"):
            out["by_segment"] = toggle_filter("by_segment", "Lines",
                                              [("All together", False), ("By segment", True)])
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
                kpis.append(KPI(g.name, None, detail="no observable period yet"))
            else:
                last = t.iloc[-1]
                status = "target met" if bool(last["met"]) else "below target"
                kpis.append(KPI(g.name, float(last["value"]),
                                lambda v, g=g: format_target(g.metric, v),
                                detail=f"{last['period_label']} · target "
                                       f"{format_target(g.metric, g.target)} · {status}",
                                n=int(last["denominator"]),
                                n_label="responses" if g.metric in ("nps", "csat", "ces")
                                else "accounts",
                                warning="small sample" if bool(last["small_sample"]) else ""))
            d = prog[prog["goal"] == g.name]
            panels.append(Panel(f"goal-{slug(g.name)}", f"{g.name} ({g.layer})",
                                caption=g.definition(),
                                build=lambda d=d: charts.goal_trend(d, by=by)
                                if d["value"].notna().any() else None))
        return View(kpis=kpis, panels=panels, table=prog, table_title="Goal values per period",
                    scope=f"{len(self.journey.goals)} shared goals from '{self.journey.title}' "
                          f"(version {self.journey.version})",
                    csv_name="shared_goals.csv")
