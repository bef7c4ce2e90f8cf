"""cs_analysis: Customer Success analytics on an open, checkable workspace.

Open a workspace, then call an analysis::

    import cs_analysis as cs
    ws = cs.open_workspace()          # data/demo.duckdb (`make demo` builds it)
    cs.retention.cohort_retention(ws, grain="month")
    cs.onboarding.ttv_summary(ws, by="segment")
    cs.surveys.nps(ws, by="segment")

Modules: :mod:`~cs_analysis.contract` (the data contract), :mod:`~cs_analysis.io`
(read, map, validate, load exports), :mod:`~cs_analysis.workspace`,
:mod:`~cs_analysis.demo`, the analyses :mod:`~cs_analysis.retention`,
:mod:`~cs_analysis.onboarding`, :mod:`~cs_analysis.surveys`, :mod:`~cs_analysis.journey`,
and :mod:`~cs_analysis.charts`. Dashboards (widgets) live in :mod:`cs_analysis.dashboard`,
imported on demand.
"""

import sys as _sys

# jsonschema (through Altair) imports rfc3987_syntax, which builds a grammar at import:
# 1.5-6 s of every dashboard kernel's start on a busy 2-core machine, for the "iri"
# string format that no schema here uses. Without it jsonschema skips that one check.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from cs_analysis import charts, contract, journey, onboarding, retention, surveys  # noqa: E402
from cs_analysis.workspace import Workspace, WorkspaceError, open_workspace  # noqa: E402

__all__ = [
    "Workspace",
    "WorkspaceError",
    "charts",
    "contract",
    "journey",
    "onboarding",
    "open_workspace",
    "retention",
    "surveys",
]
__version__ = "0.1.0"
