"""Redaction for sharing outside the CS team: people masked, accounts pseudonymised.

- :func:`redact` -- a copy of a frame (an export, a dashboard table, a chart's data) with
  person names, e-mail addresses and phone numbers masked and account names replaced by
  stable aliases;
- :class:`Redactor` -- the same for one workspace, reusable (:func:`redactor` keeps one per
  workspace), with :meth:`Redactor.text` for free text (titles, captions, notes);
- :func:`redact_view` -- a dashboard view with its table, CSV, chart data and texts
  redacted: what ``cs-analysis serve --redact`` applies in every dashboard kernel
  (the server sets ``CS_ANALYSIS_REDACT=1``; :func:`enabled`).

What is masked
--------------
- Columns of people (``name``, ``respondent_name``, ``contact``, ``csm_owner``, ``owner``,
  ``email``, ``phone``, ... see :data:`PERSON_COLUMNS`): every value becomes ``[name]``,
  ``[email]`` or ``[phone]``.
- Account names (columns in :data:`ACCOUNT_COLUMNS`, and the workspace's account names
  wherever they appear in text) become ``Account XXXXXXXX``.
- In every other text column and in free text: e-mail addresses (``[email]``), phone
  numbers (``[phone]``: 03-1234-5678, 090-1234-5678, +81 90 1234 5678, (415) 555-0100,
  0312345678), names followed by a Japanese honorific (山田 太郎様 → ``[name]様``;
  様, さん, 氏, 殿), names after an English title (Mr., Ms., Mrs., Dr., Prof.) and every
  person name the workspace knows (``stakeholders.name``) become ``[name]``.
- Numbers, dates and other non-text columns are never changed; ids are kept (they name
  no one and let a reader join tables).

Limits: a person's name written in free text without a title or honorific and not in
the workspace's stakeholders is not recognised (there is no name dictionary).

Aliases
-------
An alias is a keyed hash (HMAC-SHA256) of the account id with a secret of the
workspace: the same account gets the same alias in every dashboard, every kernel and
every export, and the alias cannot be turned back into the account without the secret.
The secret is ``$CS_ANALYSIS_REDACT_KEY`` if set, else a random key created once in a
file beside the workspace (``<workspace>.redact-key``, readable by its owner only; for a
workspace that is not a file, under the cache folder). Chose a keyed hash over a stored
mapping: nothing to keep in sync when accounts are added (a new account gets its alias
without a write), and deleting the key file re-keys every alias at once. An account
name without an id in its row is aliased through the workspace's name → id lookup, or
(unknown name) hashed itself.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ACCOUNT_COLUMNS", "PERSON_COLUMNS", "REDACT_ENV", "Redactor", "enabled",
           "redact", "redact_chart", "redact_view", "redactor"]

#: Environment variable that turns redaction on in dashboard kernels (``"1"``).
REDACT_ENV = "CS_ANALYSIS_REDACT"
#: Environment variable holding the alias secret (optional).
KEY_ENV = "CS_ANALYSIS_REDACT_KEY"
#: Columns holding account names: replaced by aliases.
ACCOUNT_COLUMNS = frozenset({"account_name", "account", "customer", "customer_name",
                             "company", "company_name"})
#: Columns holding people (names, contacts): every value masked.
PERSON_COLUMNS = frozenset({"name", "person", "person_name", "full_name", "respondent",
                            "respondent_name", "contact", "contact_name", "stakeholder",
                            "stakeholder_name", "champion", "sponsor", "csm", "csm_owner",
                            "csm_name", "owner", "email", "e_mail", "mail", "phone",
                            "telephone", "tel", "mobile"})

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONES = [
    # international: +81 90 1234 5678, +1 (415) 555-0100, +44 20 7946 0958
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,5}\)?){2,5}(?![\d])"),
    # Japanese and other domestic numbers with a trunk 0: 03-1234-5678, (03) 1234 5678
    re.compile(r"(?<![\w\-/.])\(?0\d{1,4}\)?[ .\-]\d{1,4}[ .\-]\d{3,4}(?![\w\-/])"),
    # North American: (415) 555-0100, 415-555-0100, 415.555.0100
    re.compile(r"(?<![\w\-/.])(?:\(\d{3}\) ?|\d{3}[.\-])\d{3}[.\-]\d{4}(?![\w\-/])"),
    # Japanese numbers written without separators: 0312345678, 09012345678
    re.compile(r"(?<![\w\-/.])0\d{9,10}(?![\w\-/.])"),
]
_JA_NAME = re.compile(r"[\u4e00-\u9fff\u3005\u30a1-\u30f6\u30fc]{1,8}"
                      r"(?:[ \u3000][\u4e00-\u9fff\u3005\u30a1-\u30f6\u30fc]{1,8})?"
                      r"(?=様|さん|氏|殿)")
#: Words before an honorific that are not names (お客様, 担当者様, 皆様).
_JA_NOT_NAMES = frozenset({"客", "皆", "担当者", "担当", "利用者", "管理者", "関係者", "各位",
                           "ユーザー", "ご担当者", "責任者", "社長", "部長", "課長", "先方",
                           "奥", "神", "王"})
_EN_TITLED = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+[A-Z][\w'\-]+"
                        r"(?:\s+[A-Z][\w'\-]+)?")


def enabled() -> bool:
    """Whether this process redacts what dashboards show (``$CS_ANALYSIS_REDACT``)."""
    return os.environ.get(REDACT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _key_path(ws) -> Path:
    source = str(getattr(ws, "source", "") or "")
    path = Path(source)
    if source and path.is_file():
        return path.with_name(path.name + ".redact-key")
    from cs_analysis.serve import cache_dir

    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "redact-keys" / digest


def _workspace_secret(ws) -> bytes:
    """The alias secret: ``$CS_ANALYSIS_REDACT_KEY``, else the key file (created once)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    path = _key_path(ws)
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # atomic create-if-missing: two kernels agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


class Redactor:
    """Masks people and pseudonymises accounts, for one workspace (or none).

    Parameters
    ----------
    ws : Workspace, optional
        Gives the alias secret (see the module notes), the account names to find in free
        text (name → id) and the stakeholders' names to mask. Without one, ``secret``
        must be given and only patterns are masked.
    secret : str or bytes, optional
        The alias key (default: the workspace's).
    """

    def __init__(self, ws=None, *, secret: str | bytes | None = None):
        if secret is None:
            secret = _workspace_secret(ws) if ws is not None else os.environ.get(KEY_ENV)
        if secret is None:
            from cs_analysis.errors import ArgumentError

            raise ArgumentError("redact needs a workspace (for its alias key) or secret=")
        self._key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        self._ids: dict[str, str] = {}  # account name -> account id
        people: list[str] = []
        if ws is not None:
            if ws.has("accounts") and "account_name" in ws.accounts.columns:
                acc = ws.accounts.select("account_id", "account_name").to_pandas()
                acc = acc.dropna()
                self._ids = dict(zip(acc.account_name.astype(str),
                                     acc.account_id.astype(str), strict=True))
            if ws.has("stakeholders") and "name" in ws.table("stakeholders").columns:
                names = ws.table("stakeholders").select("name").distinct().to_pandas()
                people = [str(n) for n in names["name"].dropna()]
        self._accounts_re = _alternation(self._ids)
        self._people_re = _alternation(people)

    def alias(self, account_id: Any) -> str:
        """The account's alias: ``Account`` and 8 characters of a keyed hash of its id."""
        digest = hmac.new(self._key, str(account_id).encode("utf-8"), hashlib.sha256).digest()
        return "Account " + base64.b32encode(digest[:5]).decode("ascii")

    def account(self, name: Any) -> Any:
        """The alias of an account known by its name (null stays null)."""
        if not isinstance(name, str):
            return name
        return self.alias(self._ids.get(name, "name:" + name))

    def text(self, value: Any) -> Any:
        """Free text with e-mails, phones, names and account names masked (non-text as is)."""
        if not isinstance(value, str) or not value:
            return value
        out = _EMAIL.sub("[email]", value)
        for pattern in _PHONES:
            out = pattern.sub(_phone, out)
        if self._accounts_re is not None:
            out = self._accounts_re.sub(lambda m: self.account(m.group(0)), out)
        if self._people_re is not None:
            out = self._people_re.sub("[name]", out)
        out = _JA_NAME.sub(lambda m: m.group(0) if m.group(0) in _JA_NOT_NAMES
                           else "[name]", out)
        return _EN_TITLED.sub("[name]", out)

    def frame(self, frame: pd.DataFrame, *, account_column: str = "account_id",
              person_columns: Iterable[str] = (), account_columns: Iterable[str] = (),
              keep: Iterable[str] = ()) -> pd.DataFrame:
        """A redacted copy of ``frame`` (see :func:`redact`)."""
        out = frame.copy()
        person = PERSON_COLUMNS | set(person_columns)
        accounts = ACCOUNT_COLUMNS | set(account_columns)
        keep = set(keep)
        ids = out[account_column] if account_column in out.columns else None
        for col in out.columns:
            if col in keep or col == account_column:
                continue
            s = out[col]
            if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
                    or isinstance(s.dtype, pd.CategoricalDtype)):
                continue  # numbers, dates, booleans: never changed
            s = s.astype(object)
            name = str(col).lower()
            if name in accounts:
                if ids is not None:
                    out[col] = [self.alias(i) if isinstance(v, str) and pd.notna(i)
                                else self.account(v) for v, i in zip(s, ids, strict=True)]
                else:
                    out[col] = s.map(self.account)
            elif name in person or name.endswith(("_email", "_phone", "_contact")):
                mask = ("[email]" if "mail" in name else
                        "[phone]" if any(p in name for p in ("phone", "tel", "mobile"))
                        else "[name]")
                out[col] = s.map(lambda v, m=mask: m if isinstance(v, str) and v else v)
            else:
                out[col] = s.map(self.text)
        return out


def _phone(match: re.Match) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return "[phone]" if 9 <= digits <= 15 else match.group(0)


def _alternation(words: Iterable[str]) -> re.Pattern | None:
    """One pattern matching any of ``words`` (3+ characters) as a whole word, longest first."""
    words = sorted({w.strip() for w in words if isinstance(w, str) and len(w.strip()) >= 3},
                   key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)")


_REDACTORS: dict[str, Redactor] = {}


def redactor(ws) -> Redactor:
    """The :class:`Redactor` of a workspace, made once per workspace source and process."""
    key = str(getattr(ws, "source", id(ws)))
    if key not in _REDACTORS:
        _REDACTORS[key] = Redactor(ws)
    return _REDACTORS[key]


def redact(frame: pd.DataFrame, ws=None, *, secret: str | bytes | None = None,
           account_column: str = "account_id", person_columns: Iterable[str] = (),
           account_columns: Iterable[str] = (), keep: Iterable[str] = ()) -> pd.DataFrame:
    """A copy of ``frame`` safe to share outside the CS team.

    Person columns masked, account names replaced by aliases, e-mails, phone numbers and
    names masked in every other text column; numbers, dates and ids untouched (module
    notes: what is masked and how aliases are made).

    Parameters
    ----------
    frame : DataFrame
        An export, a dashboard table, a chart's data.
    ws : Workspace, optional
        The workspace the frame comes from: its alias secret, account names and
        stakeholder names. Required unless ``secret`` is given.
    secret : str or bytes, optional
        The alias key instead of the workspace's.
    account_column : str
        Column of account ids, used to alias the account names of the same row.
    person_columns, account_columns : iterable of str
        More columns to treat as people / as account names.
    keep : iterable of str
        Columns left as they are.

    Returns
    -------
    DataFrame
        Same shape, index and column names.

    Examples
    --------
    >>> shared = redact(voices, ws)                                  # doctest: +SKIP
    >>> to_csv(shared, "voices_for_product.csv")                     # doctest: +SKIP
    """
    r = redactor(ws) if ws is not None and secret is None else Redactor(ws, secret=secret)
    return r.frame(frame, account_column=account_column, person_columns=person_columns,
                   account_columns=account_columns, keep=keep)


def redact_chart(chart, r: Redactor):
    """A copy of an Altair chart whose data (every layer and sub-chart) is redacted."""
    if chart is None:
        return None
    try:
        chart = chart.copy(deep=True)
    except Exception:  # noqa: BLE001 - not an Altair chart: shown as it is
        return chart
    stack = [chart]
    while stack:
        c = stack.pop()
        data = getattr(c, "data", None)
        if isinstance(data, pd.DataFrame):
            c.data = r.frame(data)
        for attr in ("layer", "hconcat", "vconcat", "concat"):
            sub = getattr(c, attr, None)
            if isinstance(sub, list):
                stack.extend(sub)
        spec = getattr(c, "spec", None)
        if spec is not None and hasattr(spec, "to_dict"):
            stack.append(spec)
    return chart


def redact_view(view, ws):
    """A dashboard :class:`~cs_analysis.dashboard.base.View` with everything redacted.

    The table (shown and downloaded as CSV), every chart's data, panel titles and
    captions, KPI labels and details, the scope line and notes.
    """
    if getattr(view, "_redacted", False):
        return view
    r = redactor(ws)
    table = view.table
    if isinstance(table, pd.DataFrame):
        table = r.frame(table)
    panels = [dataclasses.replace(p, chart=redact_chart(p.chart, r), title=r.text(p.title),
                                  caption=r.text(p.caption))
              for p in view.panels]
    kpis = [dataclasses.replace(k, label=r.text(k.label), detail=r.text(k.detail),
                                warning=r.text(k.warning)) for k in view.kpis]
    out = dataclasses.replace(view, table=table, panels=panels, kpis=kpis,
                              scope=r.text(view.scope), table_title=r.text(view.table_title),
                              notes=[r.text(n) for n in view.notes])
    out._redacted = True
    return out
