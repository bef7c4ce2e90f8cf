"""Surveys and the voice of the customer: scores, comparisons, drivers, themes, voices.

Public API (pure functions of a workspace; each returns tidy pandas frames with the
counts behind every rate):

- :func:`responses` -- the scoped survey responses, one per respondent per survey wave
  (filtered and deduplicated in the engine), with account and stakeholder columns.
- :func:`nps`, :func:`csat`, :func:`ces` -- the scores with their counts and a confidence
  interval (analytic by default, bootstrap on request), overall, by group, by period.
- :func:`compare` -- differences between groups (segment, role, touchpoint, business vs
  technical stakeholders) or between periods, with tests and a multiple-comparison
  correction; small groups are flagged, never hidden.
- :func:`drivers` -- which driver ratings (``attr_*``) relate to likelihood to recommend.
- :func:`load_themes`, :func:`read_dictionary`, :func:`tag_comments`, :func:`themes` --
  verbatim comments tagged with the themes of an editable dictionary
  (``cs_analysis/defaults/themes.yml``; English and Japanese).
- :func:`curated_voices` -- the comments of the customers CS chose to listen to.
- :func:`survey_outcomes` -- churn and expansion after the survey, by NPS category
  (:func:`churn_episodes`: every churn, including those before a reactivation).
- :func:`request_priorities` -- feature requests weighed by accounts and MRR.
- :func:`to_markdown`, :func:`export` -- Markdown / CSV for the Product team.

Modules: ``_base`` (the responses and shared helpers), ``scores`` (scores and
comparisons), ``drivers``, ``themes``, ``voices`` (curated voices, requests, exports),
``outcomes``. Every public name is importable from ``cs_analysis.surveys``. The dashboard
is :class:`cs_analysis.dashboard.VoiceOfCustomerDashboard`.

Definitions (metrics.md, "Surveys")
-----------------------------------
- **wave**: the survey's period, by default the calendar quarter of ``responded_at`` in
  the workspace's time zone (``ws.timezone``; ``wave="month"`` or ``"year"`` to change
  it), labelled ``2024-Q1`` (:func:`cs_analysis.time.period_label`). When
  ``respondent_id`` is present (a respondent is an account's person: ``account_id``
  and ``respondent_id``), only each respondent's latest response per survey and wave
  counts (latest ``responded_at``; on a tie, the larger ``response_id``). Responses
  without a ``respondent_id`` all count.
- **NPS** = (promoters - detractors) / responses x 100 on the 0-10 scale (promoter 9-10,
  passive 7-8, detractor 0-6). 95% interval by the delta method:
  ``NPS +- 1.96 x 100 x sqrt((p_P + p_D - (p_P - p_D)**2) / n)``.
- **CSAT** = share of responses in the top-2 box of the scale (4-5 on the default 1-5
  scale); Wilson interval.
- **CES** = mean score (1-7 by default, higher = easier); t interval.

Only responses dated on or before the as-of date count (``as_of``, default the
workspace's), the date of a response being its local date in the workspace's zone.
Scales of CSAT and CES come from the workspace's ``survey_scales`` setting
(:func:`cs_analysis.contract.survey_scale`); NPS is always 0-10.
"""

from __future__ import annotations

from cs_analysis.surveys._base import (
    CATEGORIES,
    MISSING,
    PERIODS,
    RESPONSE_COLUMNS,
    SMALL_SAMPLE,
    SurveyError,
    metric_of,
    normalize_text,
    responses,
)
from cs_analysis.surveys.drivers import drivers
from cs_analysis.surveys.outcomes import SurveyOutcomes, churn_episodes, survey_outcomes
from cs_analysis.surveys.scores import SCORES, ces, compare, csat, holm, nps
from cs_analysis.surveys.themes import (
    DEFAULT_THEMES,
    NO_THEME,
    Theme,
    ThemeDictionary,
    ThemeDictionaryError,
    ThemeResult,
    compile_pattern,
    load_themes,
    read_dictionary,
    tag_comments,
    themes,
)
from cs_analysis.surveys.voices import curated_voices, export, request_priorities, to_markdown
from cs_analysis.time import period_bounds, period_label

__all__ = [
    "CATEGORIES",
    "DEFAULT_THEMES",
    "MISSING",
    "NO_THEME",
    "PERIODS",
    "RESPONSE_COLUMNS",
    "SCORES",
    "SMALL_SAMPLE",
    "SurveyError",
    "SurveyOutcomes",
    "Theme",
    "ThemeDictionary",
    "ThemeDictionaryError",
    "ThemeResult",
    "ces",
    "churn_episodes",
    "compare",
    "compile_pattern",
    "csat",
    "curated_voices",
    "drivers",
    "export",
    "holm",
    "load_themes",
    "metric_of",
    "normalize_text",
    "nps",
    "period_bounds",
    "period_label",
    "read_dictionary",
    "request_priorities",
    "responses",
    "survey_outcomes",
    "tag_comments",
    "themes",
    "to_markdown",
]
