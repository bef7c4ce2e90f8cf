"""The voice-of-customer dashboard (``dashboards/voice_of_customer.ipynb``).

Calls :mod:`cs_analysis.surveys` (scores with intervals, themes, comments) with the
filters' scope; all numbers come from there.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import pandas as pd

from cs_analysis.contract import survey_scale
from cs_analysis.dashboard.base import (
    ALL,
    KPI,
    WIDE_PANEL_WIDTH,
    Dashboard,
    Panel,
    View,
    choice_filter,
    fit_chart,
    fmt_int,
    fmt_pct,
    range_filter,
)
from cs_analysis.i18n import N_
from cs_analysis.surveys import (
    RESPONSE_COLUMNS,
    SCORES,
    SMALL_SAMPLE,
    compare,
    metric_of,
    normalize_text,
    responses,
    themes,
)
from cs_analysis.time import local_date, period_bounds, period_label, period_of, to_date
from cs_analysis.workspace import WorkspaceError

__all__ = ["VoiceOfCustomerDashboard"]

#: Axis, legend and tooltip titles of this dashboard's charts (English message ids, as
#: :mod:`cs_analysis.charts` writes them; translated by ``fit_chart(..., t=)``).
CHART_TITLES = (N_("CSAT (top-2 box)"), N_("CES (mean score)"), N_("category"),
                N_("Share of comments"))
#: Headers of the comment table shown on screen (the CSV keeps the column names).
_TABLE_LABELS = {"date": N_("Date"), "account_name": N_("Account"),
                 "account_id": N_("Account ID"), "segment": N_("Segment"),
                 "respondent_role": N_("Role"), "touchpoint": N_("Touchpoint"),
                 "score": N_("Score"), "category": N_("Category"), "themes": N_("Themes"),
                 "comment": N_("Comment")}
#: What the groups of the group panels are, as people read them.
_GROUP_NAMES = {"segment": N_("segment"), "respondent_role": N_("role")}


def _fmt_score(metric: str, signed: bool = False, t=None):
    if metric == "nps":
        return lambda x: f"{x:+.0f}" if signed or x != 0 else "0"
    if metric == "csat":
        pts = (t or (lambda m: m))("{x:+.1f} pts")
        return (lambda x: pts.format(x=x * 100)) if signed else (lambda x: fmt_pct(x, 0))
    return (lambda x: f"{x:+.2f}") if signed else (lambda x: f"{x:.2f}")


class VoiceOfCustomerDashboard(Dashboard):
    """What customers tell us: survey scores with their uncertainty, themes and comments.

    Filters: survey (NPS, CSAT, CES, ...), segment, respondent role, touchpoint, period
    (a range of quarters) and a text search over the comments. Every number follows the
    definitions of :mod:`cs_analysis.surveys` (one response per respondent per quarter,
    the latest):

    - KPI tiles: the score with its 95% interval (NPS: delta method; CSAT: Wilson; CES:
      t) and the responses behind it; for NPS the shares of promoters and detractors;
      the change from the previous quarter with its p-value (z test on the account-level
      bootstrap over both quarters, since the same accounts answer each quarter; see
      :func:`compare`).
    - Charts: the score per quarter with its interval band; the score by segment (when no
      segment is chosen) and by role, with the largest gap tested (account-bootstrap
      standard errors, since respondents of one account answer alike; Holm-corrected);
      comment themes by category (:func:`themes`, ``cs_analysis/defaults/themes.yml``).
    - Table: the comments, newest first, with their themes; the search keeps comments
      (or accounts, roles, themes) containing the text; downloadable as CSV.
    """

    notebook = "voice_of_customer.ipynb"
    fallback_title = "Voice of the customer"
    #: Groups with fewer responses are flagged as not conclusive.
    small_sample: ClassVar[int] = SMALL_SAMPLE
    #: Theme dictionary (None: ``cs_analysis/defaults/themes.yml``).
    dictionary: ClassVar[Any] = None
    #: Bootstrap replicates of the group comparisons.
    n_boot: ClassVar[int] = 500
    _order: ClassVar[tuple[str, ...]] = ("nps", "csat", "ces")

    # -- filters ------------------------------------------------------------------------
    def make_filters(self):
        """Survey, segment, role, touchpoint, quarter range and a comment search."""
        import ipywidgets as widgets

        from cs_analysis.dashboard import account_filters

        _ = self.t

        sr = self.ws.table("survey_responses", columns=list(RESPONSE_COLUMNS))
        surveys = sorted(sr.select("survey").distinct().to_pandas()["survey"].dropna()
                         .astype(str), key=lambda x: (x not in self._order,
                                                      self._order.index(x)
                                                      if x in self._order else 0, x))
        if not surveys:
            raise WorkspaceError("this workspace's survey_responses table is empty")
        names = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}
        pick = widgets.Dropdown(options=[(_(names.get(x, x)), x) for x in surveys],
                                value=surveys[0], description=_("Survey"),
                                layout=widgets.Layout(width="220px"))
        pick.style.description_width = "initial"
        pick.add_class("cs-filter")
        pick.add_class("cs-filter-survey")
        filters: dict[str, Any] = {"survey": pick}
        filters.update(account_filters(self.ws, ("segment",), t=_))
        for name, col, label in (("role", "respondent_role", _("Role")),
                                 ("touchpoint", "touchpoint", _("Touchpoint"))):
            if self.ws.has("survey_responses", col):
                values = (self.ws.table("survey_responses").select(col).distinct()
                          .to_pandas()[col].dropna().astype(str))
                filters[name] = choice_filter(name, label, sorted(values), t=_)
        quarters = self._quarters()
        if len(quarters) > 1:
            filters["period"] = range_filter(
                "period", _("Quarters"), [(period_label(q, "quarter"), q) for q in quarters])
        search = widgets.Text(value="", description=_("Search comments"),
                              placeholder=_("e.g. pricing, 料金"), continuous_update=False,
                              layout=widgets.Layout(width="300px"))
        search.style.description_width = "initial"
        search.add_class("cs-filter")
        search.add_class("cs-filter-search")
        filters["search"] = search
        return filters

    def _quarters(self) -> list[int]:
        """Quarters (in the workspace's zone) from the first response to the as-of date."""
        sr = self.ws.table("survey_responses", columns=["responded_at"])
        day = local_date(sr.responded_at, self.ws.timezone)
        row = sr.aggregate(lo=day.min(), hi=day.max()).to_pandas()
        lo, hi = row["lo"].iloc[0], row["hi"].iloc[0]
        if pd.isna(lo) or pd.isna(hi):
            return []
        as_of = to_date(self.as_of or self.ws.as_of)
        hi = min(to_date(hi), as_of)
        first, last = period_of(to_date(lo), "quarter"), period_of(hi, "quarter")
        return list(range(first, last + 1))

    # -- the view -------------------------------------------------------------------------
    def compute(self, params):
        """KPIs, trend, groups, themes and the comment table for these filter values.

        Everything but the comment search is kept per filter values (charts included, so
        they are built once), and typing in the search box only filters the table again.
        The theme tagging and the group tests run after the KPIs and the trend are drawn
        (:attr:`Panel.build`, a callable ``View.table``).
        """
        key = tuple(sorted((k, str(v)) for k, v in params.items() if k != "search"))
        view, themed = self.memo("voc", key, lambda: self._compute_all(params), size=8)
        if themed is None:
            return dataclasses.replace(view, table=pd.DataFrame())
        search = params.get("search") or ""
        return dataclasses.replace(
            view, table=lambda: self._comment_table(themed().comments, search))

    def _compute_all(self, params) -> tuple[View, Any]:
        _ = self.t
        ws = self.scoped(params)
        survey = params["survey"]
        metric = metric_of(survey)
        score_fn = SCORES[metric]
        as_of = self.as_of or ws.as_of
        role = params.get("role")
        touch = params.get("touchpoint")
        period = params.get("period")
        quarters = None
        span = _("all quarters")
        if period and "period" in self.filters:
            options = [v for _label, v in self.filters["period"].options]
            if tuple(period) != (options[0], options[-1]):
                quarters = (period[0], period[1])
            span = f"{period_label(period[0], 'quarter')}–{period_label(period[1], 'quarter')}"
        df = self._responses(params, survey, as_of, role, touch, quarters)
        n = len(df)
        names = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}
        name = _(names[metric]) if survey in self._order else survey
        scope = _("{n:,} responses · {accounts:,} accounts · {span} · one response per "
                  "respondent per quarter (the latest)", n=n,
                  accounts=df["account_id"].nunique(), span=span)
        notes = []
        if n == 0:
            notes.append(_("No {name} responses in this selection.", name=name))
        elif n < self.small_sample:
            notes.append(_("Only {n} responses in this selection: treat the score as "
                           "anecdotal, not as a trend.", n=n))
        # a frame of responses() carries its waves (workspace zone); its scale comes here
        scale = {} if metric == "nps" else {"scale": survey_scale(survey,
                                                                  self.ws.survey_scales)}
        overall = score_fn(df, survey=survey, small_sample=self.small_sample,
                           **scale).iloc[0]
        trend = score_fn(df, grain="quarter", survey=survey, small_sample=self.small_sample,
                         **scale)
        kpis = self._kpi_tiles(metric, name, overall, df, survey, as_of, scale)
        panels = [Panel("trend", _("{name} per quarter", name=name),
                        build=lambda: fit_chart(_charts().score_trend(trend), WIDE_PANEL_WIDTH,
                                                220, t=_) if len(trend) else None,
                        caption=self._trend_caption(metric), wide=True)]
        group_col = "segment" if (params.get("segment") in (None, ALL)
                                  and "segment" in df.columns) else None
        for key, col in (("groups", group_col), ("roles", "respondent_role")):
            if col is None or col not in df.columns:
                continue
            panels.append(self._group_panel(key, df, col, metric, name, survey, notes,
                                            scale))
        themed = None
        if "comment" in df.columns:
            themed = functools.cache(lambda: themes(df, self.dictionary, by="category",
                                                    quotes=0, small_sample=self.small_sample))

            def theme_panel() -> Panel:
                th = themed()
                chart = (fit_chart(_charts().theme_bars(th.shares),
                                   height=120 + 10 * len(th.shares), t=_)
                         if len(th.comments) else None)
                return Panel(
                    "themes", _("What the comments talk about"), chart,
                    caption=_("Share of the {n:,} comments mentioning each theme, by category "
                              "(a comment can mention several); 95% Wilson intervals. Themes "
                              "come from an editable dictionary "
                              "(cs_analysis/defaults/themes.yml).", n=len(th.comments)),
                    wide=True, empty=N_("No comments in this selection."))

            panels.append(Panel("themes", _("What the comments talk about"),
                                build=theme_panel, wide=True))
        # built once per filter values: a search change redraws the same chart objects
        panels = [dataclasses.replace(p, build=functools.cache(p.build)) if p.build else p
                  for p in panels]
        return View(kpis=kpis, panels=panels, table_title=N_("Comments, newest first"),
                    scope=scope, notes=notes, csv_name=f"{survey}_comments.csv",
                    table_labels={k: _(v) for k, v in _TABLE_LABELS.items()},
                    table_formats={"score": lambda x: f"{x:g}"}), themed

    def _fetch(self, survey, as_of, role=None, touch=None) -> pd.DataFrame:
        role = None if role in (None, ALL) else role  # one key for "no filter"
        touch = None if touch in (None, ALL) else touch
        roles = None if role is None else [role]
        touchpoints = None if touch is None else [touch]
        return self.memo("responses", (survey, str(as_of), role, touch), lambda: responses(
            self.ws, survey, as_of=as_of, roles=roles, touchpoints=touchpoints))

    def warm_up(self) -> None:
        """Fetch every survey's responses now, so switching surveys needs no query.

        A preheated kernel does it before anyone opens the page. A survey that cannot
        be read is left for its view to report.
        """
        as_of = self.as_of or self.ws.as_of
        for survey in [v for _, v in self.filters["survey"].options]:
            try:
                self._fetch(survey, as_of)
            except Exception:  # noqa: BLE001, S112 - shown by the view that needs it
                continue

    def _responses(self, params, survey, as_of, role, touch, quarters) -> pd.DataFrame:
        """:func:`responses` of ``ws.where(<account filters>)`` for these filter values.

        The engine is asked once per survey, role and touchpoint (role and touchpoint
        apply before the one-response-per-respondent-per-wave rule, so they change which
        response is a respondent's latest); the accounts in scope and the quarters then
        narrow that frame in memory. Exact: deduplication is per account and respondent,
        and ``quarters`` (first, last) are whole waves.
        """
        df = self._fetch(survey, as_of, role, touch)
        if quarters is not None:
            df = df[(df["wave"] >= quarters[0]) & (df["wave"] <= quarters[1])]
        return self.in_scope(df, self.scope_ids(params)).reset_index(drop=True)

    def _kpi_tiles(self, metric: str, name: str, r, df: pd.DataFrame, survey: str,
                   as_of, scale: dict) -> list[KPI]:
        _ = self.t
        n = int(r["responses"])
        warn = (_("Fewer than {n} responses: cannot conclude", n=self.small_sample)
                if n < self.small_sample else "")
        fmt = _fmt_score(metric)
        value = r[metric]
        ci = ("–" if pd.isna(r["lower"]) else _("95% CI {lower} to {upper}",
                                                lower=fmt(r["lower"]), upper=fmt(r["upper"])))
        responses_label = N_("responses")
        head = KPI(name, None if pd.isna(value) else float(value), format=fmt, detail=ci, n=n,
                   n_label=responses_label, warning=warn)
        if metric == "nps":
            second = [KPI(_("Promoters (9-10)"), r["pct_promoters"],
                          detail=_("{k:,} of {n:,} responses", k=int(r["promoters"]), n=n),
                          n=n, n_label=responses_label),
                      KPI(_("Detractors (0-6)"), r["pct_detractors"],
                          detail=_("{k:,} of {n:,} responses", k=int(r["detractors"]), n=n),
                          n=n, n_label=responses_label)]
        elif metric == "csat":
            second = [KPI(_("Mean score"), r["mean_score"], format=lambda x: f"{x:.2f}",
                          detail=_("{k:,} of {n:,} in the top-2 box", k=int(r["top2_box"]),
                                   n=n), n=n, n_label=responses_label)]
        else:
            second = [KPI(_("Top-2 box"), r["pct_top2_box"],
                          detail=_("{k:,} of {n:,} responses", k=int(r["top2_box"]), n=n),
                          n=n, n_label=responses_label)]
        change = KPI(_("Change vs previous quarter"), None,
                     detail=_("Fewer than two quarters in this selection"))
        if df["wave"].nunique() >= 2:
            # the same accounts answer each quarter: paired account bootstrap (compare)
            c = compare(df, "period", survey, grain="quarter", correction="none",
                        small_sample=self.small_sample, n_boot=self.n_boot, **scale)
            if len(c):
                last = c.iloc[-1]
                p = last["p_value"]
                verdict = (_("could be chance") if pd.isna(p) or p >= 0.05
                           else _("unlikely to be chance"))
                ptxt = "p = –" if pd.isna(p) else f"p = {p:.2g}"
                latest = int(df["wave"].max())
                partial = period_bounds(latest, "quarter")[1] > to_date(as_of)
                so_far = _(" (to date)") if partial else ""
                change = KPI(_("Change vs previous quarter"), float(last["difference"]),
                             format=_fmt_score(metric, signed=True, t=_),
                             detail=_("{a}{so_far} vs {b} · {p}: {verdict}",
                                      a=last["group_a"], so_far=so_far, b=last["group_b"],
                                      p=ptxt, verdict=verdict),
                             n=int(last["responses_a"]),
                             n_label=N_("responses this quarter"),
                             warning=_("Small quarter: cannot conclude")
                             if bool(last["small_sample"]) else "")
        accounts = KPI(_("Accounts answering"), float(df["account_id"].nunique()),
                       format=fmt_int, detail=_("{n:,} responses", n=n))
        tiles = [head, *second, change]
        return tiles if len(tiles) >= 4 else [*tiles, accounts]

    def _trend_caption(self, metric: str) -> str:
        _ = self.t
        how = {"nps": N_("delta method"), "csat": N_("Wilson"),
               "ces": N_("t interval")}[metric]
        return _("Band: 95% interval ({how}). Hollow points: fewer than {n} responses that "
                 "quarter.", how=_(how), n=SMALL_SAMPLE)

    def _group_panel(self, key, df, col, metric, name, survey, notes, scale) -> Panel:
        """The score by ``col``; the gap test (a bootstrap) runs when the panel is built."""
        _ = self.t
        scores = SCORES[metric](df, by=col, survey=survey, small_sample=self.small_sample,
                                **scale)
        label = (_(_GROUP_NAMES[col]) if col in _GROUP_NAMES
                 else col.replace("respondent_", "").replace("_", " "))
        if len(scores) >= 2:
            small = scores.loc[scores["small_sample"], col].astype(str).tolist()
            if small:
                notes.append(_("{groups}: fewer than {n} responses, so differences by {label} "
                               "are not conclusive.", groups=", ".join(small),
                               n=self.small_sample, label=label))

        def build() -> Panel:
            caption = _("Not enough groups to compare.")
            if len(scores) >= 2:
                # respondents of one account answer alike: account-bootstrap errors
                comp = compare(df, col, survey, small_sample=self.small_sample,
                               ci="account_bootstrap", n_boot=self.n_boot, **scale)
                if len(comp):
                    order = comp["difference"].abs().sort_values(ascending=False).index
                    t = comp.reindex(order).iloc[0]
                    sig = (_("unlikely to be chance") if t["significant"]
                           else _("could be chance"))
                    fmt = _fmt_score(metric, signed=True, t=_)
                    p = "–" if pd.isna(t["p_adjusted"]) else f"{t['p_adjusted']:.2g}"
                    caption = _("Largest gap: {a} − {b} = {difference} (p = {p}, account-level "
                                "bootstrap, Holm-adjusted over {k} comparisons: {verdict}). "
                                "Lines: 95% intervals; hollow: fewer than {n} responses.",
                                a=t["group_a"], b=t["group_b"],
                                difference=fmt(t["difference"]), p=p, k=len(comp),
                                verdict=sig, n=self.small_sample)
            chart = (fit_chart(_charts().score_by_group(scores), height=200, t=_)
                     if len(scores) else None)
            return Panel(key, title, chart, caption=caption)

        title = _("{name} by {group}", name=name, group=label)
        return Panel(key, title, build=build)

    @staticmethod
    def _comment_table(comments: pd.DataFrame, search: str) -> pd.DataFrame:
        cols = [c for c in ("responded_at", "account_name", "account_id", "segment",
                            "respondent_role", "touchpoint", "score", "category", "themes",
                            "comment") if c in comments.columns]
        out = comments[cols].copy()
        text = search.strip()[:200]
        if text:
            needle = normalize_text(text)
            hay = out[[c for c in ("comment", "account_name", "respondent_role", "themes",
                                   "segment") if c in out.columns]].astype("str").agg(
                " ".join, axis=1)
            out = out[[needle in normalize_text(h) for h in hay]]
        if "responded_at" in out.columns:
            out["responded_at"] = pd.to_datetime(out["responded_at"]).dt.date
            out = out.rename(columns={"responded_at": "date"})
        return out.reset_index(drop=True)


def _charts():
    from cs_analysis import charts

    return charts
