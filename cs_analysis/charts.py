"""Every Altair chart of the workspace, with one theme.

Charts take tidy frames returned by the analyses and return Altair charts; they never
compute metrics. Call :func:`setup` once (notebooks and dashboards do) so charts render
with no internet: it enables Altair's offline ``jupyter`` renderer, whose JavaScript is
bundled by vl-convert instead of loaded from a CDN (see stack-notes.md), and registers
the ``cs_analysis`` theme.

Use :func:`show` to display a chart as an interactive, offline ``JupyterChart`` widget,
and :func:`save` to export it as PNG / SVG / PDF: it registers the Japanese font of
Debian's ``fonts-ipaexfont-gothic`` (or ``fonts-noto-cjk``) with vl-convert first
(:func:`register_fonts`), so Japanese titles and labels are drawn, not empty boxes.
Charts know no languages: titles are written in English and a dashboard translates what
it shows (:func:`cs_analysis.dashboard.base.relabel_chart`).
"""

from __future__ import annotations

import os
from pathlib import Path

import altair as alt

THEME = "cs_analysis"
#: Colours used across charts: a calm, colour-blind-safe palette (Tableau 10).
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
           "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
GOOD, BAD, NEUTRAL = "#59a14f", "#e15759", "#bab0ac"
FONT = ("system-ui, -apple-system, 'Segoe UI', 'Hiragino Sans', 'Noto Sans JP', "
        "'IPAexGothic', 'Noto Sans CJK JP', sans-serif")
#: Folders holding Japanese fonts from Debian's packages, tried in order (plus
#: ``$CS_ANALYSIS_FONT_DIR``): fonts-ipaexfont-gothic, fonts-noto-cjk.
FONT_DIRS = ("/usr/share/fonts/opentype/ipaexfont-gothic", "/usr/share/fonts/opentype/noto",
             "/usr/share/fonts/truetype/ipaexfont-gothic")


@alt.theme.register(THEME, enable=False)
def _theme() -> alt.theme.ThemeConfig:
    return {
        "config": {
            "font": FONT,
            "view": {"stroke": None, "continuousWidth": 420, "continuousHeight": 260},
            "range": {"category": PALETTE},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#eeeeee",
                     "domainColor": "#999999"},
            "legend": {"labelFontSize": 11, "titleFontSize": 12},
            "title": {"fontSize": 14, "anchor": "start", "fontWeight": 600},
        }
    }


_SET_UP = False


def setup() -> None:
    """Enable the theme and offline rendering (idempotent; no effect on import)."""
    global _SET_UP
    if _SET_UP:
        return
    alt.theme.enable(THEME)
    alt.renderers.enable("jupyter", offline=True)
    alt.JupyterChart.enable_offline()
    _SET_UP = True


_FONTS_REGISTERED: list[str] | None = None


def register_fonts() -> list[str]:
    """Register the Japanese font folders with vl-convert (once); the folders registered.

    Static exports (PNG, SVG, PDF) are drawn by vl-convert, which only knows the fonts it
    is told about; without a Japanese font, Japanese titles, labels and segment names
    come out as empty boxes. Folders: ``$CS_ANALYSIS_FONT_DIR`` (``os.pathsep``-separated)
    then :data:`FONT_DIRS`, those that exist.
    """
    global _FONTS_REGISTERED
    if _FONTS_REGISTERED is not None:
        return list(_FONTS_REGISTERED)
    import vl_convert

    extra = [d for d in os.environ.get("CS_ANALYSIS_FONT_DIR", "").split(os.pathsep) if d]
    done = []
    for folder in [*extra, *FONT_DIRS]:
        if Path(folder).is_dir() and folder not in done:
            vl_convert.register_font_directory(folder)
            done.append(folder)
    _FONTS_REGISTERED = done
    return list(done)


def save(chart: alt.TopLevelMixin, path, *, scale: float = 2.0, **kwargs) -> Path:
    """Export ``chart`` to ``path`` (``.png``, ``.svg``, ``.pdf``, ``.html``, ``.json``).

    Offline (vl-convert), in the workspace theme, with the Japanese fonts registered
    (:func:`register_fonts`). ``scale`` multiplies the pixel size of PNG exports.
    """
    setup()
    register_fonts()
    path = Path(path)
    if path.suffix.lower() == ".png":
        kwargs.setdefault("scale_factor", scale)
    chart.save(str(path), **kwargs)
    return path


def show(chart: alt.TopLevelMixin) -> alt.JupyterChart:
    """Wrap ``chart`` in an offline, interactive ``JupyterChart`` widget."""
    setup()
    return alt.JupyterChart(chart)


# == Retention (cs_analysis.retention) =====================================================
# Charts of the retention module's tidy frames. Each keeps under Altair's 5,000-row limit by
# taking already-aggregated frames (one row per cohort cell, period or curve step).

#: Colours of the MRR bridge components (gains green / teal, losses orange / red).
BRIDGE_COLOURS = {"start": NEUTRAL, "new": GOOD, "reactivated": "#76b7b2",
                  "expansion": "#8cd17d", "contraction": "#f28e2b", "churned": BAD,
                  "end": "#4e79a7"}
_MAX_ROWS = 5000


def _group_column(frame, known: set[str]) -> str | None:
    """The ``by`` column of a retention frame: the one column that is not a known one."""
    extra = [c for c in frame.columns if c not in known]
    return extra[0] if len(extra) == 1 else None


def _check_rows(frame, what: str, hint: str) -> None:
    if len(frame) > _MAX_ROWS:
        raise ValueError(f"{what}: {len(frame)} rows is over Altair's {_MAX_ROWS}-row limit; "
                         f"{hint}")


def _pct_axis(title: str) -> alt.Axis:
    return alt.Axis(format="%", title=title)


_COHORT_KNOWN = {"cohort", "cohort_label", "period", "period_end", "accounts", "retained",
                 "rate", "observable", "kind", "basis", "start_mrr", "end_mrr",
                 "retained_mrr", "grr", "nrr"}


def cohort_heatmap(frame, *, value: str = "rate", group: str | None = None,
                   title: str | None = None, labels: bool | None = None) -> alt.Chart:
    """Cohort triangle: one row per signup cohort, one column per period since signup.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`cs_analysis.retention.cohort_retention` output (or
        ``revenue_retention(...).by_cohort`` with ``value="nrr"`` / ``"grr"``).
    value : str
        Column shown as colour (a share, 0-1).
    group : str, optional
        Show only this value of the ``by`` column; with several groups and no ``group``
        the chart is faceted, one triangle per group.
    title : str, optional
        Chart title.
    labels : bool, optional
        Print the value in each cell (default: when there are at most 400 cells).

    Returns
    -------
    altair.Chart
        Colour = ``value``; unobservable cells are kept in the data with a null value
        and drawn as blank outlined cells; the tooltip shows accounts and retained.
    """
    by = _group_column(frame, _COHORT_KNOWN)
    data = frame
    if by is not None and group is not None:
        data = data[data[by] == group]
    keep = [c for c in ("cohort_label", "period", "period_end", "accounts", "retained",
                        value, "observable", by) if c is not None and c in data.columns]
    data = data[keep].copy()
    if "period_end" in data:
        data["period_end"] = data["period_end"].dt.strftime("%Y-%m-%d")
    _check_rows(data, "cohort_heatmap", "use grain='quarter', periods=..., or group=...")
    n_cohorts = data["cohort_label"].nunique()
    x = alt.X("period:O", title="Periods since signup", axis=alt.Axis(labelAngle=0))
    y = alt.Y("cohort_label:O", title="Signup cohort", sort="ascending")
    tooltip = [alt.Tooltip("cohort_label:O", title="cohort"),
               alt.Tooltip("period:O", title="period")]
    if "period_end" in data:
        tooltip.append(alt.Tooltip("period_end:N", title="period ends"))
    tooltip += [alt.Tooltip("accounts:Q", title="accounts in cohort")]
    if "retained" in data:
        tooltip.append(alt.Tooltip("retained:Q", title="retained"))
    tooltip.append(alt.Tooltip(f"{value}:Q", title=value, format=".1%"))
    base = alt.Chart(data)
    cells = base.mark_rect().encode(
        x=x, y=y,
        color=alt.Color(f"{value}:Q", title=value,
                        scale=alt.Scale(scheme="blues", domain=[0, 1]),
                        legend=alt.Legend(format="%")),
        tooltip=tooltip,
    ).transform_filter("datum.observable")
    pending = base.mark_rect(fill="white", stroke="#dddddd", strokeWidth=0.5).encode(
        x=x, y=y,
        tooltip=[alt.Tooltip("cohort_label:O", title="cohort"),
                 alt.Tooltip("period:O", title="period"),
                 alt.Tooltip("observable:N", title="observable (period not over yet)")],
    ).transform_filter("!datum.observable")
    layers = [pending, cells]
    if labels if labels is not None else len(data) <= 400:
        layers.append(base.mark_text(fontSize=9).encode(
            x=x, y=y, text=alt.Text(f"{value}:Q", format=".0%"),
            color=alt.condition(f"datum.{value} > 0.6", alt.value("white"),
                                alt.value("#333333")),
        ).transform_filter("datum.observable"))
    chart = alt.layer(*layers).properties(width=alt.Step(22), height=alt.Step(max(
        12, min(22, 500 // max(n_cohorts, 1)))))
    if by is not None and group is None and data[by].nunique() > 1:
        chart = chart.facet(row=alt.Row(f"{by}:N", title=by))
    return chart.properties(title=title or f"Cohort {value} by periods since signup")


_CURVE_KNOWN = {"period", "cohorts", "accounts", "retained", "rate", "lower", "upper",
                "small_sample", "kind", "basis"} | _COHORT_KNOWN


def retention_curves(frame, *, color: str | None = None, band: bool = True,
                     title: str | None = None) -> alt.Chart:
    """Retention curves: rate by period since signup, per group or per cohort.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`cs_analysis.retention.average_retention` output (one curve per group,
        with its Wilson band) or :func:`~cs_analysis.retention.cohort_retention` output
        (one curve per cohort; unobservable cells are left out).
    color : str, optional
        Column for colour; default the ``by`` column, else ``cohort_label`` for cohort
        frames.
    band : bool
        Draw the ``lower`` / ``upper`` interval as a band when the frame has it.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        Lines with points; points of small samples (``small_sample``) are drawn hollow.
    """
    data = frame
    if "observable" in data.columns:
        data = data[data["observable"].astype(bool)]
    by = _group_column(data, _CURVE_KNOWN)
    if color is None:
        color = by if by is not None else ("cohort_label" if "cohort_label" in data else None)
    keep = [c for c in ("period", "rate", "lower", "upper", "accounts", "retained", "cohorts",
                        "small_sample", "cohort_label", color) if c is not None and c in data]
    data = data[list(dict.fromkeys(keep))].copy()
    if "retained" in data:
        data["retained"] = data["retained"].astype("int64")
    _check_rows(data, "retention_curves", "use average_retention(...) first")
    enc = {"x": alt.X("period:Q", title="Periods since signup",
                      axis=alt.Axis(tickMinStep=1)),
           "y": alt.Y("rate:Q", axis=_pct_axis("Retained"), scale=alt.Scale(domain=[0, 1]))}
    if color is not None:
        enc["color"] = alt.Color(f"{color}:N", title=color)
    tooltip = [alt.Tooltip(f"{c}:Q", format=".1%") if c in ("rate", "lower", "upper")
               else alt.Tooltip(c) for c in data.columns]
    base = alt.Chart(data)
    layers = []
    if band and {"lower", "upper"} <= set(data.columns):
        band_enc = {"x": enc["x"], "y": alt.Y("lower:Q"), "y2": alt.Y2("upper:Q")}
        if color is not None:
            band_enc["color"] = alt.Color(f"{color}:N", legend=None)
        layers.append(base.mark_area(opacity=0.18).encode(**band_enc))
    layers.append(base.mark_line().encode(**enc))
    point_enc = dict(enc, tooltip=tooltip)
    if "small_sample" in data:
        point_enc["fill"] = alt.condition("datum.small_sample", alt.value("white"),
                                          enc.get("color", alt.value(PALETTE[0])))
    layers.append(base.mark_point(filled=True, size=30).encode(**point_enc))
    return alt.layer(*layers).properties(title=title or "Retention by period since signup")


def km_curves(result, *, band: bool = True, title: str | None = None,
              max_points: int = 1500) -> alt.Chart:
    """Kaplan-Meier survival curves (step functions) with pointwise bands.

    Parameters
    ----------
    result : SurvivalResult or pandas.DataFrame
        :func:`cs_analysis.retention.survival` output or its ``curves`` frame; the
        grouping column is the result's ``by`` (for a frame: the one column besides
        ``days``, ``survival``, ``lower``, ``upper``, ``at_risk``, ``events``); without
        one, a single curve.
    band : bool
        Draw the pointwise ``lower`` / ``upper`` band.
    title : str, optional
        Chart title.
    max_points : int
        Draw at most this many steps per group: longer curves keep their first and last
        rows and the last step within each of ``max_points`` equal slices of time (a
        coarser drawing of the same step function; values are not recomputed).

    Returns
    -------
    altair.Chart
        x = days since signup, y = share of accounts still customers, colour = group.
    """
    import pandas as pd

    curves = getattr(result, "curves", result)
    known = ["days", "survival", "lower", "upper", "at_risk", "events"]
    by = getattr(result, "by", None) if hasattr(result, "curves") else _group_column(
        curves, set(known))
    if by is None:   # one curve: a constant label keeps one encoding for both cases
        by = "group"
        curves = curves.assign(group="All accounts")
    parts = []
    for _, g in curves.groupby(by, sort=True):
        if len(g) > max_points:
            bins = (g["days"] / max(g["days"].max(), 1) * (max_points - 2)).astype(int)
            keep = ~bins.duplicated(keep="last")
            keep.iloc[0] = keep.iloc[-1] = True
            g = g[keep]
        parts.append(g)
    data = pd.concat(parts) if parts else curves.iloc[0:0]
    data = data[[by, *known]]
    _check_rows(data, "km_curves", "lower max_points")
    x = alt.X("days:Q", title="Days since signup")
    color = alt.Color(f"{by}:N", title=by)
    base = alt.Chart(data)
    layers = []
    if band:
        layers.append(base.mark_area(opacity=0.15, interpolate="step-after").encode(
            x=x, y="lower:Q", y2="upper:Q", color=color))
    layers.append(base.mark_line(interpolate="step-after").encode(
        x=x, y=alt.Y("survival:Q", axis=_pct_axis("Still a customer"),
                     scale=alt.Scale(domain=[0, 1])),
        color=color,
        tooltip=[f"{by}:N", "days:Q", alt.Tooltip("survival:Q", format=".1%"),
                 alt.Tooltip("lower:Q", format=".1%"), alt.Tooltip("upper:Q", format=".1%"),
                 "at_risk:Q", "events:Q"]))
    return alt.layer(*layers).properties(title=title or "Customer lifetime (Kaplan-Meier)")


def mrr_waterfall(frame, *, title: str | None = None) -> alt.Chart:
    """MRR bridge as a waterfall: start, new, reactivated, expansion, contraction, churned, end.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``RevenueRetention.window_bridge(...)`` output, or ``RevenueRetention.bridge``
        rows of one period (columns ``component`` and signed ``mrr``; optionally the
        ``by`` column, which facets the chart).
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        One bar per component, floating from the running total before it to the one
        after it (``start`` and ``end`` stand on zero).
    """
    import pandas as pd

    from cs_analysis.retention import BRIDGE_COMPONENTS

    known = {"period", "period_label", "period_end", "component", "accounts", "mrr",
             "window_start", "window_end"}
    by = _group_column(frame, known)
    if "period" in frame.columns and frame.groupby(
            [by] if by else lambda _: 0)["period"].nunique().max() > 1:
        raise ValueError("mrr_waterfall shows one period: filter the bridge to one period "
                         "or use RevenueRetention.window_bridge()")
    rows = []
    for key, g in (frame.groupby(by, sort=True) if by else [(None, frame)]):
        g = g.set_index("component").reindex(list(BRIDGE_COMPONENTS))
        running = 0.0
        for order, comp in enumerate(BRIDGE_COMPONENTS):
            amount = float(g.loc[comp, "mrr"]) if pd.notna(g.loc[comp, "mrr"]) else 0.0
            if comp in ("start", "end"):
                y0, y1 = 0.0, amount
                running = amount
            else:
                y0, y1 = running, running + amount
                running = y1
            row = {"component": comp, "order": order, "mrr": amount, "y0": y0, "y1": y1}
            if by:
                row[by] = key
            rows.append(row)
    data = pd.DataFrame(rows)
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("component:N", sort=list(BRIDGE_COMPONENTS), title=None,
                axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("y0:Q", title="MRR"), y2="y1:Q",
        color=alt.Color("component:N", legend=None,
                        scale=alt.Scale(domain=list(BRIDGE_COLOURS),
                                        range=list(BRIDGE_COLOURS.values()))),
        tooltip=["component:N", alt.Tooltip("mrr:Q", format=",.0f")],
    )
    chart = chart.properties(width=alt.Step(48))
    if by:
        chart = chart.facet(column=alt.Column(f"{by}:N", title=by))
    return chart.properties(title=title or "MRR bridge")


def mrr_movements(bridge, *, title: str | None = None) -> alt.Chart:
    """MRR movements per period: stacked gains above zero, losses below.

    Parameters
    ----------
    bridge : pandas.DataFrame
        ``RevenueRetention.bridge``; the ``by`` column, if any, facets the chart.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        One stacked bar per period (new, reactivated, expansion, contraction, churned).
    """
    known = {"period", "period_label", "period_end", "component", "accounts", "mrr"}
    by = _group_column(bridge, known)
    data = bridge[~bridge["component"].isin(["start", "end"])]
    data = data[[c for c in ("period", "period_label", "component", "accounts", "mrr", by)
                 if c is not None]]
    _check_rows(data, "mrr_movements", "use grain='quarter'")
    changes = [c for c in BRIDGE_COLOURS if c not in ("start", "end")]
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("period:T", title=None),
        y=alt.Y("sum(mrr):Q", title="MRR change", stack="zero"),
        color=alt.Color("component:N", sort=changes, title=None,
                        scale=alt.Scale(domain=changes,
                                        range=[BRIDGE_COLOURS[c] for c in changes])),
        tooltip=["period_label:N", "component:N", "accounts:Q",
                 alt.Tooltip("mrr:Q", format=",.0f")],
    )
    if by:
        chart = chart.facet(row=alt.Row(f"{by}:N", title=by))
    return chart.properties(title=title or "MRR movements per period")


def grr_nrr_trend(trailing, *, title: str | None = None) -> alt.Chart:
    """Trailing-12-month GRR and NRR over time.

    Parameters
    ----------
    trailing : pandas.DataFrame
        ``RevenueRetention.trailing``; with a ``by`` column, colour = group and dash =
        metric.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        Lines of GRR and NRR by window end, with a rule at 100%.
    """
    known = {"window_start", "window_end", "accounts", "start_mrr", "expansion",
             "contraction", "churned", "end_mrr", "grr", "nrr"}
    by = _group_column(trailing, known)
    data = trailing[[c for c in ("window_end", "accounts", "start_mrr", "grr", "nrr", by)
                     if c is not None]]
    _check_rows(data, "grr_nrr_trend", "filter the windows")
    enc = {"x": alt.X("window_end:T", title="12 months ending"),
           "y": alt.Y("value:Q", axis=_pct_axis("Revenue retained"))}
    if by:
        enc["color"] = alt.Color(f"{by}:N", title=by)
        enc["strokeDash"] = alt.StrokeDash("metric:N", title=None)
    else:
        enc["color"] = alt.Color("metric:N", title=None)
    lines = alt.Chart(data).transform_fold(["grr", "nrr"], as_=["metric", "value"]).mark_line(
        point=True).encode(**enc, tooltip=[
            alt.Tooltip("window_end:T", title="window end"), "metric:N",
            alt.Tooltip("value:Q", format=".1%"), "accounts:Q",
            alt.Tooltip("start_mrr:Q", format=",.0f", title="MRR at start")]
        + ([f"{by}:N"] if by else []))
    rule = alt.Chart().mark_rule(color="#999999", strokeDash=[2, 2]).encode(
        y=alt.datum(1))
    return alt.layer(lines, rule).properties(
        title=title or "Gross and net revenue retention, trailing 12 months")


def hazard_ratios(drivers, *, title: str | None = None) -> alt.Chart:
    """Forest plot of Cox hazard ratios with their intervals (log scale).

    Parameters
    ----------
    drivers : pandas.DataFrame
        :func:`cs_analysis.retention.churn_drivers` output.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        One row per covariate level; reference levels drawn as hollow points at 1.
    """
    data = drivers.copy()
    data["term"] = data["covariate"] + ": " + data["level"]
    data = data[["term", "covariate", "level", "reference", "is_reference", "hazard_ratio",
                 "lower", "upper", "p_value", "accounts", "events"]]
    y = alt.Y("term:N", sort=list(data["term"]), title=None)
    x_scale = alt.Scale(type="log")
    base = alt.Chart(data)
    bars = base.mark_rule().encode(y=y, x=alt.X("lower:Q", scale=x_scale), x2="upper:Q")
    points = base.mark_point(filled=True, size=60, stroke=PALETTE[0], strokeWidth=1.5).encode(
        y=y, x=alt.X("hazard_ratio:Q", scale=x_scale, title="Hazard ratio (log scale)"),
        fill=alt.condition("datum.is_reference", alt.value("white"), alt.value(PALETTE[0])),
        tooltip=["covariate:N", "level:N", "reference:N",
                 alt.Tooltip("hazard_ratio:Q", format=".2f"),
                 alt.Tooltip("lower:Q", format=".2f"), alt.Tooltip("upper:Q", format=".2f"),
                 alt.Tooltip("p_value:Q", format=".3g"), "accounts:Q", "events:Q"])
    rule = alt.Chart().mark_rule(color="#999999", strokeDash=[2, 2]).encode(x=alt.datum(1))
    return alt.layer(bars, points, rule).properties(
        title=title or "What drives churn: hazard ratios vs the reference level")


# == Onboarding (cs_analysis.onboarding) ===================================================
# Charts of the onboarding module's tidy frames (time-to-value curves and summaries, stalled
# onboardings, TTV vs retention, onboarding tickets, activity effects). Each takes an
# already-aggregated frame (one row per curve step, group, bucket or category).


def _carry_to(frame, x: str, limit: float, keys: list[str]):
    """Rows with ``x <= limit``, plus a row per group at ``limit`` repeating the last one.

    So a step curve drawn up to ``limit`` does not stop short; values are not recomputed.
    """
    import pandas as pd

    parts = []
    for _, g in frame.groupby(keys, sort=True) if keys else [(None, frame)]:
        g = g[g[x] <= limit]
        if g.empty:
            continue
        if g[x].max() < limit:
            last = g.iloc[[-1]].copy()
            last[x] = limit
            if "events" in last:
                last["events"] = 0
            g = pd.concat([g, last])
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[0:0]


def _with_group(frame):
    """An onboarding frame with a ``group`` column for encoding.

    The analyses name their grouping column after ``by`` (the column before ``stage``);
    a frame without one (``by=None``) is one group, "All accounts".
    """
    cols = list(frame.columns)
    if "group" in cols:
        return frame
    if cols and cols[0] != "stage" and "stage" in cols:
        return frame.rename(columns={cols[0]: "group"})
    return frame.assign(group="All accounts")


def ttv_curves(curves, *, max_days: float | None = None, band: bool = True,
               title: str | None = None) -> alt.LayerChart:
    """Share of accounts at an onboarding stage after each number of days (step curves).

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`cs_analysis.onboarding.ttv_curves` output (the ``by`` column, e.g.
        ``segment``, or none; ``days``, ``reached_share``, ``lower``, ``upper``,
        ``at_risk``, ``events``, ``target_days``).
    max_days : float, optional
        Draw up to this many days; default three times the largest target (the whole
        follow-up when there is no target).
    band : bool
        Draw the pointwise interval.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        x = days since the clock start, y = share reached, colour = group; dashed
        vertical rules at each group's target.
    """
    import pandas as pd

    curves = _with_group(curves)
    targets = curves[["group", "target_days"]].dropna().drop_duplicates()
    if max_days is None:
        max_days = (3 * float(targets["target_days"].max()) if len(targets)
                    else float(curves["days"].max()) if len(curves) else 1.0)
    data = _carry_to(curves[["group", "days", "reached_share", "lower", "upper", "at_risk",
                             "events"]], "days", max_days, ["group"])
    _check_rows(data, "ttv_curves", "pass max_days or fewer groups")
    x = alt.X("days:Q", title="Days since the onboarding clock started",
              scale=alt.Scale(domain=[0, max_days], nice=False))
    color = alt.Color("group:N", title=None)
    base = alt.Chart(data)
    layers = []
    if band:
        layers.append(base.mark_area(opacity=0.15, interpolate="step-after").encode(
            x=x, y="lower:Q", y2="upper:Q", color=color))
    layers.append(base.mark_line(interpolate="step-after").encode(
        x=x, y=alt.Y("reached_share:Q", axis=_pct_axis("Reached the stage"),
                     scale=alt.Scale(domain=[0, 1])),
        color=color,
        tooltip=["group:N", "days:Q", alt.Tooltip("reached_share:Q", format=".1%"),
                 alt.Tooltip("lower:Q", format=".1%"), alt.Tooltip("upper:Q", format=".1%"),
                 "at_risk:Q", "events:Q"]))
    if len(targets):
        layers.append(alt.Chart(pd.DataFrame(targets)).mark_rule(strokeDash=[4, 3]).encode(
            x="target_days:Q", color=color,
            tooltip=["group:N", alt.Tooltip("target_days:Q", title="target (days)")]))
    return alt.layer(*layers).properties(
        title=title or "Time to value: share of accounts at the stage (Kaplan-Meier)")


def ttv_targets(summary, *, title: str | None = None) -> alt.LayerChart:
    """Median days to a stage per group, with its interval, against the target.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`cs_analysis.onboarding.ttv_summary` output.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        One row per group: the median (point) with its interval (rule), the target
        (red tick) and the share within target (text): 1 - KM (a world without churn)
        and, in brackets, the Aalen-Johansen share that actually got there in time.
    """
    import pandas as pd

    summary = _with_group(summary)
    cif = [c for c in ("share_within_target_cif", "within_cif_lower", "within_cif_upper")
           if c in summary]
    data = summary[["group", "accounts", "reached", "median_days", "median_lower",
                    "median_upper", "target_days", "share_within_target", "within_lower",
                    "within_upper", *cif]].copy()
    actual = (data["share_within_target_cif"] if cif
              else pd.Series(float("nan"), index=data.index))
    data["label"] = [("–" if v != v else f"{v:.0%} within target"
                      + ("" if a != a else f" ({a:.0%} counting churn)"))
                     for v, a in zip(data["share_within_target"], actual, strict=True)]
    y = alt.Y("group:N", title=None, sort=list(data["group"]))
    base = alt.Chart(data)
    tooltip = ["group:N", "accounts:Q", "reached:Q",
               alt.Tooltip("median_days:Q", title="median days"),
               alt.Tooltip("median_lower:Q", title="median, lower"),
               alt.Tooltip("median_upper:Q", title="median, upper"),
               alt.Tooltip("target_days:Q", title="target days"),
               alt.Tooltip("share_within_target:Q", format=".1%", title="within target"),
               alt.Tooltip("within_lower:Q", format=".1%", title="within, lower"),
               alt.Tooltip("within_upper:Q", format=".1%", title="within, upper")]
    if cif:
        tooltip.append(alt.Tooltip("share_within_target_cif:Q", format=".1%",
                                   title="actually within target (churn counted)"))
    ci = base.mark_rule(strokeWidth=2, color=PALETTE[0]).encode(
        y=y, x=alt.X("median_lower:Q", title="Days"), x2="median_upper:Q")
    point = base.mark_point(filled=True, size=80, color=PALETTE[0]).encode(
        y=y, x="median_days:Q", tooltip=tooltip)
    target = base.mark_tick(color=BAD, thickness=2, size=22).encode(
        y=y, x="target_days:Q", tooltip=tooltip)
    text = base.mark_text(align="center", dy=-14, fontSize=11, color="#486581").encode(
        y=y, x="median_days:Q", text="label:N")
    return alt.layer(ci, point, target, text).properties(
        title=title or "Median days to the stage (95% CI) vs target (red)")


def stalled_by_owner(frame, *, title: str | None = None) -> alt.Chart:
    """Stalled onboardings per CSM, stacked by reason.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``csm_owner``, ``reason``, ``accounts`` (one row per owner and reason), e.g. counted
        from :func:`cs_analysis.onboarding.stalled_accounts`.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        Horizontal stacked bars, owners with the most stalled onboardings on top.
    """
    order = (frame.groupby("csm_owner")["accounts"].sum().sort_values(ascending=False)
             .index.tolist())
    reasons = ["past target and idle", "past target", "no recent milestone"]
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("csm_owner:N", sort=order, title=None),
        x=alt.X("accounts:Q", title="Stalled onboardings", stack="zero",
                axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("reason:N", title=None, sort=reasons,
                        scale=alt.Scale(domain=reasons, range=[BAD, "#f28e2b", "#edc948"])),
        tooltip=["csm_owner:N", "reason:N", "accounts:Q"],
    ).properties(title=title or "Stalled onboardings per CSM")


def ttv_retention_buckets(buckets, *, title: str | None = None) -> alt.LayerChart:
    """Churn rate after the landmark by time-to-value bucket, with exact intervals.

    Parameters
    ----------
    buckets : pandas.DataFrame
        ``TTVRetention.buckets`` of :func:`cs_analysis.onboarding.ttv_vs_retention`.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        One bar per bucket (fastest first): churns per account-year after the landmark,
        with its interval; small buckets drawn lighter.
    """
    data = buckets[["bucket", "order", "accounts", "churned", "account_years", "churn_rate",
                    "rate_lower", "rate_upper", "retained_12m", "hazard_ratio", "hr_lower",
                    "hr_upper", "small_sample"]]
    x = alt.X("bucket:N", sort=alt.EncodingSortField("order"), title="Days to value",
              axis=alt.Axis(labelAngle=0))
    base = alt.Chart(data)
    bars = base.mark_bar(color=PALETTE[0]).encode(
        x=x, y=alt.Y("churn_rate:Q", title="Churns per account-year after the landmark"),
        opacity=alt.condition("datum.small_sample", alt.value(0.4), alt.value(0.9)),
        tooltip=["bucket:N", "accounts:Q", "churned:Q",
                 alt.Tooltip("account_years:Q", format=".0f"),
                 alt.Tooltip("churn_rate:Q", format=".3f"),
                 alt.Tooltip("rate_lower:Q", format=".3f"),
                 alt.Tooltip("rate_upper:Q", format=".3f"),
                 alt.Tooltip("retained_12m:Q", format=".1%", title="retained 12 months"),
                 alt.Tooltip("hazard_ratio:Q", format=".2f", title="hazard ratio"),
                 alt.Tooltip("hr_lower:Q", format=".2f"),
                 alt.Tooltip("hr_upper:Q", format=".2f")])
    ci = base.mark_rule(color="#333333").encode(x=x, y="rate_lower:Q", y2="rate_upper:Q")
    return alt.layer(bars, ci).properties(
        width=alt.Step(70),
        title=title or "Churn after onboarding by time to value (landmark analysis)")


def onboarding_ticket_rates(tickets, *, title: str | None = None) -> alt.LayerChart:
    """Support tickets per account-week during onboarding, by category.

    Parameters
    ----------
    tickets : pandas.DataFrame
        :func:`cs_analysis.onboarding.onboarding_tickets` output (one group).
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        Horizontal bars (during onboarding) with exact intervals, most frequent on top;
        a grey tick marks the rate after onboarding.
    """
    data = tickets[["category", "tickets", "accounts_with_tickets", "per_account_week",
                    "lower", "upper", "share", "after_per_account_week", "rate_ratio"]]
    _check_rows(data, "onboarding_ticket_rates", "pass one group")
    order = data.sort_values("per_account_week", ascending=False)["category"].tolist()
    y = alt.Y("category:N", sort=order, title=None)
    base = alt.Chart(data)
    tooltip = ["category:N", "tickets:Q", "accounts_with_tickets:Q",
               alt.Tooltip("per_account_week:Q", format=".3f", title="during onboarding"),
               alt.Tooltip("lower:Q", format=".3f"), alt.Tooltip("upper:Q", format=".3f"),
               alt.Tooltip("share:Q", format=".0%", title="share of onboarding tickets"),
               alt.Tooltip("after_per_account_week:Q", format=".3f", title="after onboarding"),
               alt.Tooltip("rate_ratio:Q", format=".1f", title="during / after")]
    bars = base.mark_bar(color=PALETTE[1]).encode(
        y=y, x=alt.X("per_account_week:Q", title="Tickets per account-week"),
        tooltip=tooltip)
    ci = base.mark_rule(color="#333333").encode(y=y, x="lower:Q", x2="upper:Q")
    after = base.mark_tick(color="#666666", thickness=2).encode(
        y=y, x="after_per_account_week:Q", tooltip=tooltip)
    return alt.layer(bars, ci, after).properties(
        title=title or "Tickets during onboarding (bars) vs after (grey ticks)")


def activity_effect(result, *, title: str | None = None) -> alt.LayerChart:
    """Naive and adjusted difference of an outcome with and without a CS activity.

    Parameters
    ----------
    result : ActivityEffect or pandas.DataFrame
        :func:`cs_analysis.onboarding.activity_effect` output or its ``summary()``.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        One row per estimate (naive, adjusted): the difference with its interval and a
        rule at zero (no difference).
    """
    summary = result.summary() if callable(getattr(result, "summary", None)) else result
    data = summary[["estimate", "activity", "outcome", "measure", "treated_accounts",
                    "control_accounts", "treated_value", "control_value", "difference",
                    "lower", "upper", "p_value", "adjusted_for"]].copy()
    data["estimate"] = data["estimate"].map(
        {"naive": "naive (all accounts)",
         "adjusted": "adjusted (" + data["adjusted_for"].iloc[0] + ")"})
    y = alt.Y("estimate:N", title=None, sort=list(data["estimate"]))
    base = alt.Chart(data)
    ci = base.mark_rule(strokeWidth=2, color=PALETTE[0]).encode(
        y=y, x=alt.X("lower:Q", title=f"Difference, {data['measure'].iloc[0]}"), x2="upper:Q")
    point = base.mark_point(filled=True, size=90, color=PALETTE[0]).encode(
        y=y, x="difference:Q",
        tooltip=["estimate:N", "treated_accounts:Q", "control_accounts:Q",
                 alt.Tooltip("treated_value:Q", format=".3g"),
                 alt.Tooltip("control_value:Q", format=".3g"),
                 alt.Tooltip("difference:Q", format=".3g"),
                 alt.Tooltip("lower:Q", format=".3g"), alt.Tooltip("upper:Q", format=".3g"),
                 alt.Tooltip("p_value:Q", format=".2g")])
    zero = alt.Chart().mark_rule(color="#999999", strokeDash=[2, 2]).encode(x=alt.datum(0))
    activity = data["activity"].iloc[0]
    return alt.layer(ci, point, zero).properties(
        title=title or f"Accounts with {activity} vs without: naive and adjusted difference")


# == Surveys (cs_analysis.surveys) =========================================================
# Charts of the surveys module's tidy frames: score trends with their interval band, scores
# by group, the promoter / passive / detractor mix, comment themes, drivers, comparisons,
# outcomes after the survey and weighted feature requests. Each takes an already-aggregated
# frame (one row per period, group, theme, rating, comparison, category or request).

#: Colours of response categories (NPS, and top-2 / middle / bottom-2 box of other surveys).
CATEGORY_COLOURS = {"promoter": GOOD, "passive": NEUTRAL, "detractor": BAD,
                    "positive": GOOD, "neutral": NEUTRAL, "negative": BAD}
_SCORE_TITLES = {"nps": "NPS", "csat": "CSAT (top-2 box)", "ces": "CES (mean score)"}
_SCORE_FORMATS = {"nps": "+.1f", "csat": ".1%", "ces": ".2f"}


def _score_metric(frame) -> str:
    """Which score a frame of ``cs_analysis.surveys.nps / csat / ces`` holds (its column)."""
    for metric in _SCORE_TITLES:
        if metric in frame.columns:
            return metric
    raise ValueError("expected a frame from cs_analysis.surveys.nps, csat or ces "
                     "(with an 'nps', 'csat' or 'ces' column)")


def _score_encoding(metric: str, frame, title: str | None = None, scale=None):
    """Axis and scale of a score: NPS -100..100, CSAT 0-100%, CES on its scale (if given)."""
    title = title or _SCORE_TITLES[metric]
    if metric == "nps":  # -100..100 would flatten every trend; keep 0 in view instead
        return alt.Axis(title=title), alt.Scale(zero=True)
    if metric == "csat":
        return _pct_axis(title), alt.Scale(domain=[0, 1])
    domain = [float(scale[0]), float(scale[1])] if scale else alt.Undefined
    return alt.Axis(title=title), alt.Scale(domain=domain, zero=False)


#: Columns of a score frame that are not a ``by`` column (period columns included).
_SCORE_PERIOD_COLUMNS = ("period", "period_label", "period_start")


def _score_group(frame) -> str | None:
    """The first ``by`` column of a score frame: the columns before ``survey``."""
    cols = list(frame.columns)
    head = cols[: cols.index("survey")] if "survey" in cols else []
    by = [c for c in head if c not in _SCORE_PERIOD_COLUMNS]
    return by[0] if by else None


def _category_scale(values) -> alt.Scale:
    present = [c for c in CATEGORY_COLOURS if c in set(values)]
    return alt.Scale(domain=present, range=[CATEGORY_COLOURS[c] for c in present])


def score_trend(frame, *, title: str | None = None, scale=None) -> alt.LayerChart:
    """A survey score per period with its confidence band.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`cs_analysis.surveys.nps` (or ``csat`` / ``ces``) split by period, e.g.
        ``nps(ws, grain="quarter")``; with one ``by`` column, one line per group.
    title : str, optional
        Chart title.
    scale : (low, high), optional
        The CES survey's scale, for the y axis (default: fitted to the data).

    Returns
    -------
    altair.LayerChart
        x = period start, y = score, band = ``lower`` / ``upper``; points of small
        samples are hollow; a dashed rule at 0 for NPS.
    """
    metric = _score_metric(frame)
    if "period_start" not in frame.columns:
        raise ValueError("score_trend needs a frame split by period, e.g. "
                         "nps(ws, grain='quarter')")
    group = _score_group(frame)
    keep = ["period_start", "period_label", "responses", "accounts", metric, "lower", "upper",
            "small_sample", "promoters", "detractors", "top2_box", group]
    data = frame[[c for c in dict.fromkeys(keep) if c is not None and c in frame.columns]]
    data = data[data["responses"] > 0]
    _check_rows(data, "score_trend", "use a coarser period")
    axis, scale = _score_encoding(metric, frame, scale=scale)
    x = alt.X("period_start:T", title=None, axis=alt.Axis(format="%b %Y", labelAngle=0))
    enc_color = {"color": alt.Color(f"{group}:N", title=group)} if group else {}
    base = alt.Chart(data)
    band = base.mark_area(opacity=0.18, color=PALETTE[0]).encode(
        x=x, y=alt.Y("lower:Q", scale=scale, axis=axis), y2="upper:Q", **enc_color)
    line = base.mark_line(color=PALETTE[0]).encode(
        x=x, y=alt.Y(f"{metric}:Q", scale=scale, axis=axis), **enc_color)
    fmt = _SCORE_FORMATS[metric]
    tooltip = [alt.Tooltip("period_label:N", title="period"),
               alt.Tooltip(f"{metric}:Q", format=fmt, title=_SCORE_TITLES[metric]),
               alt.Tooltip("lower:Q", format=fmt), alt.Tooltip("upper:Q", format=fmt),
               alt.Tooltip("responses:Q"), alt.Tooltip("accounts:Q")]
    tooltip += [alt.Tooltip(f"{c}:Q") for c in ("promoters", "detractors", "top2_box")
                if c in data.columns]
    if group:
        tooltip.insert(0, alt.Tooltip(f"{group}:N"))
    points = base.mark_point(filled=True, size=40, color=PALETTE[0]).encode(
        x=x, y=alt.Y(f"{metric}:Q", scale=scale, axis=axis), tooltip=tooltip,
        fill=alt.condition("datum.small_sample", alt.value("white"),
                           alt.Color(f"{group}:N", title=group) if group
                           else alt.value(PALETTE[0])),
        **enc_color)
    layers = [band, line, points]
    if metric == "nps":
        layers.append(alt.Chart().mark_rule(color="#999999", strokeDash=[2, 2]).encode(
            y=alt.datum(0)))
    return alt.layer(*layers).properties(
        title=title or f"{_SCORE_TITLES[metric]} per period, with its 95% interval")


def score_by_group(frame, *, title: str | None = None, scale=None) -> alt.LayerChart:
    """A survey score per group (segment, role, ...) with its interval, best first.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`cs_analysis.surveys.nps` (or ``csat`` / ``ces``) with one ``by`` column.
    title : str, optional
        Chart title.
    scale : (low, high), optional
        The CES survey's scale, for the x axis (default: fitted to the data).

    Returns
    -------
    altair.LayerChart
        One row per group: a point at the score, a rule across the interval; groups with
        few responses are drawn hollow and say so in the tooltip.
    """
    metric = _score_metric(frame)
    group = _score_group(frame)
    if group is None:
        raise ValueError("score_by_group needs a frame with one by column, e.g. "
                         "nps(ws, by='segment')")
    data = frame[[group, "responses", "accounts", metric, "lower", "upper", "small_sample"]]
    data = data[data["responses"] > 0].sort_values(metric, ascending=False)
    _check_rows(data, "score_by_group", "use fewer groups")
    axis, scale = _score_encoding(metric, frame, scale=scale)
    y = alt.Y(f"{group}:N", sort=list(data[group]), title=None)
    fmt = _SCORE_FORMATS[metric]
    base = alt.Chart(data)
    ci = base.mark_rule(strokeWidth=2, color=PALETTE[0]).encode(
        y=y, x=alt.X("lower:Q", scale=scale, axis=axis), x2="upper:Q")
    point = base.mark_point(filled=True, size=80, color=PALETTE[0]).encode(
        y=y, x=alt.X(f"{metric}:Q", scale=scale, axis=axis),
        fill=alt.condition("datum.small_sample", alt.value("white"), alt.value(PALETTE[0])),
        tooltip=[alt.Tooltip(f"{group}:N"),
                 alt.Tooltip(f"{metric}:Q", format=fmt, title=_SCORE_TITLES[metric]),
                 alt.Tooltip("lower:Q", format=fmt), alt.Tooltip("upper:Q", format=fmt),
                 "responses:Q", "accounts:Q", "small_sample:N"])
    layers = [ci, point]
    if metric == "nps":
        layers.append(alt.Chart().mark_rule(color="#999999", strokeDash=[2, 2]).encode(
            x=alt.datum(0)))
    return alt.layer(*layers).properties(
        title=title or f"{_SCORE_TITLES[metric]} by {group}, with 95% intervals")


def nps_mix(frame, *, title: str | None = None) -> alt.Chart:
    """Shares of promoters, passives and detractors per group or period (stacked bars).

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`cs_analysis.surveys.nps` output: by one column, by period, or overall.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        One bar per group (or period), 100% wide, split into the three categories.
    """
    import pandas as pd

    if "pct_promoters" not in frame.columns:
        raise ValueError("nps_mix needs cs_analysis.surveys.nps output")
    group = _score_group(frame)
    label = group or ("period_label" if "period_label" in frame.columns else None)
    data = frame[frame["responses"] > 0]
    rows = []
    for _, r in data.iterrows():
        for cat, count, share in (("promoter", "promoters", "pct_promoters"),
                                  ("passive", "passives", "pct_passives"),
                                  ("detractor", "detractors", "pct_detractors")):
            rows.append({"group": str(r[label]) if label else "All responses",
                         "category": cat, "share": r[share], "count": int(r[count]),
                         "responses": int(r["responses"]), "order": len(rows) % 3})
    long = pd.DataFrame(rows, columns=["group", "category", "share", "count", "responses",
                                       "order"])
    _check_rows(long, "nps_mix", "use fewer groups")
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("group:N", title=None, sort=list(dict.fromkeys(long["group"]))),
        x=alt.X("share:Q", stack="normalize", axis=_pct_axis("Share of responses")),
        color=alt.Color("category:N", title=None, scale=_category_scale(long["category"]),
                        sort=["promoter", "passive", "detractor"]),
        order=alt.Order("order:Q"),
        tooltip=["group:N", "category:N", alt.Tooltip("share:Q", format=".1%"), "count:Q",
                 "responses:Q"],
    ).properties(title=title or "Promoters, passives and detractors")


def theme_bars(summary, *, title: str | None = None, unmatched: bool = True) -> alt.LayerChart:
    """Share of comments mentioning each theme, per category (or group), with intervals.

    Parameters
    ----------
    summary : pandas.DataFrame
        ``themes(...).shares`` (or ``.summary()``) of :func:`cs_analysis.surveys.themes`
        (grouped by at most one column, e.g. ``category``: the columns before
        ``theme``).
    title : str, optional
        Chart title.
    unmatched : bool
        Keep the ``"(no theme)"`` bar (shows how much the dictionary misses).

    Returns
    -------
    altair.LayerChart
        Horizontal bars (themes by total mentions), one bar per group side by side,
        with Wilson intervals as rules.
    """
    cols = list(summary.columns)
    by = cols[: cols.index("theme")] if "theme" in cols else []
    if len(by) > 1:
        raise ValueError("theme_bars draws at most one group column; use by='category'")
    group = by[0] if by else None
    data = summary if unmatched else summary[summary["theme"] != "(no theme)"]
    keep = ["theme", "label", "mentions", "comments", "share", "lower", "upper",
            "small_sample", group]
    data = data[[c for c in keep if c is not None]]
    _check_rows(data, "theme_bars", "use fewer groups")
    order = list(data.groupby("label", sort=False)["mentions"].sum()
                 .sort_values(ascending=False).index)
    y = alt.Y("label:N", sort=order, title=None)
    enc = {}
    if group:
        colour = (_category_scale(data[group]) if group == "category" else alt.Undefined)
        enc = {"color": alt.Color(f"{group}:N", title=group, scale=colour),
               "yOffset": alt.YOffset(f"{group}:N")}
    base = alt.Chart(data)
    tooltip = ([f"{group}:N"] if group else []) + [
        "label:N", alt.Tooltip("share:Q", format=".1%"), alt.Tooltip("lower:Q", format=".1%"),
        alt.Tooltip("upper:Q", format=".1%"), "mentions:Q", "comments:Q"]
    bars = base.mark_bar().encode(y=y, x=alt.X("share:Q", axis=_pct_axis("Share of comments")),
                                  tooltip=tooltip, **enc)
    rule_enc = {"yOffset": enc["yOffset"]} if group else {}
    rules = base.mark_rule(color="#555555").encode(y=y, x="lower:Q", x2="upper:Q", **rule_enc)
    return alt.layer(bars, rules).properties(
        title=title or "What comments talk about (share of comments, 95% intervals)")


def driver_effects(drivers, *, title: str | None = None) -> alt.LayerChart:
    """Forest plot of :func:`cs_analysis.surveys.drivers`: each rating's effect and interval.

    Parameters
    ----------
    drivers : pandas.DataFrame
        :func:`cs_analysis.surveys.drivers` output.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        One row per rating (strongest standardized effect first); a dashed rule at no
        effect (0 points, or odds ratio 1 on a log scale for the ordered model).
    """
    data = drivers[["attribute", "effect", "lower", "upper", "p_value", "std_effect",
                    "mean_rating", "correlation", "responses", "model", "effect_unit"]]
    ordered = (data["model"] == "ordered").any()
    unit = str(data["effect_unit"].iloc[0]) if len(data) else "effect"
    scale = alt.Scale(type="log") if ordered else alt.Scale(zero=True)
    y = alt.Y("attribute:N", sort=list(data["attribute"]), title=None)
    base = alt.Chart(data)
    ci = base.mark_rule(strokeWidth=2, color=PALETTE[0]).encode(
        y=y, x=alt.X("lower:Q", scale=scale), x2="upper:Q")
    point = base.mark_point(filled=True, size=80, color=PALETTE[0]).encode(
        y=y, x=alt.X("effect:Q", scale=scale, title=unit[:1].upper() + unit[1:]),
        tooltip=["attribute:N", alt.Tooltip("effect:Q", format=".2f"),
                 alt.Tooltip("lower:Q", format=".2f"), alt.Tooltip("upper:Q", format=".2f"),
                 alt.Tooltip("p_value:Q", format=".2g"),
                 alt.Tooltip("std_effect:Q", format=".2f", title="per SD of the rating"),
                 alt.Tooltip("correlation:Q", format=".2f"), "responses:Q"])
    rule = alt.Chart().mark_rule(color="#999999", strokeDash=[2, 2]).encode(
        x=alt.datum(1 if ordered else 0))
    return alt.layer(ci, point, rule).properties(
        title=title or "Which ratings go with a higher score (95% intervals)")


def compare_differences(comparisons, *, title: str | None = None) -> alt.LayerChart:
    """Forest plot of :func:`cs_analysis.surveys.compare`: differences and intervals.

    Parameters
    ----------
    comparisons : pandas.DataFrame
        :func:`cs_analysis.surveys.compare` output.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        One row per comparison ("a − b"); filled points are significant after the
        multiple-comparison correction, hollow ones are not; a dashed rule at 0.
    """
    data = comparisons.copy()
    prefix = ""
    if "period_label" in data.columns and data["by"].iloc[0:1].ne("period").all():
        prefix = data["period_label"].astype(str) + ": "
    data["pair"] = prefix + data["group_a"].astype(str) + " − " + data["group_b"].astype(str)
    data = data[["pair", "difference", "lower", "upper", "p_value", "p_adjusted",
                 "significant", "responses_a", "responses_b", "small_sample", "note"]]
    _check_rows(data, "compare_differences", "compare fewer groups")
    y = alt.Y("pair:N", sort=list(data["pair"]), title=None)
    base = alt.Chart(data)
    ci = base.mark_rule(strokeWidth=2, color=PALETTE[0]).encode(y=y, x="lower:Q", x2="upper:Q")
    point = base.mark_point(filled=True, size=80, color=PALETTE[0]).encode(
        y=y, x=alt.X("difference:Q", title="Difference (a − b)"),
        fill=alt.condition("datum.significant", alt.value(PALETTE[0]), alt.value("white")),
        tooltip=["pair:N", alt.Tooltip("difference:Q", format=".3g"),
                 alt.Tooltip("lower:Q", format=".3g"), alt.Tooltip("upper:Q", format=".3g"),
                 alt.Tooltip("p_value:Q", format=".2g"),
                 alt.Tooltip("p_adjusted:Q", format=".2g"), "significant:N",
                 "responses_a:Q", "responses_b:Q", "note:N"])
    rule = alt.Chart().mark_rule(color="#999999", strokeDash=[2, 2]).encode(x=alt.datum(0))
    return alt.layer(ci, point, rule).properties(
        title=title or "Differences between groups (filled: significant after correction)")


def outcome_rates(rates, *, title: str | None = None,
                  horizon_days: int | None = None) -> alt.LayerChart:
    """Churn and expansion after the survey per category, with intervals.

    Parameters
    ----------
    rates : SurveyOutcomes or pandas.DataFrame
        :func:`cs_analysis.surveys.survey_outcomes` result (its window length is named
        in the title), or its ``rates`` frame.
    title : str, optional
        Chart title.
    horizon_days : int, optional
        The window length, for the title when a bare ``rates`` frame is given.

    Returns
    -------
    altair.LayerChart
        Per category, a churn bar and an expansion bar side by side with their intervals.
    """
    import pandas as pd

    if hasattr(rates, "rates") and hasattr(rates, "horizon_days"):  # a SurveyOutcomes
        horizon_days = horizon_days or rates.horizon_days
        rates = rates.rates
    rows = []
    for _, r in rates.iterrows():
        for outcome, rate, lo, hi, count in (
                ("churned", "churn_rate", "churn_lower", "churn_upper", "churned"),
                ("expanded", "expansion_rate", "expansion_lower", "expansion_upper",
                 "expanded")):
            rows.append({"category": r["category"], "outcome": outcome, "rate": r[rate],
                         "lower": r[lo], "upper": r[hi], "count": int(r[count]),
                         "observations": int(r["observations"])})
    data = pd.DataFrame(rows, columns=["category", "outcome", "rate", "lower", "upper",
                                       "count", "observations"])
    horizon = horizon_days
    x = alt.X("category:N", sort=list(rates["category"]), title=None,
              axis=alt.Axis(labelAngle=0))
    colour = alt.Color("outcome:N", title=None,
                       scale=alt.Scale(domain=["churned", "expanded"], range=[BAD, GOOD]))
    base = alt.Chart(data)
    bars = base.mark_bar().encode(
        x=x, xOffset="outcome:N", y=alt.Y("rate:Q", axis=_pct_axis("Share of accounts")),
        color=colour, tooltip=["category:N", "outcome:N", alt.Tooltip("rate:Q", format=".1%"),
                               alt.Tooltip("lower:Q", format=".1%"),
                               alt.Tooltip("upper:Q", format=".1%"), "count:Q",
                               "observations:Q"])
    rules = base.mark_rule(color="#333333").encode(x=x, xOffset="outcome:N", y="lower:Q",
                                                   y2="upper:Q")
    within = f" within {horizon} days" if horizon else ""
    return alt.layer(bars, rules).properties(
        title=title or f"What happened{within} after the survey, by category")


def request_bars(priorities, *, top: int = 15, title: str | None = None) -> alt.Chart:
    """The top feature requests of :func:`cs_analysis.surveys.request_priorities`.

    Parameters
    ----------
    priorities : pandas.DataFrame
        :func:`cs_analysis.surveys.request_priorities` output (ranked).
    top : int
        How many requests to draw.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.Chart
        One bar per request (rank order): accounts asking, split into detractor accounts
        and the others; the tooltip has MRR, at-risk accounts and status.
    """
    import pandas as pd

    data = priorities.head(top)
    rows = []
    for _, r in data.iterrows():
        det = r["detractor_accounts"]
        det = 0 if pd.isna(det) else int(det)
        for kind, n in (("detractor accounts", det), ("other accounts", int(r["accounts"]) - det)):
            rows.append({"request": str(r["request"]), "rank": int(r["rank"]), "kind": kind,
                         "count": n, "accounts": int(r["accounts"]), "mrr": float(r["mrr"]),
                         "at_risk_accounts": None if pd.isna(r["at_risk_accounts"])
                         else int(r["at_risk_accounts"]),
                         "status": r["latest_status"]})
    long = pd.DataFrame(rows, columns=["request", "rank", "kind", "count", "accounts", "mrr",
                                       "at_risk_accounts", "status"])
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("request:N", sort=list(dict.fromkeys(long["request"])), title=None),
        x=alt.X("count:Q", title="Accounts asking", stack="zero"),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(
            domain=["detractor accounts", "other accounts"], range=[BAD, NEUTRAL])),
        tooltip=["rank:Q", "request:N", "accounts:Q", alt.Tooltip("mrr:Q", format=",.0f"),
                 "kind:N", "count:Q", "at_risk_accounts:Q", "status:N"],
    ).properties(title=title or "Most requested, weighed by accounts (detractors in red)")


# == Journey alignment (cs_analysis.journey) ===============================================
# Charts of the journey module's tidy frames: the stage flow of a journey map (reach and
# stalls per stage, days between stages), shared goals over time against their targets, and
# which stakeholder gaps go with churn. Each takes an already-aggregated frame (one row per
# stage, goal period or gap).


def _journey_group(frame, by: str | None = None) -> str | None:
    """The grouping column: ``by`` if given, else the one column the analysis did not make.

    :func:`~cs_analysis.journey.stage_flow` and :func:`~cs_analysis.journey.goal_progress`
    name their grouping column after ``by``; every other column is one of theirs.
    """
    if by:
        return by if by in frame.columns else None
    from cs_analysis.journey.flow import FLOW_COLUMNS, GOAL_COLUMNS

    known = {*FLOW_COLUMNS, *GOAL_COLUMNS}
    extra = [c for c in frame.columns if c not in known]
    return extra[0] if len(extra) == 1 else None


def journey_funnel(flow, *, by: str | None = None, title: str | None = None
                   ) -> alt.LayerChart:
    """Accounts reaching each stage of a journey, with those stalled before it.

    Parameters
    ----------
    flow : pandas.DataFrame
        :func:`cs_analysis.journey.stage_flow` output (stages without a data signal are
        left out; with ``by`` one bar per group, side by side).
    by : str, optional
        The grouping column (default: the column named after the analysis's ``by``).
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Bars = share of accounts that reached the stage; red ticks = share of the
        previous stage's accounts stalled before it; the tooltip has the counts.
    """
    by = _journey_group(flow, by)
    data = flow[flow["has_signal"]].copy()
    data["label"] = data["position"].astype(int).astype(str) + ". " + data["stage"]
    keep = ["label", "position", "stage", "from_stage", "accounts", "reached", "reached_share",
            "from_reached", "converted", "conversion", "stalled", "stalled_share",
            *([by] if by else [])]
    data = data[keep].astype({"accounts": "float", "reached": "float", "from_reached": "float",
                              "converted": "float", "stalled": "float"})
    order = list(dict.fromkeys(data.sort_values("position")["label"]))
    x = alt.X("label:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=160))
    tip = ["stage:N", "from_stage:N", "accounts:Q", "reached:Q",
           alt.Tooltip("reached_share:Q", format=".0%"), "from_reached:Q", "converted:Q",
           alt.Tooltip("conversion:Q", format=".0%"), "stalled:Q",
           alt.Tooltip("stalled_share:Q", format=".0%")] + ([f"{by}:N"] if by else [])
    enc = {"x": x, "tooltip": tip}
    if by:
        enc["xOffset"] = alt.XOffset(f"{by}:N")
        enc["color"] = alt.Color(f"{by}:N", title=by.replace("_", " "))
    base = alt.Chart(data).encode(**enc)
    bars = base.mark_bar(opacity=0.85).encode(
        y=alt.Y("reached_share:Q", axis=_pct_axis("Accounts that reached the stage"),
                scale=alt.Scale(domain=[0, 1])))
    ticks = base.mark_tick(color=BAD, thickness=3, size=18).encode(y="stalled_share:Q")
    return alt.layer(bars, ticks).properties(
        title=title or "Where accounts get to (bars) and stall (red: share stalled before it)")


def journey_days(flow, *, by: str | None = None, title: str | None = None
                 ) -> alt.LayerChart:
    """Median days from the previous stage to each stage, with the quartiles.

    Parameters
    ----------
    flow : pandas.DataFrame
        :func:`cs_analysis.journey.stage_flow` output.
    by : str, optional
        The grouping column (default: the column named after the analysis's ``by``).
    title : str, optional

    Returns
    -------
    altair.LayerChart
        A point at the Kaplan-Meier median and a rule from the 25th to the 75th
        percentile (open to the right when the 75th is not reached within follow-up).
    """
    by = _journey_group(flow, by)
    data = flow[flow["has_signal"]].copy()
    data["label"] = data["position"].astype(int).astype(str) + ". " + data["stage"]
    data = data[["label", "position", "from_stage", "median_days", "p25_days", "p75_days",
                 "from_reached", *([by] if by else [])]].astype({"from_reached": "float"})
    order = list(dict.fromkeys(data.sort_values("position")["label"]))
    enc = {"y": alt.Y("label:N", sort=order, title=None),
           "tooltip": ["label:N", "from_stage:N", "median_days:Q", "p25_days:Q", "p75_days:Q",
                       "from_reached:Q"] + ([f"{by}:N"] if by else [])}
    if by:
        enc["yOffset"] = alt.YOffset(f"{by}:N")
        enc["color"] = alt.Color(f"{by}:N", title=by.replace("_", " "))
    base = alt.Chart(data).encode(**enc)
    rule = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("p25_days:Q", title="Days from the previous stage (median, quartiles)"),
        x2="p75_days:Q")
    point = base.mark_point(filled=True, size=70).encode(x="median_days:Q")
    return alt.layer(rule, point).properties(
        title=title or "Days between stages (censoring-aware)")


def goal_trend(progress, *, by: str | None = None, title: str | None = None
               ) -> alt.LayerChart:
    """One goal metric over time against its target.

    Parameters
    ----------
    progress : pandas.DataFrame
        :func:`cs_analysis.journey.goal_progress` rows of one goal (with ``by``, one line
        per group).
    by : str, optional
        The grouping column (default: the column named after the analysis's ``by``).
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Line of ``value`` by ``period_start`` (points filled when the target is met),
        interval band when the metric has one, dashed rule at the target.
    """
    import pandas as pd

    by = _journey_group(progress, by)
    metric = str(progress["metric"].iloc[0]) if len(progress) else "stage_share"
    share = metric in ("stage_share", "active_share", "csat")
    data = progress[[c for c in ("period_start", "period_label", "value", "numerator",
                                 "denominator", "lower", "upper", "target", "met",
                                 *([by] if by else [])) if c in progress.columns]].copy()
    data["met"] = data["met"].astype("object").where(data["met"].notna(), None)
    data["status"] = data["met"].map({True: "target met", False: "below target"})
    axis = _pct_axis(metric.replace("_", " ")) if share else alt.Axis(title=metric.upper())
    tip = ["period_label:N", alt.Tooltip("value:Q", format=".1%" if share else ".1f"),
           "numerator:Q", "denominator:Q", "target:Q", "status:N"] + ([f"{by}:N"] if by else [])
    enc = {"x": alt.X("period_start:T", title=None), "tooltip": tip}
    if by:
        enc["color"] = alt.Color(f"{by}:N", title=by.replace("_", " "))
    base = alt.Chart(data).encode(**enc)
    layers = []
    if data["lower"].notna().any() and not by:
        layers.append(base.mark_area(opacity=0.15).encode(y="lower:Q", y2="upper:Q"))
    layers.append(base.mark_line().encode(y=alt.Y("value:Q", axis=axis)))
    layers.append(base.mark_point(size=50, filled=True).encode(
        y="value:Q", shape=alt.Shape("status:N", title=None)))
    target = float(progress["target"].iloc[0]) if len(progress) else 0.0
    rule = alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(
        color=BAD, strokeDash=[6, 4]).encode(y="target:Q")
    layers.append(rule)
    return alt.layer(*layers).properties(title=title or "Goal against its target (dashed)")


def coverage_ratios(coverage, *, title: str | None = None) -> alt.LayerChart:
    """Churn rate ratio of each stakeholder gap, with its interval.

    Parameters
    ----------
    coverage : pandas.DataFrame
        :func:`cs_analysis.journey.stakeholder_coverage` output.
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Point = rate ratio (log scale), rule = interval, grey line at 1 (no difference).
    """
    import pandas as pd

    data = coverage[["gap", "accounts", "churned", "rate_ratio", "lower", "upper",
                     "churn_per_year", "churn_per_year_without"]].dropna(subset=["rate_ratio"])
    data = data[data["rate_ratio"] > 0]
    base = alt.Chart(data).encode(
        y=alt.Y("gap:N", sort="-x", title=None),
        tooltip=["gap:N", "accounts:Q", "churned:Q", alt.Tooltip("rate_ratio:Q", format=".2f"),
                 alt.Tooltip("lower:Q", format=".2f"), alt.Tooltip("upper:Q", format=".2f"),
                 alt.Tooltip("churn_per_year:Q", format=".1%"),
                 alt.Tooltip("churn_per_year_without:Q", format=".1%")])
    rule = base.mark_rule().encode(x=alt.X("lower:Q", scale=alt.Scale(type="log"),
                                           title="Churn rate ratio (with / without the gap)"),
                                   x2="upper:Q")
    point = base.mark_point(filled=True, size=60).encode(x="rate_ratio:Q")
    one = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(color=NEUTRAL).encode(x="x:Q")
    return alt.layer(one, rule, point).properties(
        title=title or "Which stakeholder gaps go with churn")


# -- renewals and support ----------------------------------------------------------------
# Charts of cs_analysis.renewals and cs_analysis.support frames.
def renewal_calendar_chart(calendar, *, title: str | None = None) -> alt.Chart:
    """MRR at stake per renewal week, coloured by whether critical tickets are open.

    Parameters
    ----------
    calendar : pandas.DataFrame
        :func:`cs_analysis.renewals.renewal_calendar` output.
    title : str, optional

    Returns
    -------
    altair.Chart
        Stacked bars: x = week of the renewal (Monday), y = MRR at stake, colour = open
        critical tickets (yes / no); tooltip with accounts and MRR.
    """
    import pandas as pd

    data = calendar[["renewal_date", "mrr_at_stake", "open_critical_tickets",
                     "account_id"]].copy()
    data["week"] = (pd.to_datetime(data["renewal_date"])
                    - pd.to_timedelta(pd.to_datetime(data["renewal_date"]).dt.day_of_week,
                                      unit="D"))
    data["critical"] = (data["open_critical_tickets"] > 0).map(
        {True: "open critical ticket", False: "no open critical ticket"})
    agg = (data.groupby(["week", "critical"], as_index=False)
           .agg(mrr_at_stake=("mrr_at_stake", "sum"), accounts=("account_id", "size")))
    return alt.Chart(agg).mark_bar().encode(
        x=alt.X("week:T", title="Week of the renewal"),
        y=alt.Y("mrr_at_stake:Q", title="MRR at stake", stack=True),
        color=alt.Color("critical:N", title=None,
                        scale=alt.Scale(domain=["no open critical ticket",
                                                "open critical ticket"],
                                        range=[PALETTE[0], BAD])),
        tooltip=[alt.Tooltip("week:T", title="week of"), "critical:N", "accounts:Q",
                 alt.Tooltip("mrr_at_stake:Q", format=",.0f")],
    ).properties(title=title or "Renewals ahead: MRR at stake per week")


def churn_to_date_bars(table, *, value: str = "logo_churn",
                       title: str | None = None) -> alt.Chart:
    """Churn to date beside the same span last period and the last complete period.

    Parameters
    ----------
    table : pandas.DataFrame
        :attr:`cs_analysis.renewals.ChurnToDate.table`.
    value : {"logo_churn", "gross_mrr_churn", "net_mrr_churn"}
    title : str, optional

    Returns
    -------
    altair.Chart
        Grouped bars: one group per ``by`` value (or one), one bar per window.
    """
    known = {"window", "label", "period_label", "start", "end", "days", "accounts",
             "churned_accounts", "logo_churn", "start_mrr", "churned_mrr", "contraction_mrr",
             "expansion_mrr", "new_mrr", "end_mrr", "gross_mrr_churn", "net_mrr_churn"}
    by = next((c for c in table.columns if c not in known), None)
    data = table.copy()
    group = by or "window"
    enc = {
        "x": alt.X("label:N", title=None, sort=list(dict.fromkeys(data["label"]))),
        "y": alt.Y(f"{value}:Q", axis=_pct_axis(value.replace("_", " "))),
        "color": alt.Color("window:N", title=None),
        "tooltip": ["label:N", "accounts:Q", "churned_accounts:Q",
                    alt.Tooltip("logo_churn:Q", format=".1%"),
                    alt.Tooltip("gross_mrr_churn:Q", format=".1%"),
                    alt.Tooltip("net_mrr_churn:Q", format=".1%"),
                    alt.Tooltip("start_mrr:Q", format=",.0f")] + ([f"{by}:N"] if by else []),
    }
    chart = alt.Chart(data).mark_bar().encode(**enc)
    if by:
        chart = chart.properties(width=160).facet(column=alt.Column(f"{group}:N", title=None))
    return chart.properties(title=title or f"{value.replace('_', ' ').capitalize()} to date")


def ticket_time_trend(table, *, metric: str = "resolution",
                      title: str | None = None) -> alt.LayerChart:
    """Median and p90 first-response or resolution time per period (KM, hours).

    Parameters
    ----------
    table : pandas.DataFrame
        :attr:`cs_analysis.support.TicketMetrics.table` (with or without a group column).
    metric : {"resolution", "first_response"}
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Solid line = median, dashed = p90, per group when grouped; incomplete periods
        drawn with hollow points.
    """
    import pandas as pd

    known = {"period", "period_label", "complete", "tickets", "accounts",
             "tickets_per_account", "tickets_per_100_accounts", "first_response_median_h",
             "first_response_p90_h", "responded", "resolution_median_h", "resolution_p90_h",
             "resolved", "backlog", "csat_responses", "csat_mean", "csat_top2"}
    by = next((c for c in table.columns if c not in known), None)
    rows = []
    for stat in ("median", "p90"):
        part = table[["period", "period_label", "complete", "tickets",
                      f"{metric}_{stat}_h", *([by] if by else [])]].rename(
            columns={f"{metric}_{stat}_h": "hours"})
        rows.append(part.assign(statistic=stat))
    data = pd.concat(rows, ignore_index=True)
    data["complete"] = data["complete"].map({True: "complete", False: "to date"})
    enc = {"x": alt.X("period:T", title=None),
           "y": alt.Y("hours:Q", title=f"{metric.replace('_', ' ')} time (hours)"),
           "strokeDash": alt.StrokeDash("statistic:N", title=None),
           "tooltip": ["period_label:N", "statistic:N", alt.Tooltip("hours:Q", format=".1f"),
                       "tickets:Q", "complete:N"] + ([f"{by}:N"] if by else [])}
    if by:
        enc["color"] = alt.Color(f"{by}:N", title=by)
    base = alt.Chart(data).encode(**enc)
    line = base.mark_line()
    pts = base.mark_point(size=30).encode(shape=alt.Shape("complete:N", title=None))
    return alt.layer(line, pts).properties(
        title=title or f"{metric.replace('_', ' ').capitalize()} time: median and p90 "
                       "(Kaplan-Meier, open tickets censored)")


# -- adoption (cs_analysis.adoption) -----------------------------------------------------
def adoption_heatmap(features, *, group: str | None = None,
                     title: str | None = None) -> alt.LayerChart:
    """Feature × group heatmap of adoption rates.

    Parameters
    ----------
    features : pandas.DataFrame
        ``FeatureAdoption.features`` (:func:`cs_analysis.adoption.feature_adoption`).
    group : str, optional
        The ``by`` column (default: the column that is not a known one; none: one row).
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Cell colour and label = share of active accounts that used the feature.
    """
    known = {"feature", "active_accounts", "adopting_accounts", "adoption_rate", "lower",
             "upper", "events", "active_users", "events_per_active_user"}
    group = group or _group_column(features, known)
    data = features.copy()
    if group is None:
        group = "group"
        data[group] = "All accounts"
    data = data[["feature", group, "adoption_rate", "lower", "upper", "active_accounts",
                 "adopting_accounts"]]
    base = alt.Chart(data).encode(
        x=alt.X("feature:N", title=None, sort=None),
        y=alt.Y(f"{group}:N", title=None),
        tooltip=["feature:N", f"{group}:N", alt.Tooltip("adoption_rate:Q", format=".0%"),
                 alt.Tooltip("lower:Q", format=".0%"), alt.Tooltip("upper:Q", format=".0%"),
                 "adopting_accounts:Q", "active_accounts:Q"])
    rect = base.mark_rect().encode(color=alt.Color(
        "adoption_rate:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]),
        legend=alt.Legend(format="%", title="Adoption")))
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("adoption_rate:Q", format=".0%"),
        color=alt.condition("datum.adoption_rate > 0.6", alt.value("white"),
                            alt.value("black")))
    return alt.layer(rect, text).properties(
        title=title or "Share of active accounts using each feature")


def stickiness_trend(trend, *, ratio: str = "DAU/WAU",
                     title: str | None = None) -> alt.Chart:
    """Stickiness (DAU/WAU or DAU/MAU) of all accounts in scope, period by period.

    Parameters
    ----------
    trend : pandas.DataFrame
        ``Stickiness.trend`` (:func:`cs_analysis.adoption.stickiness`).
    ratio : str
        Axis title (``Stickiness.ratio_name``).
    title : str, optional
    """
    data = trend[["period_label", "stickiness", "active_accounts", "active_users",
                  "dau_mean"]].dropna(subset=["stickiness"])
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("period_label:O", title=None),
        y=alt.Y("stickiness:Q", axis=_pct_axis(ratio), scale=alt.Scale(zero=True)),
        tooltip=["period_label:N", alt.Tooltip("stickiness:Q", format=".1%"),
                 "active_accounts:Q", "active_users:Q",
                 alt.Tooltip("dau_mean:Q", format=",.1f")],
    ).properties(title=title or f"Stickiness ({ratio})")


def seat_utilisation_hist(accounts, *, cap: float = 1.5,
                          title: str | None = None) -> alt.Chart:
    """Distribution of seat utilisation (active users ÷ seats), capped at ``cap``.

    Parameters
    ----------
    accounts : pandas.DataFrame
        ``SeatUtilisation.accounts`` (:func:`cs_analysis.adoption.seat_utilisation`);
        accounts without seats are left out (the caller reports them).
    cap : float
        Utilisations above it are shown in the last bin.
    title : str, optional
    """
    data = accounts[["utilisation"]].dropna().clip(upper=cap)
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("utilisation:Q", bin=alt.Bin(step=0.1, extent=[0, cap + 0.1]),
                axis=_pct_axis(f"Active users ÷ seats (last bin: {cap:.0%} or more)")),
        y=alt.Y("count():Q", title="Accounts"),
    ).properties(title=title or "Seats bought vs used")


def usage_classes(trend, *, title: str | None = None) -> alt.Chart:
    """Accounts per usage class of :func:`cs_analysis.adoption.usage_trend`."""
    from cs_analysis.adoption import USAGE_CLASSES

    counts = trend["usage_class"].value_counts().reindex(USAGE_CLASSES, fill_value=0)
    data = counts.rename_axis("usage_class").reset_index(name="accounts")
    colours = [BAD, "#f28e2b", NEUTRAL, GOOD, "#76b7b2", "#dddddd"]
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("accounts:Q", title="Accounts"),
        y=alt.Y("usage_class:N", sort=list(USAGE_CLASSES), title=None),
        color=alt.Color("usage_class:N", scale=alt.Scale(domain=list(USAGE_CLASSES),
                                                         range=colours), legend=None),
        tooltip=["usage_class:N", "accounts:Q"],
    ).properties(title=title or "Usage trend over the last weeks")


def feature_retention_ratios(features, *, title: str | None = None) -> alt.LayerChart:
    """Hazard ratio of churn, users vs non-users of each feature, with its interval.

    Parameters
    ----------
    features : pandas.DataFrame
        ``FeaturesAndRetention.features``.
    title : str, optional
    """
    import pandas as pd

    data = features[["feature", "users", "non_users", "hazard_ratio", "lower", "upper",
                     "p_adjusted"]].dropna(subset=["hazard_ratio", "lower", "upper"])
    base = alt.Chart(data).encode(
        y=alt.Y("feature:N", sort="x", title=None),
        tooltip=["feature:N", "users:Q", "non_users:Q",
                 alt.Tooltip("hazard_ratio:Q", format=".2f"),
                 alt.Tooltip("lower:Q", format=".2f"), alt.Tooltip("upper:Q", format=".2f"),
                 alt.Tooltip("p_adjusted:Q", format=".3f")])
    rule = base.mark_rule().encode(
        x=alt.X("lower:Q", scale=alt.Scale(type="log"),
                title="Hazard ratio of churn, users vs non-users (association)"),
        x2="upper:Q")
    point = base.mark_point(filled=True, size=60).encode(x="hazard_ratio:Q")
    one = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(color=NEUTRAL).encode(x="x:Q")
    return alt.layer(one, rule, point).properties(
        title=title or "Which features go with retention (not proof of cause)")


# -- coverage and capacity
# Charts of cs_analysis.capacity's frames (one row per tier, group, CSM or plan month).
_TIER_ORDER = ["high", "low", "tech"]
_TIER_COLOURS = [PALETTE[0], PALETTE[1], PALETTE[4]]


def coverage_agreement(agreement, *, title: str | None = None) -> alt.LayerChart:
    """Today's touch model against the tier the rule gives, as a heat map.

    Parameters
    ----------
    agreement : pandas.DataFrame
        ``Coverage.agreement`` of :func:`cs_analysis.capacity.assign_coverage`
        (``touch_model``, ``tier``, ``accounts``, ``share``).
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Cells = accounts (colour: share of the touch model's accounts); the diagonal is
        where rule and practice agree.
    """
    base = alt.Chart(agreement).encode(
        x=alt.X("tier:N", title="Tier by the rule", sort=_TIER_ORDER),
        y=alt.Y("touch_model:N", title="Touch model today", sort=_TIER_ORDER),
        tooltip=["touch_model:N", "tier:N", "accounts:Q",
                 alt.Tooltip("share:Q", format=".0%")])
    rect = base.mark_rect().encode(color=alt.Color("share:Q", title="Share",
                                                   scale=alt.Scale(scheme="blues",
                                                                   domain=[0, 1])))
    text = base.mark_text(fontSize=12).encode(
        text="accounts:Q",
        color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("#333333")))
    return alt.layer(rect, text).properties(
        title=title or "Today's touch model vs the rule's tier", width=260, height=180)


def coverage_outcomes(tiers, *, title: str | None = None) -> alt.LayerChart:
    """Median days to value per tier, with its interval, and the share within target.

    Parameters
    ----------
    tiers : pandas.DataFrame
        ``CoverageEvaluation.tiers`` of :func:`cs_analysis.capacity.evaluate_coverage`.
    title : str, optional

    Returns
    -------
    altair.LayerChart
    """
    data = tiers[["tier", "accounts", "median_ttv_days", "median_ttv_lower",
                  "median_ttv_upper", "share_within_target", "retention_12m",
                  "tickets_per_account_month"]].copy()
    data["label"] = [("–" if v != v else f"{v:.0%} within target")
                     for v in data["share_within_target"]]
    y = alt.Y("tier:N", title=None, sort=_TIER_ORDER)
    base = alt.Chart(data)
    tooltip = ["tier:N", "accounts:Q", alt.Tooltip("median_ttv_days:Q", title="median days"),
               alt.Tooltip("share_within_target:Q", format=".0%", title="within target"),
               alt.Tooltip("retention_12m:Q", format=".0%", title="still customers at 12 m"),
               alt.Tooltip("tickets_per_account_month:Q", format=".2f",
                           title="tickets per account-month")]
    ci = base.mark_rule(strokeWidth=2, color=PALETTE[0]).encode(
        y=y, x=alt.X("median_ttv_lower:Q", title="Days to value (median, 95% CI)"),
        x2="median_ttv_upper:Q")
    point = base.mark_point(filled=True, size=80, color=PALETTE[0]).encode(
        y=y, x="median_ttv_days:Q", tooltip=tooltip)
    text = base.mark_text(dy=-14, fontSize=11, color="#486581").encode(
        y=y, x="median_ttv_days:Q", text="label:N")
    return alt.layer(ci, point, text).properties(
        title=title or "Time to value by coverage tier")


def coverage_misfits(groups, *, top: int = 15, title: str | None = None) -> alt.LayerChart:
    """Groups within a tier: their median days to value against the rest of the tier.

    Parameters
    ----------
    groups : pandas.DataFrame
        ``CoverageEvaluation.groups`` (``tier``, ``attribute``, ``value``, ``accounts``,
        ``median_ttv_days``, ``rest_median_ttv_days``, ``ttv_ratio``, ``ttv_p_adjusted``,
        ``looks_like``).
    top : int
        Groups shown: the flagged ones, then the lowest adjusted p-values.
    title : str, optional

    Returns
    -------
    altair.LayerChart
        One row per group: grey tick = the rest of its tier, point = the group (red when
        flagged as looking like another tier).
    """
    import pandas as pd

    data = groups.dropna(subset=["median_ttv_days", "rest_median_ttv_days"]).copy()
    data["flagged"] = data["looks_like"].notna()
    data = data.sort_values(["flagged", "ttv_p_adjusted"], ascending=[False, True]).head(top)
    data["group"] = [f"{t} · {a} = {v}" for t, a, v in zip(
        data["tier"], data["attribute"], data["value"], strict=True)]
    data["status"] = ["looks like " + str(x) if isinstance(x, str) else "fits its tier"
                      for x in data["looks_like"]]
    data = data[["group", "tier", "attribute", "value", "accounts", "median_ttv_days",
                 "rest_median_ttv_days", "ttv_ratio", "ttv_p_adjusted", "status"]]
    data = data.astype({"value": "str"})
    order = list(data["group"])
    base = alt.Chart(pd.DataFrame(data)).encode(
        y=alt.Y("group:N", sort=order, title=None),
        tooltip=["tier:N", "attribute:N", "value:N", "accounts:Q",
                 alt.Tooltip("median_ttv_days:Q", title="median days"),
                 alt.Tooltip("rest_median_ttv_days:Q", title="rest of tier"),
                 alt.Tooltip("ttv_ratio:Q", format=".2f"),
                 alt.Tooltip("ttv_p_adjusted:Q", format=".3g", title="p (Holm)"), "status:N"])
    rule = base.mark_rule(color=NEUTRAL).encode(
        x=alt.X("rest_median_ttv_days:Q", title="Median days to value"),
        x2="median_ttv_days:Q")
    rest = base.mark_tick(color="#666666", thickness=2, size=14).encode(
        x="rest_median_ttv_days:Q")
    point = base.mark_point(filled=True, size=70).encode(
        x="median_ttv_days:Q",
        color=alt.Color("status:N", title=None,
                        scale=alt.Scale(domain=["fits its tier", "looks like high",
                                                "looks like low", "looks like tech"],
                                        range=[PALETTE[0], BAD, "#f28e2b", "#76b7b2"])))
    return alt.layer(rule, rest, point).properties(
        title=title or "Groups that onboard unlike the rest of their tier (tick: rest)")


def csm_workload(per_csm, *, title: str | None = None) -> alt.LayerChart:
    """Hours of each CSM's book per month, by phase, against their capacity.

    Parameters
    ----------
    per_csm : pandas.DataFrame
        ``Workload.per_csm`` of :func:`cs_analysis.capacity.workload`, or a frame with
        ``csm_owner``, ``hours_onboarding``, ``hours_adoption``, ``hours_renewal`` and
        ``capacity_hours`` (then bars are split by phase).
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Horizontal bars (red when overloaded), dashed line at the capacity.
    """
    import pandas as pd

    people = per_csm[per_csm["capacity_hours"].notna()].copy()
    people["state"] = ["overloaded" if bool(o) else "within capacity"
                       for o in people["overloaded"].fillna(False)]
    order = list(people.sort_values("hours", ascending=False)["csm_owner"])
    bars = alt.Chart(people).mark_bar().encode(
        y=alt.Y("csm_owner:N", sort=order, title=None),
        x=alt.X("hours:Q", title="Hours of account work per month"),
        color=alt.Color("state:N", title=None, legend=alt.Legend(orient="bottom"),
                        scale=alt.Scale(domain=["within capacity", "overloaded"],
                                        range=[PALETTE[0], BAD])),
        tooltip=["csm_owner:N", "accounts:Q", alt.Tooltip("hours:Q", format=".1f"),
                 alt.Tooltip("capacity_hours:Q", format=".1f"),
                 alt.Tooltip("load:Q", format=".0%", title="load")])
    cap = float(people["capacity_hours"].max()) if len(people) else 0.0
    line = alt.Chart(pd.DataFrame({"x": [cap]})).mark_rule(
        color="#333333", strokeDash=[4, 3]).encode(x="x:Q")
    return alt.layer(bars, line).properties(
        title=title or "Workload per CSM against capacity (dashed)")


def csms_needed(months, *, title: str | None = None) -> alt.LayerChart:
    """CSMs needed per month (one line per scenario) and the staff's ramped capacity.

    Parameters
    ----------
    months : pandas.DataFrame
        ``CapacityPlan.months`` of :func:`cs_analysis.capacity.capacity_plan` (or
        :func:`~cs_analysis.capacity.plan_capacity`'s first frame): ``scenario``,
        ``month``, ``csms_needed_fte``, ``csm_capacity_fte``, ``hires_joining``.
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Solid lines = CSMs needed (full-time equivalents); dashed = capacity of the staff
        with hires ramping up; hires marked as points where they join.
    """
    data = months[["scenario", "month", "csms_needed_fte", "csm_capacity_fte",
                   "hires_joining", "hours"]].copy()
    x = alt.X("month:O", title=None, axis=alt.Axis(labelAngle=-45))
    colour = alt.Color("scenario:N", title="Scenario")
    tooltip = ["scenario:N", "month:O",
               alt.Tooltip("csms_needed_fte:Q", format=".1f", title="CSMs needed"),
               alt.Tooltip("csm_capacity_fte:Q", format=".2f", title="staff capacity"),
               alt.Tooltip("hires_joining:Q", title="hires joining"),
               alt.Tooltip("hours:Q", format=",.0f")]
    need = alt.Chart(data).mark_line(point=True).encode(
        x=x, y=alt.Y("csms_needed_fte:Q", title="CSMs (full-time equivalents)",
                     scale=alt.Scale(zero=False)),
        color=colour, tooltip=tooltip)
    staff = alt.Chart(data).mark_line(strokeDash=[4, 3], interpolate="step-after").encode(
        x=x, y="csm_capacity_fte:Q", color=colour, tooltip=tooltip)
    return alt.layer(need, staff).properties(
        title=title or "CSMs needed (solid) and staff capacity with ramp (dashed)")


# -- health ----------------------------------------------------------------------------
# Charts of cs_analysis.health frames (already aggregated: bands, measures, deciles).
BAND_COLOURS = {"green": GOOD, "yellow": "#edc948", "red": BAD, "no data": NEUTRAL}


def _band_scale() -> alt.Scale:
    return alt.Scale(domain=list(BAND_COLOURS), range=list(BAND_COLOURS.values()))


def health_bands(accounts, *, by: str = "segment", title: str | None = None) -> alt.Chart:
    """Share of accounts per health band within each group (segment, CSM).

    Parameters
    ----------
    accounts : pandas.DataFrame
        ``HealthScores.accounts`` (one row per account with ``band`` and the ``by``
        column).
    by : str
        Grouping column.
    title : str, optional

    Returns
    -------
    altair.Chart
        Normalised horizontal stacked bars, green / yellow / red.
    """
    import pandas as pd

    g = accounts.assign(_g=accounts[by].astype("object").where(accounts[by].notna(),
                                                                "(missing)").astype(str))
    counts = g.groupby(["_g", "band"]).size().rename("accounts").reset_index()
    counts = counts.rename(columns={"_g": by})
    counts["share"] = counts["accounts"] / counts.groupby(by)["accounts"].transform("sum")
    counts = pd.DataFrame(counts)
    return alt.Chart(counts).mark_bar().encode(
        y=alt.Y(f"{by}:N", title=None),
        x=alt.X("share:Q", stack="normalize", title="Share of accounts",
                axis=alt.Axis(format="%")),
        color=alt.Color("band:N", scale=_band_scale(), title="Band",
                        legend=alt.Legend(orient="bottom")),
        order=alt.Order("band_order:Q"),
        tooltip=[f"{by}:N", "band:N", "accounts:Q",
                 alt.Tooltip("share:Q", format=".0%")],
    ).transform_calculate(
        band_order="indexof(['green', 'yellow', 'red', 'no data'], datum.band)",
    ).properties(title=title or f"Health bands by {by}")


def measure_aucs(measures, *, title: str | None = None) -> alt.LayerChart:
    """AUC of the score and of each measure alone, with intervals; 0.5 = no better than chance.

    Parameters
    ----------
    measures : pandas.DataFrame
        ``Backtest.measures``: ``label``, ``auc``, ``lower``, ``upper``.
    title : str, optional
    """
    import pandas as pd

    data = measures[["label", "auc", "lower", "upper"]].copy()
    data["auc"] = data["auc"].astype(float)
    order = list(data.sort_values("auc", ascending=False)["label"])
    base = alt.Chart(data).encode(y=alt.Y("label:N", sort=order, title=None))
    bars = base.mark_rule(color="#666666").encode(
        x=alt.X("lower:Q", title="AUC (0.5 = chance)", scale=alt.Scale(domain=[0.4, 1.0])),
        x2="upper:Q")
    points = base.mark_point(filled=True, size=70, color=PALETTE[0]).encode(
        x="auc:Q", tooltip=["label:N", alt.Tooltip("auc:Q", format=".3f"),
                            alt.Tooltip("lower:Q", format=".3f"),
                            alt.Tooltip("upper:Q", format=".3f")])
    chance = alt.Chart(pd.DataFrame({"x": [0.5]})).mark_rule(
        color=BAD, strokeDash=[4, 3]).encode(x="x:Q")
    return alt.layer(bars, points, chance).properties(
        title=title or "How well does each measure foretell churn? (AUC, 95% interval)")


def band_calibration(calibration, *, title: str | None = None) -> alt.LayerChart:
    """Observed event rate per health band with its Wilson interval.

    Parameters
    ----------
    calibration : pandas.DataFrame
        ``Backtest.calibration``: ``band``, ``rate``, ``lower``, ``upper``, ``n``.
    title : str, optional
    """
    data = calibration.copy()
    base = alt.Chart(data).encode(x=alt.X("band:N", sort=list(BAND_COLOURS), title=None))
    bars = base.mark_bar().encode(
        y=alt.Y("rate:Q", title="Share that churned in the horizon", axis=alt.Axis(format="%")),
        color=alt.Color("band:N", scale=_band_scale(), legend=None),
        tooltip=["band:N", "n:Q", "events:Q", alt.Tooltip("rate:Q", format=".1%"),
                 alt.Tooltip("lower:Q", format=".1%"), alt.Tooltip("upper:Q", format=".1%")])
    err = base.mark_rule(color="#333333").encode(y="lower:Q", y2="upper:Q")
    return alt.layer(bars, err).properties(
        title=title or "What happened next, by band (calibration)")


def lift_deciles(lift, *, title: str | None = None) -> alt.LayerChart:
    """Lift of each risk decile (1 = lowest scores) over the overall event rate.

    Parameters
    ----------
    lift : pandas.DataFrame
        ``Backtest.lift``: ``decile``, ``lift``, ``rate``, ``n``.
    title : str, optional
    """
    import pandas as pd

    bars = alt.Chart(lift).mark_bar(color=PALETTE[0]).encode(
        x=alt.X("decile:O", title="Risk decile (1 = lowest scores)"),
        y=alt.Y("lift:Q", title="Lift (event rate / overall rate)"),
        tooltip=["decile:O", "n:Q", "events:Q", alt.Tooltip("rate:Q", format=".1%"),
                 alt.Tooltip("lift:Q", format=".2f")])
    one = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(
        color=BAD, strokeDash=[4, 3]).encode(y="y:Q")
    return alt.layer(bars, one).properties(title=title or "Lift by risk decile")


def health_history(history, *, title: str | None = None) -> alt.LayerChart:
    """One account's score over time (line) and each measure's points (thin lines).

    Parameters
    ----------
    history : pandas.DataFrame
        ``date``, ``measure`` (label; ``Health score`` for the score), ``points``.
    title : str, optional
    """
    score = history[history["measure"] == "Health score"]
    parts = history[history["measure"] != "Health score"]
    x = alt.X("date:T", title=None)
    thin = alt.Chart(parts).mark_line(point=True, strokeWidth=1, opacity=0.6).encode(
        x=x, y=alt.Y("points:Q", title="Points (0-100)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("measure:N", title="Measure"),
        tooltip=["date:T", "measure:N", alt.Tooltip("points:Q", format=".0f")])
    thick = alt.Chart(score).mark_line(point=True, strokeWidth=3, color="#333333").encode(
        x=x, y="points:Q", tooltip=["date:T", alt.Tooltip("points:Q", format=".1f",
                                                         title="score")])
    return alt.layer(thin, thick).properties(
        title=title or "Health score (black) and the points of each measure")
