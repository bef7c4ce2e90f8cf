"""Kaplan-Meier helpers shared by retention, onboarding and journey.

One convention for every survival curve of the package:

- the curve is the product-limit estimate ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)`` at
  the distinct event times, with Greenwood standard errors (statsmodels
  ``SurvfuncRight``);
- the ``p`` quantile (the time by which a share ``p`` has had the event; the median is
  ``p = 0.5``) is the smallest event time ``t`` with ``S(t) <= 1 - p``: the textbook /
  R ``survival`` / lifelines rule. (statsmodels' own ``SurvfuncRight.quantile`` takes
  ``S(t) < 1 - p``, which moves to the next event time when the curve lands exactly on
  ``1 - p``.) NaN when the curve never gets that low within follow-up;
- a pointwise interval of ``S`` is computed on the log(-log S) scale,
  ``S ** exp(+-z * se / (S * |log S|))``, which stays within [0, 1] (lifelines'
  "exponential Greenwood" band);
- the interval of the ``p`` quantile is where that band crosses ``1 - p`` (metrics.md,
  median intervals; lifelines' ``median_survival_times(confidence_interval_)``): its
  lower end is the first event time at which the band's lower edge is ``<= 1 - p``, its
  upper end the first event time at which the band's upper edge is. When the curve steps
  across 50% in one large jump both ends are that step's time (e.g. [3, 3]), never
  missing. **NaN means that edge of the band does not reach** ``1 - p`` **within
  follow-up** (the upper end of a median interval when fewer than about half are known
  to have had the event, with the uncertainty), or that there is no event at all.
  (statsmodels' ``quantile_ci`` inverts a test at the event times only and returns NaN
  at such a jump.)
- Competing risks: :func:`aalen_johansen` gives the cumulative incidence of one event
  type when another ends follow-up for good (churn before value): "what actually
  happened", beside 1 - S(t) of Kaplan-Meier, "in a world without the competing event".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CumulativeIncidence",
    "KaplanMeier",
    "aalen_johansen",
    "cif_interval",
    "finite",
    "kaplan_meier",
    "loglog_interval",
]

#: Tolerance of ``S(t) <= 1 - p``: a product of fractions landing on 0.5 may be 0.5 + 1e-16.
_TOL = 1e-12


@dataclass
class KaplanMeier:
    """Product-limit estimate at the distinct event times (see the module docstring).

    Attributes
    ----------
    times, surv, se, n_risk, n_events : numpy.ndarray
        Event times, S(t) just after each, its Greenwood standard error, the number at
        risk and the number of events there. Empty when no event was observed.
    max_time : float
        Longest follow-up (event or censoring); NaN without observations.
    fit : statsmodels.duration.survfunc.SurvfuncRight or None
        The underlying fit (None without events).
    """

    times: np.ndarray
    surv: np.ndarray
    se: np.ndarray
    n_risk: np.ndarray
    n_events: np.ndarray
    max_time: float
    fit: Any = None

    def at(self, t: float) -> tuple[float, float]:
        """``(S(t), se)`` as a right-continuous step function; NaN beyond follow-up."""
        if not len(self.times) and self.max_time < t:
            return math.nan, math.nan
        i = np.searchsorted(self.times, t, side="right") - 1
        s, se = (1.0, 0.0) if i < 0 else (float(self.surv[i]), float(self.se[i]))
        if t > self.max_time and s > 0:
            return math.nan, math.nan
        return s, se

    def quantile(self, p: float) -> float:
        """Smallest event time with ``S(t) <= 1 - p``; NaN when the curve stays above."""
        idx = np.flatnonzero(self.surv <= 1 - p + _TOL)
        return float(self.times[idx[0]]) if len(idx) else math.nan

    def band(self, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise ``1 - alpha`` band of S at :attr:`times` (log(-log S) scale).

        Where S = 0 both edges are 0; where the standard error is 0 (nobody left at risk
        after the step), both edges are S.
        """
        from scipy.stats import norm

        z = float(norm.ppf(1 - alpha / 2))
        lo, hi = loglog_interval(self.surv, self.se, z)
        flat = np.isnan(lo) | np.isnan(hi)
        lo = np.where(flat, self.surv, lo)
        hi = np.where(flat, self.surv, hi)
        return lo, hi

    def quantile_ci(self, p: float, alpha: float = 0.05) -> tuple[float, float]:
        """Interval of the ``p`` quantile: where the pointwise band crosses ``1 - p``.

        Lower end: the first event time at which the band's lower edge is ``<= 1 - p``;
        upper end: the first at which its upper edge is. A curve stepping across ``1 - p``
        in one jump gives that step's time at both ends when the band jumps across too.
        NaN: that edge of the band does not reach ``1 - p`` within follow-up (or no
        event was observed).
        """
        if not len(self.times):
            return math.nan, math.nan
        lo, hi = self.band(alpha)

        def first(edge):
            idx = np.flatnonzero(edge <= 1 - p + _TOL)
            return float(self.times[idx[0]]) if len(idx) else math.nan

        return first(lo), first(hi)


def kaplan_meier(time, event) -> KaplanMeier:
    """Fit the Kaplan-Meier estimate of right-censored durations.

    Parameters
    ----------
    time : array-like of float
        Duration to the event, or to censoring.
    event : array-like of bool or int
        1 / True where the event was observed, 0 / False where censored.

    Returns
    -------
    KaplanMeier
        Curve, quantiles (``S(t) <= 1 - p``) and their intervals.
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    max_time = float(time.max()) if len(time) else math.nan
    if event.sum() == 0:
        empty = np.zeros(0)
        return KaplanMeier(empty, empty, empty, empty, empty, max_time)
    sf = SurvfuncRight(time, event)
    return KaplanMeier(np.asarray(sf.surv_times, float), np.asarray(sf.surv_prob, float),
                       np.nan_to_num(np.asarray(sf.surv_prob_se, float)),
                       np.asarray(sf.n_risk, float), np.asarray(sf.n_events, float),
                       max_time, sf)


def loglog_interval(surv, se, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise interval of S on the log(-log S) scale: ``S ** exp(+-z se / (S |log S|))``.

    Parameters
    ----------
    surv, se : float or array-like
        Survival probabilities and their standard errors.
    z : float
        Normal quantile (1.96 for 95%).

    Returns
    -------
    (lower, upper) : tuple of numpy.ndarray, or of float for scalar input
        NaN where the interval is undefined (S = 0, S = 1 or se = 0).
    """
    scalar = np.ndim(surv) == 0 and np.ndim(se) == 0
    surv = np.atleast_1d(np.asarray(surv, dtype=float))
    se = np.atleast_1d(np.asarray(se, dtype=float))
    lower = np.full(surv.shape, np.nan)
    upper = np.full(surv.shape, np.nan)
    ok = (surv > 0) & (surv < 1) & (se > 0)
    half = z * se[ok] / (surv[ok] * np.abs(np.log(surv[ok])))
    lower[ok] = surv[ok] ** np.exp(half)
    upper[ok] = surv[ok] ** np.exp(-half)
    if scalar:
        return float(lower[0]), float(upper[0])
    return lower, upper


@dataclass
class CumulativeIncidence:
    """Aalen-Johansen cumulative incidence of one event type among competing ones.

    Attributes
    ----------
    times : numpy.ndarray
        Distinct times with an event of any type.
    cif : numpy.ndarray
        F(t) just after each: the share that has had the event of interest by t, the
        competing events taken as what they are (they end follow-up for good).
    se : numpy.ndarray
        Its delta-method (Greenwood-type) standard error.
    n_risk, n_events : numpy.ndarray
        At risk just before each time, and events of interest there.
    max_time : float
        Longest follow-up; NaN without observations.
    """

    times: np.ndarray
    cif: np.ndarray
    se: np.ndarray
    n_risk: np.ndarray
    n_events: np.ndarray
    max_time: float

    def at(self, t: float) -> tuple[float, float]:
        """``(F(t), se)`` as a right-continuous step function; NaN beyond follow-up."""
        if math.isnan(self.max_time) or t > self.max_time:
            return math.nan, math.nan
        i = np.searchsorted(self.times, t, side="right") - 1
        return (0.0, 0.0) if i < 0 else (float(self.cif[i]), float(self.se[i]))


def aalen_johansen(time, event, cause: int = 1) -> CumulativeIncidence:
    """Aalen-Johansen estimate of the cumulative incidence of ``cause``.

    ``F(t) = sum_{t_j <= t} S(t_j-) d_cause_j / n_j``, with S the Kaplan-Meier estimate of
    "no event of any type yet" and n_j the number at risk at t_j. Unlike 1 - KM of the
    event of interest (which treats a competing event as censoring, i.e. "in a world
    without the competing event"), F(t) is what actually happened: the share that had
    the event by t when the competing event rules it out for good (an account that
    churned before value never reaches value).

    The variance is the delta-method (Greenwood-type) formula of Collett (Modelling
    Survival Data in Medical Research, 3rd ed., p. 411; SAS ``LIFETEST``), as in
    lifelines' ``AalenJohansenFitter``::

        Var F(t) = sum_j (F(t) - F(t_j))^2 d_j / (n_j (n_j - d_j))
                 + sum_j S(t_j-)^2 d_cause_j (n_j - d_cause_j) / n_j^3
                 - 2 sum_j (F(t) - F(t_j)) S(t_j-) d_cause_j / n_j^2

    over t_j <= t (d_j: events of any type; a term with n_j = d_j counts 0).

    Parameters
    ----------
    time : array-like of float
        Time to the first event of any type, or to censoring.
    event : array-like of int
        0 = censored, ``cause`` = the event of interest, any other value = a competing
        event.
    cause : int
        The event of interest.

    Returns
    -------
    CumulativeIncidence
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    max_time = float(time.max()) if len(time) else math.nan
    times = np.unique(time[event != 0])
    if not len(times):
        empty = np.zeros(0)
        return CumulativeIncidence(empty, empty, empty, empty, empty, max_time)
    n = np.array([(time >= t).sum() for t in times], dtype=float)
    d = np.array([((time == t) & (event != 0)).sum() for t in times], dtype=float)
    d1 = np.array([((time == t) & (event == cause)).sum() for t in times], dtype=float)
    surv = np.cumprod(1 - d / n)
    lag = np.r_[1.0, surv[:-1]]
    f = np.cumsum(lag * d1 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(n > d, d / (n * (n - d)), 0.0)
    var = np.empty(len(times))
    for i in range(len(times)):
        k = slice(0, i + 1)
        diff = f[i] - f[k]
        var[i] = (np.sum(diff ** 2 * g[k])
                  + np.sum(lag[k] ** 2 * d1[k] * (n[k] - d1[k]) / n[k] ** 3)
                  - 2 * np.sum(diff * lag[k] * d1[k] / n[k] ** 2))
    se = np.sqrt(np.clip(var, 0.0, None))
    return CumulativeIncidence(times, f, se, n, d1, max_time)


def cif_interval(cif, se, z: float) -> tuple[float, float]:
    """Pointwise interval of a cumulative incidence on the log(-log F) scale.

    ``F ** exp(-+z se / (F |log F|))``, within [0, 1] (lifelines' convention); NaN where
    undefined (F = 0, F = 1 or se = 0).
    """
    lo, hi = loglog_interval(cif, se, z)
    return lo, hi


def finite(x) -> float:
    """``float(x)``, or NaN when it is infinite or NaN (an unbounded interval end)."""
    x = float(x)
    return x if math.isfinite(x) else math.nan
