"""Journey alignment: journey maps, their comparison, stage flow, personas, stakeholders.

The package's modules: :mod:`~cs_analysis.journey.maps` (map files, editing),
:mod:`~cs_analysis.journey.compare` (comparison, merging), :mod:`~cs_analysis.journey.flow`
(stage flow, goal progress), :mod:`~cs_analysis.journey.persona` (persona evidence),
:mod:`~cs_analysis.journey.stakeholders`, :mod:`~cs_analysis.journey.workshop` (session,
handout). Every public name is re-exported here.


CS and Product usually hold different pictures of the ideal customer and their path to
success: Product maps feature use (set-up → feature A → feature B), CS maps what happens
between those steps and after them. This package supports the workshop where both teams
agree on one persona, one journey and at least one shared goal metric, and the review of
that metric afterwards.

Public API
----------
- Journey maps as YAML files (format documented in ``cs_analysis/defaults/journeys/README.md``):
  :func:`load_map`, :func:`dump_map`, :func:`save_map`, :func:`save_version`;
  :class:`JourneyMap`, :class:`Persona`, :class:`Stage`, :class:`Signal`, :class:`Goal`,
  :class:`JourneyMapError`. Editing (pure, each returns a new map): :func:`rename_stage`,
  :func:`move_stage`, :func:`merge_stages`, :func:`add_stage`, :func:`remove_stage`,
  :func:`set_signal`, :func:`add_goal`, :func:`remove_goal`, :func:`merge_maps`.
- :func:`compare_maps` → :class:`MapComparison` (stages matched by name or alias, what
  only one team has, order disagreements, different success definitions; ``.html()``
  renders the two maps side by side with the differences highlighted).
- :func:`stage_flow`: per data-signal stage, accounts reaching it, conversion from the
  previous stage, Kaplan-Meier median and spread of the days between them, accounts
  waiting, stalled and churned in between; :func:`journey_reach` →
  :class:`JourneyReach` (when each account reached each stage, for dashboards to narrow).
- :func:`persona_evidence`: survey themes, curated voices and the typical onboarding path
  of a persona's segment and role (from :mod:`cs_analysis.surveys` and
  :mod:`cs_analysis.onboarding`).
- :func:`stakeholder_map` (people at one account, with flags) and
  :func:`stakeholder_coverage` (which role / domain gaps go with churn).
- :func:`goal_progress`: the agreed goal metrics per period against their targets.
- :func:`handout_html` / :func:`export_handout`: a printable workshop handout.
- :class:`WorkshopSession` (the agreed map being edited, autosaved to a draft file under
  :func:`workshop_dir`; every save a new version file, created atomically) and the
  dashboards :class:`JourneyWorkshopDashboard` and
  :class:`SharedGoalsDashboard`.

Definitions
-----------
- A stage is **reached** at the first moment its data signal holds: the first row of a
  milestone; the N-th event of an event set (within D consecutive days if given), or the
  K-th distinct active user (these three computed by
  :func:`cs_analysis.onboarding.time_to_value`, which this module reuses); the first
  response to a survey at a touchpoint (with at least ``min_score`` if given). Only
  activity from the account's ``signup_date`` up to the as-of date counts, and only
  while the account is a customer: a signal dated on or after the account's churn date
  (:func:`cs_analysis.retention.account_lifetimes`) does not count.
- **Calendar**: every date of a timestamp (a stage reached, a response, a departure, an
  event's month or quarter) is its local date in the workspace's time zone
  (``ws.timezone``, :mod:`cs_analysis.time`), so a response at 08:30 in Tokyo on the
  signup day is on the signup day (metrics.md, Time).
- **Conversion** from stage A to the next signal stage B = accounts that reached both /
  accounts that reached A (for the first signal stage, A is the signup).
- **Days from A to B**: whole days between the dates A and B were reached (0 when B came
  first). Accounts that reached A but not B are censored at their churn date, or at the
  as-of date when still customers; the median and quartiles come from the Kaplan-Meier
  estimate (smallest t with S(t) <= 1 - p), never from the reached accounts only.
- **Waiting** at B: reached A, not B, still a customer. **Stalled**: waiting for more than
  ``stall_days`` since reaching A. **Churned before** B: reached A, churned before B.
"""

from __future__ import annotations

from cs_analysis.journey.compare import (
    MapComparison,
    compare_maps,
    comparison_html,
    merge_maps,
)
from cs_analysis.journey.flow import JourneyReach, goal_progress, journey_reach, stage_flow
from cs_analysis.journey.maps import (
    CHAMPION_ROLES,
    DECISION_STYLES,
    DOMAINS,
    GOAL_METRICS,
    KEY_ROLES,
    LAYERS,
    ROLES,
    SIGNAL_KINDS,
    SMALL_SAMPLE,
    WORKSHOP_ENV,
    Goal,
    JourneyMap,
    JourneyMapError,
    Persona,
    Signal,
    Stage,
    add_goal,
    add_stage,
    default_maps,
    dump_map,
    edit_stage,
    format_target,
    journeys_dir,
    load_map,
    merge_stages,
    move_stage,
    remove_goal,
    remove_stage,
    rename_stage,
    save_map,
    save_version,
    set_signal,
    slug,
)
from cs_analysis.journey.persona import PersonaEvidence, persona_evidence
from cs_analysis.journey.stakeholders import (
    StakeholderMap,
    stakeholder_coverage,
    stakeholder_map,
)
from cs_analysis.journey.workshop import (
    WorkshopSession,
    export_handout,
    handout_html,
    latest_agreed,
    workshop_dir,
)

__all__ = [
    "CHAMPION_ROLES",
    "DECISION_STYLES",
    "DOMAINS",
    "GOAL_METRICS",
    "KEY_ROLES",
    "LAYERS",
    "ROLES",
    "SIGNAL_KINDS",
    "WORKSHOP_ENV",
    "Goal",
    "JourneyMap",
    "JourneyMapError",
    "JourneyReach",
    "MapComparison",
    "Persona",
    "PersonaEvidence",
    "Signal",
    "Stage",
    "StakeholderMap",
    "WorkshopSession",
    "add_goal",
    "add_stage",
    "compare_maps",
    "default_maps",
    "dump_map",
    "export_handout",
    "goal_progress",
    "journey_reach",
    "latest_agreed",
    "edit_stage",
    "format_target",
    "comparison_html",
    "SMALL_SAMPLE",
    "handout_html",
    "journeys_dir",
    "load_map",
    "merge_maps",
    "merge_stages",
    "move_stage",
    "persona_evidence",
    "remove_goal",
    "remove_stage",
    "rename_stage",
    "save_map",
    "save_version",
    "set_signal",
    "slug",
    "stage_flow",
    "stakeholder_coverage",
    "stakeholder_map",
    "workshop_dir",
]
