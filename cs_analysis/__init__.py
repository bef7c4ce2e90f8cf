"""cs_analysis: Customer Success analytics on an open, checkable workspace.

Open a workspace, then call an analysis::

    import cs_analysis as cs
    ws = cs.open_workspace()          # the demo workspace, built on first use
    cs.retention.cohort_retention(ws, grain="month")
"""

from cs_analysis import contract
from cs_analysis.workspace import Workspace, WorkspaceError, open_workspace

__all__ = ["Workspace", "WorkspaceError", "contract", "open_workspace"]
__version__ = "0.1.0"
