"""Which driver ratings go with a higher likelihood to recommend: :func:`drivers`.

Regression of a survey's score on the driver ratings (``attr_*``) of the same responses,
with account-clustered standard errors (t with clusters - 1 degrees of freedom) by
default. Returns a :class:`DriverResult`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cs_analysis.errors import check_alpha, check_choice
from cs_analysis.surveys._base import SurveyError, metric_of, prepare

__all__ = ["drivers"]


_DRIVER_MODELS = ("ols", "ordered")
_ROBUST = ("cluster", "HC3", "none")


def drivers(ws_or_frame, target: str = "nps", attributes: str | Sequence[str] = "attr_*", *,
            model: str = "ols", robust: str = "cluster", alpha: float = 0.05, as_of=None,
            wave: str = "quarter", timezone: str | None = None) -> pd.DataFrame:
    """Which driver ratings (``attr_*``) go with a higher likelihood-to-recommend score.

    Fits the target survey's score (for NPS, the 0-10 likelihood to recommend) on the
    driver ratings of the same responses (one per respondent per wave, the latest; only
    responses with every chosen rating), with statsmodels:

    - ``model="ols"``: linear regression; ``effect`` = points of the score per rating
      point, holding the other ratings fixed.
    - ``model="ordered"``: ordered logit (``OrderedModel``, ``distr="logit"``), which
      respects the score's bounded, ordinal nature (answers pile up at 10); ``effect`` =
      odds ratio of a higher score per rating point.

    Standard errors are robust: clustered by account by default (respondents of one
    account answer alike), or HC3 heteroskedasticity-robust. With clustering, intervals
    and p-values use Student's t with (accounts - 1) degrees of freedom and the usual
    small-sample factor ``G/(G-1) x (N-1)/(N-K)`` (statsmodels ``use_t=True``): with a
    few accounts the normal distribution would give intervals that are too narrow. The
    other choices use the normal distribution (large-sample).

    What it can say: which ratings move together with the score once the others are
    taken into account, how strongly (``effect`` with its interval; ``std_effect`` per
    standard deviation of the rating, comparable across ratings), and how sure we are
    (``p_value``). A driver ranking to guide where to look first.

    What it cannot say: that raising a rating would raise the score (ratings and score
    come from one questionnaire: a happy customer rates everything higher, the "halo");
    how ratings that move together split their shared effect (with correlated ratings the
    individual effects are unstable and their intervals wide: check ``correlation``, the
    rating's simple Spearman correlation with the score); anything about customers who
    did not answer. The linear model treats 0-10 as evenly spaced and is damped by the
    ceiling at 10 (an effect of 0.8 may be "really" 1.0); the ordered model does not
    have that problem but its odds ratios are harder to explain.

    Parameters
    ----------
    ws_or_frame : Workspace or pandas.DataFrame
        A workspace, or a frame of responses with ``score`` and the rating columns.
    target : str
        The survey whose score is explained (default ``"nps"``).
    attributes : str or list of str
        Rating columns: a glob pattern over the response columns (default ``"attr_*"``)
        or a list of names.
    model : {"ols", "ordered"}
        Linear regression or ordered logit.
    robust : {"cluster", "HC3", "none"}
        Standard errors clustered by account, heteroskedasticity-robust, or classical.
    alpha : float
        1 - confidence level of the intervals.
    as_of : date or str, optional
        Only responses on or before it (default the workspace's as-of date).
    wave : {"quarter", "month", "year"}
        The survey wave of the one-response-per-respondent rule.
    timezone : str, optional
        As in :func:`cs_analysis.surveys.nps` (frames only).

    Returns
    -------
    pandas.DataFrame
        One row per rating, strongest standardized effect first: ``attribute``,
        ``effect``, ``lower``, ``upper`` (on the effect's scale), ``coef`` and ``se``
        (on the model's scale: score points or log-odds), ``p_value``, ``std_effect``,
        ``mean_rating``, ``correlation``, ``responses``, ``accounts``, ``model``,
        ``effect_unit``, ``df`` (degrees of freedom of the t distribution behind the
        interval and p-value; NaN when the normal is used), ``correlated_with`` (the
        other ratings correlated above 0.8 with this one, comma-separated: their
        individual effects are unstable), and the model's ``r_squared`` (OLS; NaN for
        the ordered model) and ``dropped`` (responses lacking a rating), the same on
        every row.
    """
    import statsmodels.api as sm

    check_choice("model", model, _DRIVER_MODELS, error=SurveyError)
    check_choice("robust", robust, _ROBUST, error=SurveyError)
    alpha = check_alpha(alpha, error=SurveyError)
    wanted = ["attr_*"] + ([attributes] if isinstance(attributes, str) else
                           [str(a) for a in attributes])
    df = prepare(ws_or_frame, target, [], None, as_of=as_of, wave=wave,
                  metric=metric_of(target), timezone=timezone, columns=wanted).frame
    available = [c for c in df.columns if str(c).startswith("attr_")]
    if isinstance(attributes, str):
        attrs = [c for c in df.columns if fnmatch.fnmatchcase(str(c), attributes)
                 and c not in ("score", "survey")]
        if not attrs:
            raise SurveyError(f"attributes={attributes!r} matches no column of the {target!r} "
                              f"responses; rating columns: {', '.join(available) or 'none'}")
    else:
        attrs = list(attributes)
        if not attrs:
            raise SurveyError("attributes=[] names no rating column")
        missing = [a for a in attrs if a not in df.columns]
        if missing:
            raise SurveyError(f"attributes: no column {missing[0]!r} in the {target!r} "
                              f"responses; rating columns: {', '.join(available) or 'none'}")
    data = df[["score", *attrs] + (["account_id"] if "account_id" in df.columns else [])]
    for a in attrs:
        if not pd.api.types.is_numeric_dtype(data[a]):
            raise SurveyError(f"rating column {a!r} holds non-numbers (e.g. "
                              f"{data[a].dropna().iloc[0]!r}); ratings must be numeric")
    complete = data.dropna(subset=["score", *attrs])
    n = len(complete)
    if n < len(attrs) + 10:
        raise SurveyError(f"only {n} {target!r} responses have every rating "
                          f"({', '.join(attrs)}); at least {len(attrs) + 10} are needed")
    flat = [a for a in attrs if complete[a].nunique() < 2]
    if flat:
        raise SurveyError(f"rating {flat[0]!r} has the same value in every response; "
                          "it cannot explain anything: leave it out")
    y = complete["score"].astype(float)
    x = complete[attrs].astype(float)
    groups = (pd.factorize(complete["account_id"])[0] if "account_id" in complete.columns
              else np.arange(n))
    # cluster: t with (clusters - 1) df (statsmodels sets df_resid_inference = G - 1)
    fit_kw = ({"cov_type": "cluster", "cov_kwds": {"groups": groups}, "use_t": True}
              if robust == "cluster" else {"cov_type": "HC3"} if robust == "HC3" else {})
    if model == "ols":
        res = sm.OLS(y, sm.add_constant(x)).fit(**fit_kw)
        coef, se, p = res.params[attrs], res.bse[attrs], res.pvalues[attrs]
        ci = res.conf_int(alpha).loc[attrs]
        effect, lower, upper = coef, ci[0], ci[1]
        std = coef * x.std(ddof=1) / y.std(ddof=1)
        unit = "score points per rating point"
        r2 = float(res.rsquared)
    else:
        from statsmodels.miscmodels.ordinal_model import OrderedModel

        if robust == "HC3":
            fit_kw = {"cov_type": "HC0"}  # HC3 needs a hat matrix; HC0 is the ML sandwich
        om = OrderedModel(y.astype(int), x, distr="logit")
        res = om.fit(method="bfgs", disp=False, maxiter=2000, **fit_kw)
        coef, se, p = res.params[attrs], res.bse[attrs], res.pvalues[attrs]
        ci = res.conf_int(alpha).loc[attrs]
        effect, lower, upper = np.exp(coef), np.exp(ci[0]), np.exp(ci[1])
        std = coef * x.std(ddof=1)
        unit = "odds ratio of a higher score per rating point"
        r2 = float("nan")
    t_df = (float(getattr(res, "df_resid_inference", None) or res.df_resid)
            if getattr(res, "use_t", False) else float("nan"))
    corr = x.corrwith(y, method="spearman")
    cm = x.corr().abs().to_numpy()
    near = [", ".join(attrs[j] for j in range(len(attrs)) if j != i and cm[i, j] > 0.8)
            for i in range(len(attrs))]
    out = pd.DataFrame({
        "attribute": attrs, "effect": effect.to_numpy(), "lower": np.asarray(lower),
        "upper": np.asarray(upper), "coef": coef.to_numpy(), "se": se.to_numpy(),
        "p_value": p.to_numpy(), "std_effect": std.to_numpy(),
        "mean_rating": x.mean().to_numpy(), "correlation": corr.to_numpy(),
        "responses": n, "accounts": int(pd.Series(groups).nunique()), "model": model,
        "effect_unit": unit, "df": t_df, "correlated_with": near, "r_squared": r2,
        "dropped": int(len(data) - n)})
    out = out.sort_values("std_effect", ascending=False, kind="stable").reset_index(drop=True)
    return out


