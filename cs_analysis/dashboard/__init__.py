"""Dashboards that Voila serves (ipywidgets): the framework and one module per dashboard.

- :mod:`cs_analysis.dashboard.base`: the framework (:class:`Dashboard`, :class:`KPI`,
  :class:`Panel`, :class:`View`, filters, the landing page, formatting, friendly errors);
  its module docstring explains how a dashboard is built and tested.
- :mod:`~cs_analysis.dashboard.retention`: :class:`RetentionDashboard`.
- :mod:`~cs_analysis.dashboard.onboarding`: :class:`OnboardingDashboard`.
- :mod:`~cs_analysis.dashboard.surveys`: :class:`VoiceOfCustomerDashboard`.
- :mod:`~cs_analysis.dashboard.adoption`: :class:`AdoptionDashboard`.
- :mod:`~cs_analysis.dashboard.journey`: :class:`JourneyWorkshopDashboard`,
  :func:`resume`, :class:`SharedGoalsDashboard`.
- :mod:`~cs_analysis.dashboard.renewals`: :class:`RenewalsDashboard`.
- :mod:`~cs_analysis.dashboard.capacity`: :class:`CapacityPlanningDashboard`.
- :mod:`~cs_analysis.dashboard.health`: :class:`AccountHealthDashboard`,
  :class:`AccountDashboard` (one account's page), :func:`requested_account`.

Every name is importable from here (``from cs_analysis.dashboard import
RetentionDashboard``). The analysis modules never import this package: they stay free
of widgets.
"""

from cs_analysis.dashboard.adoption import AdoptionDashboard
from cs_analysis.dashboard.base import (
    ALL,
    KPI,
    LANDING,
    PANEL_WIDTH,
    WIDE_PANEL_WIDTH,
    Dashboard,
    DashboardInfo,
    DashboardSpecError,
    ErrorPanel,
    Panel,
    View,
    account_filters,
    choice_filter,
    csv_data_uri,
    dashboards_dir,
    date_text,
    discover,
    esc,
    fit_chart,
    fmt_int,
    fmt_money,
    fmt_pct,
    follow_request,
    friendly_error,
    landing,
    landing_html,
    month_label,
    month_range,
    range_filter,
    read_info,
    table_html,
    toggle_filter,
    use_served_chart_bundle,
)
from cs_analysis.dashboard.capacity import CapacityPlanningDashboard
from cs_analysis.dashboard.health import (
    AccountDashboard,
    AccountHealthDashboard,
    account_href,
    requested_account,
)
from cs_analysis.dashboard.journey import JourneyWorkshopDashboard, SharedGoalsDashboard, resume
from cs_analysis.dashboard.onboarding import OnboardingDashboard
from cs_analysis.dashboard.renewals import RenewalsDashboard
from cs_analysis.dashboard.retention import (
    HORIZON_MONTHS,
    RetentionDashboard,
    combine_bridge,
    combine_cohort_cells,
    combine_trailing,
)
from cs_analysis.dashboard.surveys import VoiceOfCustomerDashboard

__all__ = [
    "AccountDashboard",
    "AccountHealthDashboard",
    "ALL",
    "AdoptionDashboard",
    "HORIZON_MONTHS",
    "KPI",
    "LANDING",
    "PANEL_WIDTH",
    "WIDE_PANEL_WIDTH",
    "CapacityPlanningDashboard",
    "Dashboard",
    "DashboardInfo",
    "DashboardSpecError",
    "ErrorPanel",
    "JourneyWorkshopDashboard",
    "OnboardingDashboard",
    "Panel",
    "RenewalsDashboard",
    "RetentionDashboard",
    "SharedGoalsDashboard",
    "View",
    "VoiceOfCustomerDashboard",
    "account_filters",
    "account_href",
    "choice_filter",
    "combine_bridge",
    "combine_cohort_cells",
    "combine_trailing",
    "csv_data_uri",
    "dashboards_dir",
    "date_text",
    "discover",
    "esc",
    "fit_chart",
    "follow_request",
    "fmt_int",
    "fmt_money",
    "fmt_pct",
    "friendly_error",
    "landing",
    "landing_html",
    "month_label",
    "month_range",
    "range_filter",
    "requested_account",
    "read_info",
    "resume",
    "table_html",
    "toggle_filter",
    "use_served_chart_bundle",
]
