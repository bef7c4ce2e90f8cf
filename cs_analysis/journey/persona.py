"""What the data say about a journey's persona: survey themes, voices, onboarding path."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cs_analysis.errors import check_int
from cs_analysis.journey.maps import Persona, load_map
from cs_analysis.results import Result
from cs_analysis.time import resolve_as_of


# ======================================================================================
# Persona evidence
# ======================================================================================
@dataclass(frozen=True)
class PersonaEvidence(Result):
    """Result of :func:`persona_evidence`.

    Attributes
    ----------
    persona : Persona
    themes : pandas.DataFrame
        :func:`cs_analysis.surveys.themes` summary of the comments of respondents in the
        persona's role at accounts of its segment.
    voices : pandas.DataFrame
        :func:`cs_analysis.surveys.curated_voices` of the persona's segment, role and
        domain (newest first).
    onboarding : pandas.DataFrame
        :func:`cs_analysis.onboarding.ttv_summary` of every onboarding stage in the
        persona's segment: the typical onboarding path (median days, share within target).
    accounts : int
        Accounts in the persona's segment.
    """

    persona: Persona
    themes: pd.DataFrame
    voices: pd.DataFrame
    onboarding: pd.DataFrame
    accounts: int

    title = "What the data say about the persona"

    def summary(self) -> pd.DataFrame:
        """The persona's typical onboarding path (median days, share within target)."""
        cols = ["stage_label", "accounts", "reached", "median_days", "share_within_target"]
        return self.onboarding[[c for c in cols if c in self.onboarding.columns]]


def persona_evidence(ws, persona, *, as_of=None, voices: int = 8, criteria=None
                     ) -> PersonaEvidence:
    """What the data say about a persona: survey themes, curated voices, onboarding path.

    Parameters
    ----------
    ws : Workspace
    persona : Persona, JourneyMap or what :func:`load_map` accepts
    as_of : date or str, optional
    voices : int
        At most this many curated comments (newest).
    criteria : optional
        Onboarding criteria (:func:`cs_analysis.onboarding.load_criteria`; default file).

    Returns
    -------
    PersonaEvidence
    """
    from cs_analysis import onboarding, surveys

    if not isinstance(persona, Persona):
        persona = load_map(persona).persona
    as_of = resolve_as_of(ws, as_of)
    voices = check_int("voices", voices, minimum=0)
    scoped = ws.where(segment=list(persona.segment)) if persona.segment else ws
    n = int(scoped.table("accounts").count().to_pandas())
    themes = pd.DataFrame()
    voice = pd.DataFrame()
    if ws.has("survey_responses", "comment"):
        resp = surveys.responses(scoped, as_of=as_of, roles=[persona.role], comments_only=True)
        themes = surveys.themes(resp, by=None, quotes=0).summary
        voice = surveys.curated_voices(ws, segment=list(persona.segment) or None,
                                       roles=[persona.role],
                                       domain=persona.domain if ws.has("stakeholders", "domain")
                                       else None, as_of=as_of, limit=voices)
    path = pd.DataFrame()
    if ws.has("onboarding_milestones"):
        crit = onboarding.load_criteria(criteria)
        path = pd.concat([onboarding.ttv_summary(scoped, crit, by=None, stage=s.name,
                                                 as_of=as_of).assign(stage=s.name,
                                                                     stage_label=s.label)
                          for s in crit.stages], ignore_index=True)
    notes = (f"{persona.name}: {n:,} accounts in the segment"
             f"{' ' + ', '.join(persona.segment) if persona.segment else ''}; "
             f"{len(themes)} survey themes, {len(voice)} curated voices",)
    return PersonaEvidence(persona, themes, voice, path, n, notes=notes)


