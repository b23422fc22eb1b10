"""Score a phase's submissions again, e.g. after new weights (deploy/README.md, runbook).

    python deploy/rescore.py CHALLENGE PHASE [--states scored,failed] [--dry-run]

Each chosen submission loses its stored result, goes back to "submitted" through
``submissions.transitions`` (logged on its page, attempts reset) and is queued for the
scoring workers again. Rejected archives stay rejected: new weights do not change the
archive check. Runs in any platform container: ``docker compose exec web python
/app/deploy/rescore.py ntire2025 test``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATES = ("scored", "failed")


def rescore(challenge: str, phase: str, states: tuple[str, ...] = DEFAULT_STATES, *, dry_run: bool = False,
            message: str = "Queued again by the organizers to be re-scored (new weights).") -> list[int]:
    """Requeue the phase's submissions in ``states``; returns their ids (all of them on a dry run)."""
    from django.db import transaction

    from submissions import services, transitions
    from submissions.models import Submission, SubmissionResult

    allowed = {Submission.State.SCORED, Submission.State.FAILED}
    unknown = set(states) - allowed
    if unknown:
        raise ValueError(f"only scored or failed submissions can be re-scored, not {sorted(unknown)}")
    chosen = list(
        Submission.objects.filter(phase__challenge__slug=challenge, phase__slug=phase, state__in=states)
        .order_by("created_at", "pk").values_list("pk", "state")
    )
    if dry_run:
        return [pk for pk, _state in chosen]
    queued: list[int] = []
    for pk, state in chosen:
        with transaction.atomic():
            # A result row would make the new run's result a duplicate: it goes with the state change.
            if not transitions.transition(pk, Submission.State.SUBMITTED, message, sources=(state,), attempts=0):
                continue  # changed meanwhile (cancelled, already requeued): leave it
            SubmissionResult.objects.filter(submission_id=pk).delete()
        services.enqueue_scoring(pk)
        queued.append(pk)
    return queued


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rescore.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("challenge", help="the challenge's slug")
    parser.add_argument("phase", help="the phase's slug")
    parser.add_argument("--states", default=",".join(DEFAULT_STATES),
                        help="comma-separated states to re-score (default: scored,failed)")
    parser.add_argument("--dry-run", action="store_true", help="only list the submissions")
    args = parser.parse_args(argv)

    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "frplatform.settings")
    import django

    django.setup()
    from competitions.models import Phase

    if not Phase.objects.filter(challenge__slug=args.challenge, slug=args.phase).exists():
        print(f"error: no phase {args.challenge}/{args.phase}", file=sys.stderr)
        return 1
    states = tuple(s.strip() for s in args.states.split(",") if s.strip())
    try:
        ids = rescore(args.challenge, args.phase, states, dry_run=args.dry_run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "would queue" if args.dry_run else "queued"
    print(f"{verb} {len(ids)} submission(s) of {args.challenge}/{args.phase} again: {ids}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
