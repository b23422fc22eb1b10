"""The challenge list of the JSON API (a router of frplatform.api)."""

from __future__ import annotations

from ninja import Router, Schema

from competitions.models import Challenge

router = Router(tags=["challenges"])


class PhaseOut(Schema):
    id: int
    slug: str
    name: str
    kind: str
    open: bool
    opens_at: str
    closes_at: str | None
    scoring_profile: str


class ChallengeOut(Schema):
    slug: str
    title: str
    phases: list[PhaseOut]


class ChallengesOut(Schema):
    challenges: list[ChallengeOut]


@router.get("/challenges", response={200: ChallengesOut}, url_name="api-challenges",
            summary="Challenges and their phases, with the phase ids the other calls take. No token needed.")
def challenges(request):
    return {"challenges": [
        {"slug": c.slug, "title": c.title, "phases": [
            {"id": p.pk, "slug": p.slug, "name": p.name, "kind": p.kind, "open": p.is_open(),
             "opens_at": p.opens_at.isoformat(), "closes_at": p.closes_at.isoformat() if p.closes_at else None,
             "scoring_profile": p.scoring_profile} for p in c.phases.all()]}
        for c in Challenge.objects.prefetch_related("phases")]}
