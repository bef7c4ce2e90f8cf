"""Cohort retention, revenue retention, survival and churn drivers.

Public API (signatures are stable; notebooks and dashboards rely on them):

- :func:`cohort_retention` -- logo retention per signup cohort and period.
- :func:`average_retention` / :func:`retention_curve` -- cohort-size-weighted curve.
- :func:`revenue_retention` -- MRR bridge, GRR / NRR per cohort and trailing 12 months.
- :func:`account_lifetimes` -- per-account lifetime (signup to churn, or censored).
- :func:`survival` -- Kaplan-Meier curves, median lifetime, log-rank test.
- :func:`churn_drivers` -- Cox proportional-hazards hazard ratios.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

__all__ = [
    "RevenueRetention",
    "SurvivalResult",
    "account_lifetimes",
    "average_retention",
    "churn_drivers",
    "cohort_retention",
    "retention_curve",
    "revenue_retention",
    "survival",
]


def cohort_retention(ws, grain: str = "month", basis: str = "contract", by: str | None = None,
                     periods: int | None = None, *, kind: str = "bounded",
                     events: Sequence[str] | None = None, as_of=None) -> pd.DataFrame:
    """Logo retention per signup cohort and period (stub; implementation follows)."""
    raise NotImplementedError


def average_retention(frame: pd.DataFrame, *, small_sample: int = 30,
                      alpha: float = 0.05) -> pd.DataFrame:
    """Cohort-size-weighted retention curve over observable cohorts (stub)."""
    raise NotImplementedError


def retention_curve(ws, grain: str = "month", basis: str = "contract", by: str | None = None,
                    periods: int | None = None, *, kind: str = "bounded",
                    events: Sequence[str] | None = None, as_of=None,
                    small_sample: int = 30, alpha: float = 0.05) -> pd.DataFrame:
    """``average_retention(cohort_retention(...))`` in one call (stub)."""
    raise NotImplementedError


@dataclass(frozen=True)
class RevenueRetention:
    """Result of :func:`revenue_retention` (stub)."""

    bridge: pd.DataFrame
    by_cohort: pd.DataFrame
    trailing: pd.DataFrame


def revenue_retention(ws, grain: str = "month", by: str | None = None,
                      as_of=None) -> RevenueRetention:
    """MRR bridge and gross / net revenue retention (stub)."""
    raise NotImplementedError


def account_lifetimes(ws, as_of=None, by: str | None = None) -> pd.DataFrame:
    """Per-account lifetime from signup to churn, censored at the as-of date (stub)."""
    raise NotImplementedError


@dataclass(frozen=True)
class SurvivalResult:
    """Result of :func:`survival` (stub)."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    logrank: pd.DataFrame


def survival(ws, by: str | None = None, as_of=None, *, small_sample: int = 30,
             alpha: float = 0.05) -> SurvivalResult:
    """Kaplan-Meier survival of account lifetime (stub)."""
    raise NotImplementedError


def churn_drivers(ws, covariates: Sequence[str] = ("segment",), as_of=None, *,
                  reference: Mapping[str, str] | None = None,
                  log: Sequence[str] = ("employees",), alpha: float = 0.05) -> pd.DataFrame:
    """Cox proportional-hazards hazard ratios of churn (stub)."""
    raise NotImplementedError
