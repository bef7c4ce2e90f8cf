"""Whose voice to weigh: curated comments, weighted feature requests, and exports.

- :func:`curated_voices` -- the comments of the customers CS chose to listen to.
- :func:`request_priorities` -- feature requests weighed by accounts and MRR.
- :func:`to_markdown`, :func:`export` -- Markdown / CSV for the Product team.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from cs_analysis.errors import check_choice, check_int
from cs_analysis.formatting import to_csv
from cs_analysis.retention import mrr_at
from cs_analysis.surveys._base import (
    MISSING,
    SurveyError,
    account_waves,
    as_list,
    check_money,
    check_values,
    normalize_text,
    responses,
)
from cs_analysis.surveys.themes import tag_comments
from cs_analysis.time import day_start, on_or_before, resolve_as_of, to_date
from cs_analysis.workspace import WorkspaceError

__all__ = ["curated_voices", "export", "request_priorities", "to_markdown"]


def curated_voices(ws, accounts: Sequence[str] | None = None,
                   segment: str | Sequence[str] | None = None,
                   roles: Sequence[str] | None = None, min_mrr: float | None = None, *,
                   survey: str | Sequence[str] | None = None, domain: str | None = None,
                   since=None, as_of=None, dictionary="themes.yml",
                   limit: int | None = None) -> pd.DataFrame:
    """The comments of the customers CS has chosen to listen to, newest first.

    CS curates whose voice matters (strategic accounts, key roles) rather than passing on
    every comment. Every filter given must hold (they combine with AND); a filter left at
    None does not filter. Every comment counts here, including a respondent's earlier
    answer in a wave (the one-per-wave rule is for scores, not for voices). Accounts are
    described by their MRR at the as-of date (metrics.md: the sum of ``mrr`` of the
    subscriptions covering that date; 0 for former customers).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    accounts : list of str, optional
        Strategic account ids.
    segment : str or list of str, optional
        Account segments.
    roles : list of str, optional
        ``respondent_role`` values (e.g. executive sponsor, decision maker).
    min_mrr : float, optional
        Only accounts with at least this MRR at the as-of date.
    survey : str or list of str, optional
        Only these surveys.
    domain : {"business", "technical"}, optional
        Only respondents who are known stakeholders of this domain.
    since : date or str, optional
        Only comments on or after this date.
    as_of : date or str, optional
        Only comments on or before it; MRR at it (default the workspace's as-of date).
    dictionary : optional
        Theme dictionary for the ``themes`` column (:func:`load_themes`); None: no themes.
    limit : int, optional
        At most this many comments (the newest).

    Returns
    -------
    pandas.DataFrame
        ``responded_at``, ``account_id``, ``account_name``, ``segment``, ``mrr``,
        ``respondent_name``, ``respondent_role``, ``respondent_title``, ``domain``,
        ``survey``, ``score``, ``category``, ``touchpoint``, ``themes``, ``comment``
        (those present). Export with :func:`export` or :func:`to_markdown`.

    Raises
    ------
    SurveyError
        Unknown account ids, segments or roles (with the known values), a negative
        ``min_mrr``, an unknown ``domain``.
    """
    as_of = resolve_as_of(ws, as_of)
    min_mrr = check_money("min_mrr", min_mrr)
    if limit is not None:
        limit = check_int("limit", limit, minimum=1, error=SurveyError)
    if domain is not None:
        check_choice("domain", domain, ("business", "technical"), error=SurveyError)
    acc = ws.table("accounts")
    where: dict[str, Any] = {}
    if accounts is not None:
        ids = acc.select("account_id").to_pandas()["account_id"]
        where["accounts"] = check_values("accounts", accounts, ids,
                                          "account ids of this workspace (in scope)")
    if segment is not None:
        acc = ws.table("accounts", columns=["segment"])
        segs = acc.select("segment").distinct().to_pandas()["segment"]
        where["segment"] = check_values("segment", segment, segs, "segments")
    scoped = ws.where(**where) if where else ws
    if roles is not None:
        sr = ws.table("survey_responses", columns=["respondent_role"])
        present = sr.select("respondent_role").distinct().to_pandas()["respondent_role"]
        roles = check_values("roles", roles, present, "respondent roles")
    df = responses(scoped, survey, dedup=False, as_of=as_of, since=since, roles=roles,
                   comments_only=True)
    if domain is not None:
        if "domain" not in df.columns:
            raise WorkspaceError("domain= needs stakeholders with a 'domain' column and "
                                 "survey_responses with a 'respondent_id' column")
        df = df[df["domain"] == domain]
    mrr = mrr_at(scoped, as_of)
    df = df.merge(mrr, on="account_id", how="left")
    df["mrr"] = df["mrr"].fillna(0.0).astype(float)
    if min_mrr is not None:
        df = df[df["mrr"] >= min_mrr]
    if dictionary is not None:
        tags = tag_comments(df["comment"].astype("str"), dictionary)
        df = df.assign(themes=[", ".join(t) for t in tags["themes"]])
    df = df.sort_values(["responded_at", "response_id"], ascending=False, kind="stable")
    if limit is not None:
        df = df.head(limit)
    cols = [c for c in ("responded_at", "account_id", "account_name", "segment", "mrr",
                        "respondent_name", "respondent_role", "respondent_title", "domain",
                        "survey", "score", "category", "touchpoint", "themes", "comment")
            if c in df.columns]
    return df[cols].reset_index(drop=True)


# == export ======================================================================================
def _md_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp | dt.datetime):
        value = value.date().isoformat()  # a day is precise enough for a meeting document
    elif isinstance(value, float):
        value = f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else \
            f"{value:,.0f}"
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text.replace("|", "\\|")


#: Columns of :func:`request_priorities` output shown by :func:`to_markdown`.
_REQUEST_MD_COLUMNS = ("rank", "request", "theme", "accounts", "mrr", "requests", "people",
                       "detractor_accounts", "at_risk_accounts", "former_customers",
                       "latest_status", "last_asked", "segments", "top_accounts")


def to_markdown(frame: pd.DataFrame, title: str | None = None,
                max_rows: int | None = None, *, filters: Sequence[str] | None = None,
                as_of=None, currency: str = "") -> str:
    """A frame as Markdown for the Product team: quotes for voices, a table otherwise.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`curated_voices` output (rendered as block quotes with who said it, when
        and the score), :func:`request_priorities` output (a table of the columns a
        roadmap meeting needs; the CSV export has them all), or any other frame (a table
        of every column). ``|`` and line breaks in cells are escaped; times show as days.
    title : str, optional
        A ``##`` heading (default from the frame's kind).
    max_rows : int, optional
        At most this many rows (a closing line says how many were left out).
    filters : list of str, optional
        How the rows were chosen (e.g. ``["segment Enterprise", "roles Executive"]``),
        shown under the title with ``as_of`` and the row count.
    as_of : date or str, optional
        The as-of date of the figures, shown under the title.
    currency : str
        Currency code shown beside MRR in voices (e.g. ``ws.currency``).

    Returns
    -------
    str
    """
    if max_rows is not None:
        max_rows = check_int("max_rows", max_rows, minimum=1, error=SurveyError)
    kind = _kind(frame)
    shown = frame if max_rows is None else frame.head(max_rows)
    lines: list[str] = []
    default_title = {"voices": "Curated customer voices",
                     "requests": "Feature requests, weighted"}.get(kind, "Table")
    lines.append(f"## {title or default_title}")
    as_of = to_date(as_of) if as_of is not None else None
    meta = [*(filters or []), *([f"as of {as_of}"] if as_of else []), f"{len(frame):,} rows"]
    lines += ["", "_" + " · ".join(str(m) for m in meta) + "_", ""]
    if kind == "voices":
        for r in shown.itertuples(index=False):
            row = r._asdict()
            quote = str(row.get("comment", "")).strip().splitlines() or [""]
            lines += ["> " + q.strip() for q in quote]
            who = row.get("respondent_role") or "respondent"
            name = row.get("respondent_name")
            if isinstance(name, str) and name:
                who = f"{who} ({name})"
            acct = row.get("account_name") or row.get("account_id")
            bits = [f"**{_md_cell(acct)}**"]
            details = [str(row[c]) for c in ("segment",) if isinstance(row.get(c), str)]
            if row.get("mrr") is not None and not pd.isna(row.get("mrr")):
                details.append(f"MRR {row['mrr']:,.0f} {currency}".strip())
            if details:
                bits.append("(" + ", ".join(details) + ")")
            score = row.get("score")
            survey = str(row.get("survey", "")).upper()
            cat = row.get("category")
            when = row.get("responded_at")
            tail = []
            if score is not None and not pd.isna(score):
                tail.append(f"{survey} {score:g}" + (f", {cat}" if isinstance(cat, str) else ""))
            if when is not None and not pd.isna(when):
                tail.append(pd.Timestamp(when).date().isoformat())
            if isinstance(row.get("themes"), str) and row["themes"]:
                tail.append("themes: " + row["themes"])
            lines += [">", f"> — {_md_cell(who)}, {' '.join(bits)}"
                      + (" · " + " · ".join(_md_cell(t) for t in tail) if tail else ""), ""]
    else:
        cols = list(shown.columns)
        if kind == "requests":  # the meeting's columns; the CSV export keeps them all
            cols = [c for c in _REQUEST_MD_COLUMNS if c in cols]
            shown = shown[cols]
        lines.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
        lines.append("|" + "|".join("---:" if pd.api.types.is_numeric_dtype(shown[c])
                                    and not pd.api.types.is_bool_dtype(shown[c]) else "---"
                                    for c in cols) + "|")
        for values in shown.itertuples(index=False, name=None):
            lines.append("| " + " | ".join(_md_cell(v) for v in values) + " |")
        lines.append("")
    if len(shown) < len(frame):
        lines.append(f"_… and {len(frame) - len(shown):,} more rows in the CSV export._")
    return "\n".join(lines).rstrip() + "\n"


def _kind(frame: pd.DataFrame) -> str | None:
    """``voices`` (:func:`curated_voices`), ``requests`` (:func:`request_priorities`)."""
    cols = set(frame.columns)
    if {"rank", "request", "accounts", "mrr"} <= cols:
        return "requests"
    if {"comment", "responded_at"} <= cols and ({"account_id", "account_name"} & cols):
        return "voices"
    return None


def export(frame: pd.DataFrame, path, title: str | None = None, *,
           include_names: bool = False) -> Path:
    """Write a frame for the Product team: ``.csv`` (UTF-8 with BOM, Excel-safe) or ``.md``.

    The CSV is formula-safe (:func:`cs_analysis.formatting.to_csv`: a comment starting
    with ``=``, ``+``, ``-`` or ``@`` is written as text, never as a spreadsheet formula),
    and respondents' names are left out unless asked for: an export travels beyond the CS
    team, and the role and title say whose voice it is.

    Parameters
    ----------
    frame : pandas.DataFrame
        E.g. :func:`curated_voices` or :func:`request_priorities` output.
    path : str or Path
        Target file; the suffix picks the format.
    title : str, optional
        Heading of the Markdown file (see :func:`to_markdown`).
    include_names : bool
        Keep the ``respondent_name`` column.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".md"):
        raise SurveyError(f"cannot export to {path.name!r}: use a .csv or .md file name")
    if not include_names:
        frame = frame.drop(columns=[c for c in ("respondent_name", "name") if c in frame])
    if suffix == ".csv":
        to_csv(frame, path)
    else:
        path.write_text(to_markdown(frame, title), encoding="utf-8")
    return path



# == feature requests, weighted ===================================================================
_STATUSES = ("open", "planned", "shipped", "declined")


def _request_key(title: str) -> str:
    return re.sub(r"\s+", " ", normalize_text(title)).strip()


def request_priorities(ws, segments: str | Sequence[str] | None = None,
                       accounts: Sequence[str] | None = None, *, key: str = "title",
                       rank_by: str = "accounts", status: str | Sequence[str] | None = None,
                       since=None, as_of=None, at_risk_rating: int = 2, survey: str = "nps",
                       wave: str = "quarter", limit: int | None = None) -> pd.DataFrame:
    """Feature requests ranked by how many accounts ask and how much MRR they carry.

    The point is to weigh voices, not count them. Requests are grouped by ``key``: the
    title (compared after Unicode NFKC normalization, case folding and collapsing
    spaces, so "Slack notifications" and "slack  notifications" are one request) or the
    ``theme``. Then, per request:

    - **Duplicates across people of one account**: an account weighs once however many
      of its people ask, and however often: ``accounts`` counts distinct accounts and
      ``mrr`` sums each asking account's MRR once (metrics.md: MRR at the as-of date,
      the sum of ``mrr`` of the subscriptions covering it; 0 for former customers).
      ``requests`` (rows) and ``people`` (distinct ``person_id``) show how many asked.
    - **Ranking**: by ``accounts`` then ``mrr`` (``rank_by="accounts"``), or by ``mrr``
      then ``accounts`` (``rank_by="mrr"``), both descending. **Ties**: requests equal on
      both share a rank (the lowest, "1, 2, 2, 4"), and are listed by more detractor
      accounts first, then by title.
    - **Who asks**: ``detractor_accounts`` / ``detractor_mrr``: asking accounts whose
      latest ``survey`` wave before the as-of date made them detractors (their mean
      answer that wave, rounded, is 0-6); ``at_risk_accounts`` / ``at_risk_mrr``: asking
      accounts whose latest CSM rating (``health_inputs.csm_rating`` on or before the
      as-of date) is at most ``at_risk_rating``. Missing tables give NA, not zero.
    - **Status**: counts of request rows per status and the ``latest_status`` (of the
      most recently updated row).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    segments : str or list of str, optional
        Keep requests from accounts in these segments.
    accounts : list of str, optional
        Keep requests from these (strategic) accounts. With ``segments`` too, requests
        from either are kept (the union: e.g. all Enterprise accounts plus five chosen
        Mid-Market ones).
    key : {"title", "theme"}
        What makes two requests the same request.
    rank_by : {"accounts", "mrr"}
        The first ranking criterion.
    status : str or list of str, optional
        Only requests in these statuses (``open``, ``planned``, ``shipped``,
        ``declined``).
    since : date or str, optional
        Only requests created on or after it.
    as_of : date or str, optional
        Only requests created on or before it; MRR, detractors and risk at it.
    at_risk_rating : int
        CSM ratings (1-5) at or below this mark an account at risk.
    survey : str
        The survey whose categories mark detractors.
    wave : {"quarter", "month", "year"}
        The survey wave.
    limit : int, optional
        Only the first ``limit`` rows.

    Returns
    -------
    pandas.DataFrame
        One row per request: ``rank``, ``request`` (the most used title, or the theme),
        ``theme``, ``accounts``, ``mrr``, ``requests``, ``people``,
        ``detractor_accounts``, ``detractor_mrr``, ``at_risk_accounts``, ``at_risk_mrr``,
        ``former_customers``, ``open``, ``planned``, ``shipped``, ``declined``,
        ``latest_status``, ``first_asked``, ``last_asked``, ``segments``, ``sources``,
        ``top_accounts`` (up to three asking accounts by MRR). Export with
        :func:`export` or :func:`to_markdown`.
    """
    check_choice("key", key, ("title", "theme"), error=SurveyError)
    check_choice("rank_by", rank_by, ("accounts", "mrr"), error=SurveyError)
    if (isinstance(at_risk_rating, bool) or not isinstance(at_risk_rating, int | np.integer)
            or not 1 <= at_risk_rating <= 5):
        raise SurveyError(f"at_risk_rating={at_risk_rating!r} must be a whole number "
                          "from 1 to 5 (the CSM rating scale)")
    if limit is not None:
        limit = check_int("limit", limit, minimum=1, error=SurveyError)
    as_of = resolve_as_of(ws, as_of)
    need = ["request_id", "account_id", "title", "created_at"] + (["theme"] if key == "theme"
                                                                  else [])
    statuses = [str(x) for x in as_list(status)]
    if statuses:
        bad = [x for x in statuses if x not in _STATUSES]
        if bad:
            raise SurveyError(f"status={bad[0]!r} is not a request status; expected "
                              f"{', '.join(_STATUSES)}")
        need.append("status")
    fr = ws.table("feature_requests", columns=need)
    tz = ws.timezone
    fr = fr.filter(on_or_before(fr.created_at, as_of, tz))
    if since is not None:
        fr = fr.filter(fr.created_at >= day_start(since, tz))
    if statuses:
        fr = fr.filter(fr.status.isin(statuses))
    acc = ws.table("accounts")
    chosen = []
    if segments is not None:
        segs_present = ws.table("accounts", columns=["segment"]).select(
            "segment").distinct().to_pandas()["segment"]
        segs = check_values("segments", segments, segs_present, "segments")
        chosen.append(acc.segment.isin(segs))
    if accounts is not None:
        ids = check_values("accounts", accounts,
                            acc.select("account_id").to_pandas()["account_id"],
                            "account ids of this workspace (in scope)")
        chosen.append(acc.account_id.isin(ids))
    if chosen:
        pred = chosen[0]
        for c in chosen[1:]:
            pred = pred | c
        fr = fr.filter(fr.account_id.isin(acc.filter(pred).account_id))
    df = fr.to_pandas()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype("str")
    info = _account_context(ws, as_of, at_risk_rating, survey, wave)
    df = df.merge(info, on="account_id", how="left")
    df["mrr"] = df["mrr"].fillna(0.0)
    if key == "title":
        df["_key"] = [_request_key(t) for t in df["title"].astype("str")]
    else:
        df["_key"] = df["theme"].astype("str").where(df["theme"].notna(), MISSING)
    rows = [_request_row(k, g, key) for k, g in df.groupby("_key", sort=True)]
    columns = ["rank", "request", "theme", "accounts", "mrr", "requests", "people",
               "detractor_accounts", "detractor_mrr", "at_risk_accounts", "at_risk_mrr",
               "former_customers", "open", "planned", "shipped", "declined",
               "latest_status", "first_asked", "last_asked", "segments", "sources",
               "top_accounts"]
    out = pd.DataFrame(rows, columns=columns[1:])
    first, second = ("accounts", "mrr") if rank_by == "accounts" else ("mrr", "accounts")
    if not out.empty:
        out = out.sort_values([first, second, "detractor_accounts", "request"],
                              ascending=[False, False, False, True], kind="stable",
                              na_position="last")
        pair = list(zip(out[first], out[second], strict=True))
        out.insert(0, "rank", [1 + sum(1 for q in pair if q > p) for p in pair])
    else:
        out.insert(0, "rank", pd.Series([], dtype="int64"))
    for c in ("detractor_accounts", "at_risk_accounts"):
        out[c] = out[c].astype("Int64")
    out = out.reset_index(drop=True)
    if limit is not None:
        out = out.head(limit)
    return out


def _account_context(ws, as_of: dt.date, at_risk_rating: int, survey: str,
                     wave: str) -> pd.DataFrame:
    """Per scoped account: name, segment, MRR at as_of, detractor and at-risk flags."""
    cols = [c for c in ("account_name", "segment") if ws.has("accounts", c)]
    info = ws.table("accounts").select("account_id", *cols).to_pandas()
    info["account_id"] = info["account_id"].astype("str")
    info = info.merge(mrr_at(ws, as_of), on="account_id", how="left")
    info["mrr"] = info["mrr"].fillna(0.0)
    info["detractor"] = pd.array([pd.NA] * len(info), dtype="boolean")
    if ws.has("survey_responses"):
        sr = ws.table("survey_responses", columns=["survey"])
        present = set(sr.select("survey").distinct().to_pandas()["survey"].dropna())
        if survey in present:
            aw, cats = account_waves(responses(ws, survey, wave=wave, as_of=as_of), survey,
                                      ws.survey_scales)
            latest = aw.sort_values("wave").groupby("account_id").tail(1)
            flag = dict(zip(latest["account_id"], latest["category"] == cats[2], strict=True))
            info["detractor"] = pd.array([flag.get(a, False) for a in info["account_id"]],
                                         dtype="boolean")
    info["at_risk"] = pd.array([pd.NA] * len(info), dtype="boolean")
    if ws.has("health_inputs"):
        hi = ws.table("health_inputs", columns=["account_id", "as_of", "csm_rating"])
        hi = hi.filter(hi.as_of <= as_of)
        w = ibis.window(group_by=hi.account_id, order_by=ibis.desc(hi.as_of))
        hi = hi.mutate(_rn=ibis.row_number().over(w))
        last = hi.filter(hi._rn == 0).select("account_id", "csm_rating").to_pandas()
        rating = dict(zip(last["account_id"].astype("str"), last["csm_rating"], strict=True))
        info["at_risk"] = pd.array([(rating[a] <= at_risk_rating) if a in rating else False
                                    for a in info["account_id"]], dtype="boolean")
    return info


def _request_row(k: str, g: pd.DataFrame, key: str) -> dict:
    per_acc = g.drop_duplicates("account_id")
    if key == "title":
        titles = g["title"].astype("str").value_counts()
        request = sorted(titles[titles == titles.max()].index)[0]
    else:
        request = k
    theme = None
    if "theme" in g.columns and g["theme"].notna().any():
        counts = g["theme"].dropna().astype("str").value_counts()
        theme = sorted(counts[counts == counts.max()].index)[0]
    det = per_acc["detractor"]
    risk = per_acc["at_risk"]

    def flagged(flags):
        if flags.isna().all():
            return pd.NA, float("nan")
        m = flags.fillna(False).to_numpy(dtype=bool)
        return int(m.sum()), float(per_acc["mrr"].to_numpy()[m].sum())

    det_n, det_mrr = flagged(det)
    risk_n, risk_mrr = flagged(risk)
    status_counts = (g["status"].value_counts() if "status" in g.columns
                     else pd.Series(dtype="int64"))
    latest = None
    if "status" in g.columns:
        when = g["status_at"] if "status_at" in g.columns else g["created_at"]
        when = when.fillna(g["created_at"])
        latest = g.loc[when.idxmax(), "status"] if len(g) else None
    segs = (per_acc["segment"].astype("str").value_counts().sort_index()
            if "segment" in per_acc.columns else pd.Series(dtype="int64"))
    names = per_acc.sort_values(["mrr", "account_id"], ascending=[False, True])
    label = names["account_name"] if "account_name" in names.columns else names["account_id"]
    label = label.astype("str").where(label.notna(), names["account_id"])
    return {
        "request": request, "theme": theme, "accounts": int(len(per_acc)),
        "mrr": float(per_acc["mrr"].sum()), "requests": int(len(g)),
        "people": int(g["person_id"].nunique()) if "person_id" in g.columns else pd.NA,
        "detractor_accounts": det_n, "detractor_mrr": det_mrr,
        "at_risk_accounts": risk_n, "at_risk_mrr": risk_mrr,
        "former_customers": int((per_acc["mrr"] <= 0).sum()),
        **{s: int(status_counts.get(s, 0)) for s in _STATUSES},
        "latest_status": latest,
        "first_asked": g["created_at"].min(), "last_asked": g["created_at"].max(),
        "segments": " · ".join(f"{s} {n}" for s, n in segs.items()),
        "sources": ", ".join(sorted(g["source"].dropna().astype("str").unique()))
        if "source" in g.columns else "",
        "top_accounts": ", ".join(label.head(3)),
    }
