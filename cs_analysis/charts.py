"""Every Altair chart of the workspace, with one theme.

Charts take tidy frames returned by the analyses and return Altair charts; they never
compute metrics. Call :func:`setup` once (notebooks and dashboards do) so charts render
with no internet: it enables Altair's offline ``jupyter`` renderer, whose JavaScript is
bundled by vl-convert instead of loaded from a CDN (see stack-notes.md), and registers
the ``cs_analysis`` theme.

Use :func:`show` to display a chart as an interactive, offline ``JupyterChart`` widget.
"""

from __future__ import annotations

import altair as alt

THEME = "cs_analysis"
#: Colours used across charts: a calm, colour-blind-safe palette (Tableau 10).
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
           "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
GOOD, BAD, NEUTRAL = "#59a14f", "#e15759", "#bab0ac"
FONT = "system-ui, -apple-system, 'Segoe UI', 'Hiragino Sans', 'Noto Sans JP', sans-serif"


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


def show(chart: alt.TopLevelMixin) -> alt.JupyterChart:
    """Wrap ``chart`` in an offline, interactive ``JupyterChart`` widget."""
    setup()
    return alt.JupyterChart(chart)
