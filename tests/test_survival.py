"""Kaplan-Meier helpers (cs_analysis.survival): curve, the S(t) <= 1 - p quantile rule, bands.

Expected values come from the product-limit formula worked by hand, from Greenwood's
formula, and from lifelines (a separate implementation of the textbook rule).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from cs_analysis.survival import finite, kaplan_meier, loglog_interval


def brute_km(time, event):
    """Product-limit S(t) and Greenwood se at each distinct event time, by hand."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    s, acc, out = 1.0, 0.0, {}
    for t in sorted(set(time[event == 1])):
        n = int((time >= t).sum())
        d = int(((time == t) & (event == 1)).sum())
        s *= 1 - d / n
        acc += d / (n * (n - d)) if n > d else 0.0
        out[t] = (s, s * math.sqrt(acc) if n > d else 0.0)
    return out


def brute_quantile(curve, p):
    """Smallest event time with S(t) <= 1 - p (textbook / R survival / lifelines)."""
    for t in sorted(curve):
        if curve[t][0] <= 1 - p + 1e-12:
            return t
    return math.nan


def test_median_where_the_curve_lands_exactly_on_one_half():
    km = kaplan_meier([10, 20, 30, 40], [1, 1, 1, 1])
    # S(10) = 3/4, S(20) = 3/4 * 2/3 = 1/2, S(30) = 1/2 * 1/2 = 1/4, S(40) = 0
    assert km.surv == pytest.approx([0.75, 0.5, 0.25, 0.0])
    assert km.quantile(0.5) == 20        # S(20) = 0.5 <= 0.5 (statsmodels' S < 0.5 gives 30)
    assert km.quantile(0.25) == 10       # S(10) = 0.75 <= 0.75
    assert km.quantile(0.75) == 30       # S(30) = 0.25 <= 0.25
    assert km.fit.quantile(0.5) == 30    # the convention this module replaces
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifelines import KaplanMeierFitter

        assert KaplanMeierFitter().fit([10, 20, 30, 40], [1] * 4).median_survival_time_ == 20


def test_curve_quantiles_and_intervals_against_brute_force_and_lifelines():
    rng = np.random.default_rng(3)
    time = rng.integers(1, 40, 120).astype(float)       # many ties
    event = rng.random(120) < 0.7
    km = kaplan_meier(time, event)
    want = brute_km(time, event)
    assert km.times.tolist() == sorted(want)
    assert km.surv == pytest.approx([want[t][0] for t in sorted(want)])
    assert km.se == pytest.approx([want[t][1] for t in sorted(want)])
    for p in (0.1, 0.25, 0.5, 0.75):
        assert km.quantile(p) == brute_quantile(want, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifelines import KaplanMeierFitter

        assert km.quantile(0.5) == KaplanMeierFitter().fit(time, event).median_survival_time_
    lo, hi = km.quantile_ci(0.5, 0.05)
    assert (lo, hi) == _lifelines_median_ci(time, event)
    assert lo <= km.quantile(0.5) <= hi


def _lifelines_median_ci(time, event, alpha=0.05):
    """lifelines' median interval: where its pointwise (exponential Greenwood) band crosses
    0.5; an infinite end (never crosses) as NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifelines import KaplanMeierFitter
        from lifelines.utils import median_survival_times

        kmf = KaplanMeierFitter(alpha=alpha).fit(time, event)
        m = median_survival_times(kmf.confidence_interval_)
    return tuple(finite(x) for x in m.iloc[0])


@pytest.mark.parametrize(("time", "event", "expected"), [
    # S jumps 0.8 -> 0.1 at day 3: the median is 3 and so is its interval
    ([1] * 4 + [2] * 4 + [3] * 28 + [6] * 4, [1] * 36 + [0] * 4, (3.0, 3.0)),
    # everyone on day 3: S jumps 1 -> 0
    ([3] * 10, [1] * 10, (3.0, 3.0)),
    # censored around a big jump
    ([1] + [3] * 6 + [9], [0] + [1] * 6 + [0], (3.0, 3.0)),
])
def test_median_interval_of_one_big_jump_is_that_step_not_missing(time, event, expected):
    km = kaplan_meier(time, event)
    assert km.quantile(0.5) == 3
    assert km.quantile_ci(0.5) == expected
    assert km.quantile_ci(0.5) == _lifelines_median_ci(time, event)
    # statsmodels' inverted test, which this module replaced, has no answer there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert any(math.isnan(finite(x)) for x in km.fit.quantile_ci(0.5))


def test_median_intervals_match_lifelines_and_nan_only_when_the_band_stays_above():
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(3, 60))
        time = rng.integers(1, 30, n).astype(float)
        event = rng.random(n) < rng.uniform(0.1, 1.0)
        km = kaplan_meier(time, event)
        got = km.quantile_ci(0.5, 0.1)
        assert got == pytest.approx(_lifelines_median_ci(time, event, 0.1), nan_ok=True)
        lo, hi = km.band(0.1)
        # NaN exactly when that edge of the band never reaches 0.5
        assert math.isnan(got[0]) == (not (lo <= 0.5 + 1e-12).any())
        assert math.isnan(got[1]) == (not (hi <= 0.5 + 1e-12).any())


def test_step_function_follow_up_and_no_events():
    km = kaplan_meier([10, 20, 30], [1, 0, 1])
    assert km.at(5) == (1.0, 0.0)
    assert km.at(10)[0] == pytest.approx(2 / 3)
    assert km.at(25)[0] == pytest.approx(2 / 3)         # censoring makes no step
    assert km.at(30)[0] == pytest.approx(0.0)
    none = kaplan_meier([5, 8], [0, 0])
    assert none.at(8) == (1.0, 0.0)
    assert all(math.isnan(x) for x in none.at(9))       # beyond follow-up
    assert math.isnan(none.quantile(0.5))
    assert all(math.isnan(x) for x in none.quantile_ci(0.5))


def test_loglog_interval_formula_and_undefined_ends():
    s, se, z = 5 / 6, math.sqrt((25 / 36) / 30), 1.959963984540054
    half = z * se / (s * abs(math.log(s)))
    assert loglog_interval(s, se, z) == pytest.approx((s ** math.exp(half),
                                                        s ** math.exp(-half)))
    lo, hi = loglog_interval([1.0, s, 0.0], [0.0, se, 0.1], z)
    assert np.isnan(lo[[0, 2]]).all() and np.isnan(hi[[0, 2]]).all()
    assert lo[1] < s < hi[1]
    assert math.isnan(finite(float("inf"))) and finite(3) == 3.0


def test_aalen_johansen_matches_lifelines_and_a_hand_example():
    from cs_analysis.survival import aalen_johansen, cif_interval

    # by hand: 4 accounts; value at 1, churn at 2, value at 3, censored at 4
    aj = aalen_johansen([1, 2, 3, 4], [1, 2, 1, 0])
    # F(1) = 1/4; S(1) = 3/4; churn at 2: S(2) = 3/4 * 2/3 = 1/2; F(3) = 1/4 + 1/2 * 1/2
    assert aj.cif == pytest.approx([0.25, 0.25, 0.5])
    # 1 - KM of value (churn as censoring) would say 1 - 3/4 * 1/2 = 5/8 by day 3
    km = kaplan_meier([1, 2, 3, 4], [1, 0, 1, 0])
    assert 1 - km.at(3)[0] == pytest.approx(5 / 8)
    assert aj.at(3)[0] == pytest.approx(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifelines import AalenJohansenFitter

        rng = np.random.default_rng(1)
        for _ in range(15):
            n = int(rng.integers(10, 80))
            # distinct times: lifelines jitters ties between event types at random
            time = np.round(rng.exponential(20, n), 3) + 0.001 * np.arange(n)
            event = rng.choice([0, 1, 2], n, p=[0.3, 0.5, 0.2])
            ref = AalenJohansenFitter(calculate_variance=True).fit(time, event,
                                                                   event_of_interest=1)
            got = aalen_johansen(time, event, 1)
            for q in np.quantile(time, [0.2, 0.5, 0.8]):
                f, se = got.at(q)
                assert f == pytest.approx(ref.cumulative_density_.loc[:q].iloc[-1, 0])
                assert se ** 2 == pytest.approx(ref.variance_.loc[:q].iloc[-1], abs=1e-12)
                lo, hi = cif_interval(f, se, 1.959963984540054)
                band = ref.confidence_interval_.loc[:q].iloc[-1]
                if math.isnan(lo):
                    assert band.isna().all()
                else:
                    assert (lo, hi) == pytest.approx((band.min(), band.max()))
