"""Onboarding: completion criteria, time-to-value, stalled accounts, and what helps.

A package of four modules (every public name is re-exported here, so
``from cs_analysis.onboarding import ttv_summary`` works):

- :mod:`~cs_analysis.onboarding.criteria` -- the criteria file;
- :mod:`~cs_analysis.onboarding.ttv` -- time to value, summaries, curves, stalled accounts;
- :mod:`~cs_analysis.onboarding.effects` -- time to value vs retention, effects of CS plays;
- :mod:`~cs_analysis.onboarding.tickets` -- support tickets during onboarding.

Public API (signatures are stable; notebooks and dashboards rely on them):

- :func:`load_criteria` -- read and check a completion-criteria file (YAML, see
  ``cs_analysis/defaults/onboarding_criteria.yml``); :class:`Criteria`, :class:`Stage`,
  :class:`Condition`, :class:`CriteriaError`, :func:`default_criteria_path`.
- :func:`time_to_value` -- per account and stage: clock start, reached time or
  censoring, days.
- :func:`ttv_summary` / :func:`ttv_curves` -- Kaplan-Meier median and percentiles of
  days to a stage with intervals, share within target, counts; the curves.
- :func:`stalled_accounts` -- onboardings that stopped moving or ran past their target.
- :func:`ttv_vs_retention` -- does faster time-to-value go with better retention
  (landmark analysis, Cox model).
- :func:`onboarding_tickets` -- support tickets opened during onboarding, per category
  and account-week.
- :func:`activity_effect` -- do accounts that received a CS activity (e.g. training) do
  better, naively and within strata of the listed covariates.

Definitions (metrics.md, "Onboarding")
--------------------------------------
- **clock start**: ``signup_date`` or ``kickoff_date``, per the criteria file (per
  segment if it says so). An account without the chosen date is reported (status
  ``no_clock_start``), not guessed, unless the file names a date to start from instead
  (``if_no_clock_start``). A clock start after the as-of date: status ``not_started``.
- **stage reached at**: the first moment all of the stage's conditions hold (``all:``),
  or the first moment one of them holds (``any:``). A milestone condition holds from the
  first row of that milestone (duplicate rows do not matter, nor does the order in which
  milestones were reached); usage conditions from the event that completes them. Only
  activity from the account's ``signup_date`` up to the as-of date counts.
- **time-to-value (TTV)**: whole days from the clock-start date to the (UTC) date of the
  stage's reached time (0 when it was reached before the clock started). Accounts not
  there by the as-of date are censored at the as-of date (status ``in_progress``);
  accounts that churn before are censored at their churn date (status
  ``churned_before``, counted separately as "churned before value"). The churn date is
  that of the account's first churn episode (metrics.md's churn date applied to each
  episode): a reactivated account that lost coverage while onboarding churned before
  value even if it came back later.
- **median TTV** and percentiles: from the Kaplan-Meier estimate of the TTV
  distribution, with intervals where its pointwise band crosses 50% (a one-step jump
  gives [t, t]; NaN means the band does not reach 50% within follow-up). **Share within
  target** = 1 - S(target) from the same estimate, not completed / all: the share in a
  world without churn. Churn before value is a competing event: beside it, the
  Aalen-Johansen cumulative incidence of value by the target, what actually happened.
- **effect of a CS play** on time to value: a landmark comparison (accounts still
  onboarding at day L, by whether they had the play by L, clock restarted at L).
- **stalled**: not reached, not churned, and either no milestone for ``idle_days``
  (counting from the clock start when there is none) or past the segment's target.

Heavy work (first milestone times, the N-th event of an event set, windows of N events
within D days, the K-th distinct user, tickets within each account's onboarding window)
runs in the engine (Ibis on the workspace's backend); only one row per account (or per
category) comes back to pandas, where statsmodels does the statistics.
"""

from __future__ import annotations

from cs_analysis.onboarding.criteria import (
    CLOCK_COLUMNS,
    Condition,
    Criteria,
    CriteriaError,
    Stage,
    default_criteria_path,
    load_criteria,
)
from cs_analysis.onboarding.effects import (
    OUTCOMES,
    ActivityEffect,
    TTVRetention,
    activity_effect,
    ttv_vs_retention,
)
from cs_analysis.onboarding.tickets import onboarding_tickets
from cs_analysis.onboarding.ttv import (
    ALL_ACCOUNTS,
    MISSING,
    STATUSES,
    stalled_accounts,
    stalled_per_owner,
    time_to_value,
    ttv_curves,
    ttv_summary,
)

__all__ = [
    "ALL_ACCOUNTS",
    "CLOCK_COLUMNS",
    "MISSING",
    "OUTCOMES",
    "STATUSES",
    "ActivityEffect",
    "Condition",
    "Criteria",
    "CriteriaError",
    "Stage",
    "TTVRetention",
    "activity_effect",
    "default_criteria_path",
    "load_criteria",
    "onboarding_tickets",
    "stalled_accounts",
    "stalled_per_owner",
    "time_to_value",
    "ttv_curves",
    "ttv_summary",
    "ttv_vs_retention",
]
