"""The health dashboards: ``dashboards/account_health.ipynb`` and ``dashboards/account.ipynb``.

:class:`AccountHealthDashboard` (VP of CS, CS managers) computes what needs the workspace
once -- each measure's raw values today and at the backtest snapshots
(:func:`cs_analysis.health.measure_values`, :func:`~cs_analysis.health.snapshot_values`)
and the renewal calendar -- and then re-scores from those frames: moving a weight slider
is arithmetic (:func:`~cs_analysis.health.score`, :func:`~cs_analysis.health.evaluate`),
never an engine query. Account names in its renewal-risk table link to the account page.

:class:`AccountDashboard` is one account's page (the page a CSM opens before a renewal
call): health over time with each measure, MRR history, weekly active users, onboarding
stages, tickets, survey answers and comments, stakeholders and CS activities. Voila passes
the URL's query (``account.ipynb?account=A00042``) to the kernel: :func:`requested_account`
reads it (after :func:`voila.utils.wait_for_request` in a preheated kernel) from the
``QUERY_STRING`` environment variable. Customer text is always escaped.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import ClassVar
from urllib.parse import parse_qs, quote

import ipywidgets as widgets
import pandas as pd

from cs_analysis import health as h
from cs_analysis.dashboard.base import (
    ALL,
    KPI,
    Dashboard,
    ErrorPanel,
    Panel,
    View,
    choice_filter,
    date_text,
    esc,
    fit_chart,
    fmt_int,
    fmt_money,
    fmt_pct,
    is_missing,
)
from cs_analysis.dashboard.base import table_html as _table_html
from cs_analysis.i18n import N_, resolve_language, translator
from cs_analysis.time import period_end, period_of, resolve_as_of

__all__ = ["AccountDashboard", "AccountHealthDashboard", "account_href", "requested_account"]

#: The account page, relative to another rendered dashboard.
ACCOUNT_PAGE = "account.ipynb"

#: Axis, legend and tooltip titles of the health charts (English message ids, as
#: :mod:`cs_analysis.charts` writes them; translated by ``fit_chart(..., t=)``).
CHART_TITLES = (N_("Share of accounts"), N_("Band"), N_("AUC (0.5 = chance)"),
                N_("Share that churned in the horizon"), N_("Points (0-100)"),
                N_("Measure"), N_("score"), N_("Active users"))
#: Headers of the renewal-risk list shown on screen (the CSV keeps the column names).
_RISK_LABELS = {"account_name": N_("Account"), "account_id": N_("Id"),
                "segment": N_("Segment"), "csm_owner": N_("CSM"),
                "renewal_date": N_("Renewal"), "days_to_renewal": N_("Days"),
                "mrr_at_stake": N_("MRR at stake"), "score": N_("Score"), "band": N_("Band"),
                "reasons": N_("Reasons"), "rank": N_("Rank")}
#: Headers of the account page's tables (measures, onboarding, tickets, surveys, activities).
_ACCOUNT_LABELS = {
    "measure": N_("Measure"), "kind": N_("Kind"), "value": N_("Value"),
    "points": N_("Points"), "weight_share": N_("Weight share"),
    "contribution": N_("Contribution"), "stage_label": N_("Stage"), "status": N_("Status"),
    "clock_start": N_("Clock start"), "reached_at": N_("Reached"), "days": N_("Days"),
    "target_days": N_("Target days"), "within_target": N_("Within target"),
    "opened_at": N_("Opened"), "priority": N_("Priority"), "category": N_("Category"),
    "phase": N_("Phase"), "resolved_at": N_("Resolved"), "csat": N_("CSAT"),
    "responded_at": N_("Date"), "survey": N_("Survey"), "score": N_("Score"),
    "respondent_name": N_("Respondent"), "respondent_role": N_("Role"),
    "comment": N_("Comment"), "activity": N_("Activity"), "occurred_at": N_("Date"),
    "owner": N_("Owner"), "channel": N_("Channel"), "outcome": N_("Outcome")}
#: The labels of the measures the code computes (cs_analysis.health.MEASURES), so a model
#: that keeps them reads in the dashboard's language; a model's own labels show as written.
MEASURE_LABELS = (N_("Usage trend"), N_("Breadth of feature use"), N_("Active users"),
                  N_("Onboarding stage reached"), N_("NPS answers"), N_("CSAT"),
                  N_("Critical tickets before renewal"), N_("Champion departed"),
                  N_("Decision-maker sentiment"), N_("CSM rating"), N_("Health score"))
_MODEL_HINT = N_("Fix the model file named in the message, then reload.")


def _launch_translator(kwargs):
    from cs_analysis.dashboard.base import _url_language

    return translator(resolve_language(kwargs.get("lang") or _url_language()))


def account_href(account_id) -> str:
    """Link to an account's page from another rendered dashboard."""
    return f"{ACCOUNT_PAGE}?account={quote(str(account_id), safe='')}"


def _slider(name: str, label: str, value: float, lo: float, hi: float, step: float
            ) -> widgets.FloatSlider:
    w = widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=label,
                            readout_format=".1f" if step < 1 else ".0f",
                            continuous_update=False, layout=widgets.Layout(width="300px"))
    for c in ("cs-filter", f"cs-filter-{name}", "cs-slider"):
        w.add_class(c)
    w.style.description_width = "initial"
    return w


def _score_fmt(x) -> str:
    return "–" if is_missing(x) else f"{x:.0f}"


def _auc_fmt(x) -> str:
    return "–" if is_missing(x) else f"{x:.3f}"


class AccountHealthDashboard(Dashboard):
    """Account health: live weights, the backtest AUC, bands, and the renewal-risk list.

    Filters: segment, and one slider per measure weight plus the qualitative share. KPI
    tiles: **Backtest AUC** of the score at these weights (account-clustered interval;
    scoped to the segment), **Red accounts** today, **MRR in red**, **Risky renewals**
    (red or yellow, renewing within the horizon) and their MRR at stake. Charts: bands
    by segment and by CSM, each measure's AUC alone, calibration by band. Table: the
    renewal-risk list with reasons (CSV download); account names link to the account
    page.

    Parameters
    ----------
    ws : Workspace
    model : HealthModel, str, Path or mapping, optional
        Default ``cs_analysis/defaults/health_model.yml``.
    horizon_days : int
        Renewal horizon (default 120).
    backtest_horizon_days, snapshots
        Backtest horizon and snapshots (:func:`cs_analysis.health.backtest`).
    n_boot : int
        Bootstrap resamples of the live AUC interval.
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook = "account_health.ipynb"
    fallback_title = "Account health"
    weight_max: ClassVar[float] = 6.0

    def __init__(self, ws, model=None, *, horizon_days: int = 120,
                 backtest_horizon_days: int = 180, snapshots=8, n_boot: int = 100, **kwargs):
        self.model = h.load_model(model if model not in (None, "") else None)
        self.horizon_days = horizon_days
        self.backtest_horizon_days = backtest_horizon_days
        self.snapshots = snapshots
        self.n_boot = n_boot
        self.currency = ws.currency
        super().__init__(ws, **kwargs)

    @classmethod
    def launch(cls, workspace=None, model=None, **kwargs):
        """Open the workspace and the model, or a friendly error panel (file/line)."""
        try:
            model = h.load_model(model or None)
        except h.HealthError as exc:
            _ = _launch_translator(kwargs)
            return ErrorPanel(str(exc), _(_MODEL_HINT), lang=_.lang)
        return super().launch(workspace, model=model, **kwargs)

    # -- filters ------------------------------------------------------------------
    def make_filters(self):
        """Segment, a weight slider per measure, and the qualitative share."""
        _ = self.t
        out: dict[str, widgets.Widget] = {}
        if self.ws.has("accounts", "segment"):
            segs = self.ws.table("accounts", columns=["segment"])[["segment"]].distinct()
            values = sorted(segs.to_pandas()["segment"].dropna().astype(str))
            out["segment"] = choice_filter("segment", _("Segment"), values, t=_)
        for m in self.model.measures:
            hi = max(self.weight_max, m.weight)
            out[f"w_{m.name}"] = _slider(f"w_{m.name}", _(m.label), m.weight, 0.0, hi, 0.5)
        out["qualitative_share"] = _slider("qualitative_share", _("Qualitative share"),
                                           self.model.qualitative_share, 0.0, 1.0, 0.05)
        return out

    # -- what needs the workspace, once ----------------------------------------------
    def today(self) -> h.Values:
        """Raw measure values per paying account at the as-of date."""
        return self.memo("today", (), lambda: h.measure_values(self.ws, self.model,
                                                                as_of=self.as_of))

    def pooled(self) -> tuple[pd.DataFrame, dict]:
        """Raw values at the backtest snapshots with outcomes."""
        return self.memo("pooled", (), lambda: h.snapshot_values(
            self.ws, self.model, self.backtest_horizon_days, self.snapshots,
            as_of=self.as_of))

    def calendar(self) -> pd.DataFrame:
        """Renewals within the horizon (:func:`cs_analysis.renewals.renewal_calendar`)."""
        from cs_analysis.renewals import renewal_calendar

        return self.memo("calendar", (), lambda: renewal_calendar(
            self.ws, self.horizon_days, as_of=self.as_of,
            critical=self.model.critical_priorities))

    def measure_table(self) -> pd.DataFrame:
        """Each measure's AUC alone (does not depend on the weights), once."""
        def run():
            pooled, skipped = self.pooled()
            return h.evaluate(pooled, self.model, horizon_days=self.backtest_horizon_days,
                              n_boot=self.n_boot, skipped=skipped).measures
        return self.memo("measures", (), run)

    def warm_up(self) -> None:
        """Compute the per-measure backtest now (the first view did the rest)."""
        try:
            self.measure_table()
        except h.HealthError:
            pass

    def weighted(self, params) -> h.HealthModel:
        """The model with the sliders' weights and qualitative share."""
        w = {m.name: float(params.get(f"w_{m.name}", m.weight)) for m in self.model.measures}
        return self.model.with_weights(w, qualitative_share=float(
            params.get("qualitative_share", self.model.qualitative_share)))

    # -- the view ------------------------------------------------------------------
    def compute(self, params):
        """Re-score today's book and the snapshots with the sliders' weights."""
        from cs_analysis import charts

        _ = self.t
        lang = self.lang
        model = self.weighted(params)
        vals = self.today()
        seg = params.get("segment")
        scored = h.score(vals, model)
        pooled, skipped = self.pooled()
        if seg not in (None, ALL, ""):
            scored = scored[scored["segment"].astype(str) == seg]
            pooled = pooled[pooled["segment"].astype(str) == seg]
        if sum(model.weights().values()) <= 0:
            raise h.HealthError("every weight is 0: move at least one slider above 0")
        bt = h.evaluate(pooled, model, horizon_days=self.backtest_horizon_days,
                        n_boot=self.n_boot, per_measure=False, skipped=skipped)
        res = h.HealthScores(scored.reset_index(drop=True), vals.as_of, vals.measures,
                             dict(vals.skipped), model)
        cal = self.calendar()
        if seg not in (None, ALL, ""):
            cal = cal[cal["segment"].astype(str) == seg]
        risk = h.renewal_risk(self.ws, model, self.horizon_days, scores=res,
                              calendar=cal).accounts
        red = scored["band"] == "red"
        risky = risk[risk["band"].isin(["red", "yellow"])]
        n = len(scored)
        kpis = [
            KPI(_("Backtest AUC"), bt.auc, format=_auc_fmt,
                detail=_("95% CI {lower}–{upper} · 0.5 = chance", lower=_auc_fmt(bt.lower),
                         upper=_auc_fmt(bt.upper)),
                n=int(bt.measures.iloc[0]["n"]), n_label=N_("account-snapshots"),
                warning=_("few churns: wide interval") if bt.measures.iloc[0]["events"] < 30
                else ""),
            KPI(_("Red accounts"), red.mean() if n else None,
                detail=_("{red} of {n} paying accounts", red=fmt_int(int(red.sum())),
                         n=fmt_int(n)), n=n),
            KPI(_("MRR in red"), float(scored.loc[red, "mrr"].sum()),
                format=lambda x: fmt_money(x, self.currency, lang),
                detail=_("{share} of MRR", share=fmt_pct(scored.loc[red, "mrr"].sum()
                                                         / scored["mrr"].sum()))
                if scored["mrr"].sum() else ""),
            KPI(_("Risky renewals ({days} d)", days=self.horizon_days), len(risky),
                format=fmt_int,
                detail=_("{mrr} MRR at stake · red or yellow",
                         mrr=fmt_money(risky["mrr_at_stake"].sum(), self.currency, lang)),
                n=len(risk), n_label=N_("renewing accounts")),
        ]
        measures = self.measure_table()
        by_csm = scored[scored["csm_owner"].notna()] if "csm_owner" in scored else scored
        panels = [
            Panel("bands_segment", _("Bands by segment"),
                  build=lambda: fit_chart(charts.health_bands(scored, by="segment"), t=_),
                  caption=_("Share of paying accounts per band at these weights.")),
            Panel("calibration", _("Churn within the horizon by band"),
                  build=lambda: fit_chart(charts.band_calibration(bt.calibration), t=_),
                  caption=_("Backtest: share of accounts that churned within {days} days of "
                            "each snapshot, per band (95% Wilson interval).",
                            days=self.backtest_horizon_days)),
            Panel("measures", _("Each measure alone"),
                  build=lambda: fit_chart(charts.measure_aucs(measures.assign(
                      label=[_(x) for x in measures["label"]])), t=_),
                  caption=_("AUC of each measure's points alone on the backtest snapshots "
                            "(account-clustered interval); the dashed line is chance.")),
            Panel("bands_csm", _("Bands by CSM"),
                  build=lambda: fit_chart(charts.health_bands(by_csm, by="csm_owner"), t=_)
                  if len(by_csm) else None,
                  caption=_("Share of each CSM's paying accounts per band."),
                  empty=N_("No account has a CSM in this selection.")),
        ]
        table = risk[["account_name", "account_id", "segment", "csm_owner", "renewal_date",
                      "days_to_renewal", "mrr_at_stake", "score", "band", "reasons",
                      "rank"]].copy()
        notes = list(bt.notes[:-1]) if bt.notes else []
        notes.append(_("AUC from {k} snapshots with a {days}-day horizon; scores are "
                       "associations, not causes.", k=len(bt.snapshots),
                       days=self.backtest_horizon_days))
        scope = (_("{n:,} paying accounts on {date}", n=n, date=date_text(vals.as_of, lang))
                 + (" · " + _("segment {name}", name=seg)
                    if seg not in (None, ALL, "") else ""))
        labels = {k: _(v) for k, v in _RISK_LABELS.items()}
        return View(kpis=kpis, panels=panels, table=table,
                    table_title=_("Renewals in the next {n} days, riskiest first",
                                  n=self.horizon_days), table_labels=labels,
                    table_formats={"score": _score_fmt,
                                   "mrr_at_stake": lambda x: fmt_money(x, self.currency,
                                                                       lang)},
                    scope=scope, notes=notes, csv_name="renewal_risk.csv")

    def _draw_table(self, view: View) -> None:
        """The base table, with each account name linking to the account page."""
        super()._draw_table(view)
        frame = view.table
        if frame is None or frame.empty or "account_id" not in frame:
            return
        shown = frame.head(self.max_table_rows)
        parts = self._table.value.split("<tr><td>")
        if len(parts) - 1 != len(shown):
            return
        out = [parts[0]]
        for (aid, name), rest in zip(zip(shown["account_id"], shown["account_name"],
                                         strict=True), parts[1:], strict=True):
            cell_end = rest.index("</td>")
            href = account_href(aid) + (f"&lang={self.lang}" if self.lang != "en" else "")
            link = (f'<a class="cs-account-link" href="{esc(href)}" '
                    f'target="_blank" data-account="{esc(aid)}">'
                    f'{esc(name if not is_missing(name) else aid)}</a>')
            out.append("<tr><td>" + link + rest[cell_end:])
        self._table.value = "".join(out)


# ======================================================================================
# The account page
# ======================================================================================
def requested_account(default: str | None = None) -> str | None:
    """The ``account`` of the page's URL query (Voila), else ``default``.

    In a preheated Voila kernel the notebook runs before anyone asks for the page; this
    waits for the request first (:func:`voila.utils.wait_for_request`, a no-op
    elsewhere), then reads ``QUERY_STRING``, which Voila sets to the URL's query.
    """
    try:
        from voila.utils import wait_for_request

        wait_for_request()
    except ImportError:  # pragma: no cover - voila is a dependency
        pass
    query = parse_qs(os.environ.get("QUERY_STRING", ""))
    value = (query.get("account") or [None])[0]
    if value is None or not re.fullmatch(r"[\w.\-:@ ]{1,100}", value):
        return default
    return value


def _section(title: str, body: str, cls: str) -> str:
    return (f'<div class="cs-account-section {cls}"><div class="cs-chart-title">'
            f'{esc(title)}</div>{body}</div>')


class AccountDashboard(Dashboard):
    """One account's page: is it healthy, why, and what happened with it.

    Filter: the account (paying accounts by name; the URL's ``?account=`` picks it).
    KPI tiles: health score and band today, MRR, next renewal, open critical tickets.
    Charts: health score and each measure's points over the last quarters, MRR by month,
    weekly active users. Table: today's score measure by measure (CSV download). Below:
    onboarding stages, tickets, survey answers and comments, stakeholders and CS
    activities (customer text escaped, never trusted as HTML).

    Parameters
    ----------
    ws : Workspace
    account : str, optional
        Account id to open (default: the riskiest renewing account, else the first).
    model : optional
        Health model (default file).
    quarters : int
        Quarter ends shown in the health history (plus the as-of date).
    max_accounts : int
        Accounts offered in the dropdown (largest MRR first; the requested one always).
    **kwargs
        Passed to :class:`~cs_analysis.dashboard.Dashboard`.
    """

    notebook = "account.ipynb"
    #: compute() also sets the details panel, which a shared (cached) view would skip
    share_views: ClassVar[bool] = False
    fallback_title = "Account"

    def __init__(self, ws, account: str | None = None, model=None, *, quarters: int = 4,
                 max_accounts: int = 2000, **kwargs):
        self.model = h.load_model(model if model not in (None, "") else None)
        self.account = str(account) if account else None
        self.quarters = quarters
        self.max_accounts = max_accounts
        self._details = widgets.HTML("")
        self._details.add_class("cs-account-details")
        super().__init__(ws, **kwargs)
        self.widget.children = (*self.widget.children, self._details)

    @classmethod
    def launch(cls, workspace=None, account=None, model=None, **kwargs):
        """Open the workspace and the model, or a friendly error panel."""
        try:
            model = h.load_model(model or None)
        except h.HealthError as exc:
            _ = _launch_translator(kwargs)
            return ErrorPanel(str(exc), _(_MODEL_HINT), lang=_.lang)
        return super().launch(workspace, account=account, model=model, **kwargs)

    def _accounts(self) -> pd.DataFrame:
        as_of = resolve_as_of(self.ws, self.as_of)
        cols = ["account_id"] + [c for c in ("account_name",) if self.ws.has("accounts", c)]
        acc = self.ws.table("accounts", columns=["account_id", "signup_date", *cols[1:]])
        acc = acc.filter(acc.signup_date <= as_of).select(*cols).to_pandas()
        acc["account_id"] = acc["account_id"].astype(str)
        if "account_name" not in acc:
            acc["account_name"] = acc["account_id"]
        from cs_analysis.retention import mrr_at

        m = mrr_at(self.ws, as_of)
        acc = acc.merge(m, on="account_id", how="left").fillna({"mrr": 0.0})
        return acc.sort_values(["mrr", "account_name"], ascending=[False, True])

    def make_filters(self):
        """The account dropdown."""
        _ = self.t
        acc = self._accounts()
        keep = acc.head(self.max_accounts)
        if self.account and self.account not in set(keep["account_id"]):
            keep = pd.concat([acc[acc["account_id"] == self.account], keep])
        keep = keep.sort_values("account_name")
        options = [(f"{n} ({i})", i) for i, n in zip(keep["account_id"], keep["account_name"],
                                                     strict=True)]
        if not options:
            raise h.HealthError("the workspace has no account signed up by the as-of date")
        ids = [v for _label, v in options]
        value = self.account if self.account in ids else None
        if value is None:
            value = self._default_account(ids)
        w = widgets.Dropdown(options=options, value=value, description=_("Account"),
                             layout=widgets.Layout(width="420px"))
        w.add_class("cs-filter")
        w.add_class("cs-filter-account")
        return {"account": w}

    def _default_account(self, ids: list[str]) -> str:
        try:
            risk = h.renewal_risk(self.ws, self.model, as_of=self.as_of).accounts
            for a in risk["account_id"]:
                if a in ids:
                    return a
        except h.HealthError:
            pass
        return ids[0]

    # -- data for one account ---------------------------------------------------------
    def history(self, account: str) -> pd.DataFrame:
        """Health at the last quarter ends and the as-of date (memoised per account)."""
        as_of = resolve_as_of(self.ws, self.as_of)
        last = period_of(as_of, "quarter")
        dates = [period_end(p, "quarter") for p in range(last - self.quarters, last)]
        dates = [d for d in dates if d < as_of] + [as_of]
        return self.memo("history", account, lambda: h.account_history(
            self.ws, self.model, account, dates), size=8)

    def compute(self, params):
        """KPIs, charts and the measure table of the chosen account."""
        import altair as alt

        from cs_analysis import charts

        _ = self.t
        lang = self.lang
        account = params.get("account")
        ws1 = self.ws.where(accounts=[account])
        as_of = resolve_as_of(self.ws, self.as_of)
        info = self._accounts().set_index("account_id")
        name = info.loc[account, "account_name"] if account in info.index else account
        hist = self.history(account)
        now = hist[hist["date"] == pd.Timestamp(as_of)]
        row = now.iloc[0] if len(now) else None
        # MRR by month end over two years
        from cs_analysis.retention import mrr_at

        last_m = period_of(as_of, "month")
        months = [period_end(p, "month") for p in range(last_m - 24, last_m)] + [as_of]
        mrr = mrr_at(ws1, pd.DataFrame({"account_id": account, "date": pd.to_datetime(months)}))
        # renewal
        from cs_analysis.renewals import next_renewals

        ren = next_renewals(ws1, as_of=as_of)
        next_ren = ren["renewal_date"].min() if len(ren) else None
        days_unit = _("{n:.0f} days")
        kpis = [
            KPI(_("Health score"), None if row is None else float(row["score"]),
                format=_score_fmt,
                detail="" if row is None else _("band {band}", band=row["band"])),
            KPI(_("MRR"), float(mrr["mrr"].iloc[-1]) if len(mrr) else None,
                format=lambda x: fmt_money(x, self.ws.currency, lang),
                detail=_("on {date}", date=date_text(as_of, lang))),
            KPI(_("Next renewal"), None if next_ren is None or pd.isna(next_ren)
                else float((next_ren - pd.Timestamp(as_of)).days),
                format=lambda x: days_unit.format(n=x),
                detail="" if next_ren is None or pd.isna(next_ren)
                else date_text(next_ren, lang)),
            KPI(_("Open critical tickets"), None if row is None or pd.isna(
                row.get("open_critical_tickets")) else float(row["open_critical_tickets"]),
                format=lambda x: f"{x:.0f}", detail=", ".join(self.model.critical_priorities)),
        ]
        names = [m.name for m in self.model.measures if f"{m.name}_points" in hist]
        long = []
        score_name = _("Health score")
        for _i, r in hist.iterrows():
            long.append({"date": r["date"], "measure": score_name, "points": r["score"]})
            for n in names:
                if not pd.isna(r[f"{n}_points"]):
                    long.append({"date": r["date"], "measure": _(self.model.measure(n).label),
                                 "points": r[f"{n}_points"]})
        long = pd.DataFrame(long, columns=["date", "measure", "points"]).dropna()
        wau = self._weekly_users(ws1, as_of)
        panels = [
            Panel("history", _("Health of {name} over time", name=name),
                  build=lambda: fit_chart(charts.health_history(long), t=_)
                  if len(long) else None,
                  caption=_("Score (black) and each measure's points at quarter ends and "
                            "today, each from data up to that date."), wide=True,
                  empty=N_("The account was not paying at these dates.")),
            Panel("mrr", _("MRR by month"),
                  build=lambda: fit_chart(alt.Chart(mrr).mark_area(
                      line=True, opacity=0.4, interpolate="step-after").encode(
                      x=alt.X("date:T", title=None),
                      y=alt.Y("mrr:Q", title=f"MRR ({self.ws.currency})"),
                      tooltip=[alt.Tooltip("date:T", title=_("date")),
                               alt.Tooltip("mrr:Q", format=",.0f", title=_("MRR"))]))),
            Panel("usage", _("Weekly active users"),
                  build=lambda: fit_chart(alt.Chart(wau).mark_line(point=True).encode(
                      x=alt.X("week:T", title=None),
                      y=alt.Y("active_users:Q", title="Active users"),
                      tooltip=[alt.Tooltip("period_label:N", title=_("week")),
                               alt.Tooltip("active_users:Q", title=_("Active users"))]),
                      t=_) if len(wau) else None,
                  empty=N_("No usage in the last 26 weeks.")),
        ]
        table = self._measure_table(row, names)
        self._detail_html = self._details_html(ws1, account, as_of, name)
        return View(kpis=kpis, panels=panels, table=table,
                    table_title=N_("Today's score, measure by measure"),
                    table_labels={c: _(_ACCOUNT_LABELS[c]) for c in table.columns
                                  if c in _ACCOUNT_LABELS},
                    table_formats={"points": _score_fmt, "contribution": _score_fmt,
                                   "weight_share": fmt_pct},
                    scope=_("{name} ({account}) · data as of {date}", name=name,
                            account=account, date=date_text(as_of, lang)),
                    csv_name=f"health_{account}.csv")

    def _measure_table(self, row, names) -> pd.DataFrame:
        cols = ["measure", "kind", "value", "points", "weight_share", "contribution"]
        if row is None:
            return pd.DataFrame(columns=cols)
        out = []
        for n in names:
            m = self.model.measure(n)
            pts = row[f"{n}_points"]
            contrib = row[f"{n}_contribution"]
            share = contrib / pts if pts and not pd.isna(pts) else 0.0
            out.append({"measure": self.t(m.label), "kind": m.kind,
                        "value": h._fmt_value(n, row[f"{n}_value"]), "points": pts,
                        "weight_share": share, "contribution": contrib})
        return pd.DataFrame(out, columns=cols)

    def _weekly_users(self, ws1, as_of) -> pd.DataFrame:
        from cs_analysis.adoption import stickiness

        if not ws1.has("usage_events"):
            return pd.DataFrame(columns=["week", "active_users", "period_label"])
        st = stickiness(ws1, grain="week", as_of=as_of, periods=26).accounts
        if st.empty:
            return pd.DataFrame(columns=["week", "active_users", "period_label"])
        from cs_analysis.time import period_start

        st = st.assign(week=[pd.Timestamp(period_start(int(p), "week")) for p in st["period"]])
        return st[["week", "active_users", "period_label"]]

    def _details_html(self, ws1, account: str, as_of: dt.date, name: str) -> str:
        _ = self.t

        def table_html(frame):
            return _table_html(frame, labels={c: _(_ACCOUNT_LABELS[c]) for c in frame.columns
                                              if c in _ACCOUNT_LABELS})

        parts = []
        # onboarding stages
        try:
            from cs_analysis.onboarding import time_to_value

            tv = time_to_value(ws1, as_of=as_of)
            tv = tv[["stage_label", "status", "clock_start", "reached_at", "days",
                     "target_days", "within_target"]]
            parts.append(_section(_("Onboarding stages"), table_html(tv),
                                  "cs-account-onboarding"))
        except Exception as exc:  # noqa: BLE001 - a page section, not the whole page
            parts.append(_section(_("Onboarding stages"), f"<p>{esc(str(exc))}</p>",
                                  "cs-account-onboarding"))
        # tickets
        if ws1.has("support_tickets"):
            from cs_analysis.support import ticket_phases

            tk = ticket_phases(ws1, as_of=as_of)
            cols = [c for c in ("opened_at", "priority", "category", "phase", "resolved_at",
                                "csat") if c in tk]
            tk = tk.sort_values("opened_at", ascending=False)[cols].head(30)
            parts.append(_section(_("Support tickets (latest {n})", n=len(tk)), table_html(tk),
                                  "cs-account-tickets"))
        # surveys
        if ws1.has("survey_responses"):
            from cs_analysis.surveys import responses

            r = responses(ws1, as_of=as_of, dedup=False)
            cols = [c for c in ("responded_at", "survey", "score", "category",
                                "respondent_name", "respondent_role", "comment") if c in r]
            r = r.sort_values("responded_at", ascending=False)[cols].head(30)
            parts.append(_section(_("Survey answers and comments (latest {n})", n=len(r)),
                                  table_html(r), "cs-account-surveys"))
        # stakeholders
        if ws1.has("stakeholders"):
            try:
                from cs_analysis.journey import stakeholder_map

                parts.append(_section(_("Stakeholders"), stakeholder_map(
                    self.ws, account, as_of=as_of).html(), "cs-account-stakeholders"))
            except Exception as exc:  # noqa: BLE001
                parts.append(_section(_("Stakeholders"), f"<p>{esc(str(exc))}</p>",
                                      "cs-account-stakeholders"))
        # CS activities
        if ws1.has("cs_activities"):
            from cs_analysis.time import local_dates, on_or_before

            a = ws1.table("cs_activities", columns=["account_id", "activity", "occurred_at"])
            cols = ["activity", "occurred_at"] + [c for c in ("owner", "channel", "outcome")
                                                  if c in a.columns]
            a = a.filter(on_or_before(a.occurred_at, as_of, ws1.timezone))
            df = a.order_by(a.occurred_at.desc()).limit(30).select(*cols).to_pandas()
            df["occurred_at"] = local_dates(df["occurred_at"], ws1.timezone)
            parts.append(_section(_("CS activities (latest {n})", n=len(df)), table_html(df),
                                  "cs-account-activities"))
        return (f'<div class="cs-account" data-account="{esc(account)}">'
                f'<h2 class="cs-account-name">{esc(name)}</h2>{"".join(parts)}</div>')

    def _draw(self, view: View) -> None:
        super()._draw(view)
        self._details.value = getattr(self, "_detail_html", "")
