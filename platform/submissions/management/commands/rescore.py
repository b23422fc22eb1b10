"""Score a phase's submissions again, e.g. after new weights (deploy/README.md, runbook):

    python manage.py rescore CHALLENGE PHASE [--states scored,failed] [--dry-run]

Each chosen submission goes through submissions.services.rerun_submission, as the organizer pages' re-runs do.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from competitions.models import Phase
from submissions.services import RERUNNABLE_STATES, rerun_phase


class Command(BaseCommand):
    help = "Queue a phase's scored and failed submissions to be scored again (after new weights, say)."

    def add_arguments(self, parser):
        parser.add_argument("challenge", help="the challenge's slug")
        parser.add_argument("phase", help="the phase's slug")
        parser.add_argument("--states", default=",".join(RERUNNABLE_STATES),
                            help=f"comma-separated states to re-score, among {','.join(RERUNNABLE_STATES)}")
        parser.add_argument("--dry-run", action="store_true", help="only list the submissions")

    def handle(self, *, challenge: str, phase: str, states: str, dry_run: bool, **_options):
        found = Phase.objects.filter(challenge__slug=challenge, slug=phase).first()
        if found is None:
            raise CommandError(f"no phase {challenge}/{phase}")
        chosen = tuple(s.strip() for s in states.split(",") if s.strip())
        try:
            ids = rerun_phase(found, "the organizers", states=chosen, dry_run=dry_run,
                              message="Queued again by the organizers to be re-scored (new weights).")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        verb = "would queue" if dry_run else "queued"
        self.stdout.write(f"{verb} {len(ids)} submission(s) of {challenge}/{phase} again: {ids}")
