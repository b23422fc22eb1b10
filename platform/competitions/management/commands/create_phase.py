from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from competitions.models import Challenge, Phase
from competitions.services import create_challenge, create_phase, load_input_set
from scoring.inputs import InputSetError


class Command(BaseCommand):
    help = "Create a challenge (if new) and a phase, and load the phase's input set."

    def add_arguments(self, parser):
        parser.add_argument("--challenge", required=True, help="challenge slug")
        parser.add_argument("--title", help="challenge title (for a new challenge)")
        parser.add_argument("--phase", required=True, help="phase slug")
        parser.add_argument("--name", help="phase name")
        parser.add_argument("--kind", default="development", choices=[k for k, _ in Phase.Kind.choices])
        parser.add_argument("--profile", default="ntire2025-no-qalign")
        parser.add_argument("--visibility", default="public", choices=[v for v, _ in Phase.Visibility.choices])
        parser.add_argument("--max-per-day", type=int, default=10)
        parser.add_argument("--max-total", type=int, default=100)
        parser.add_argument("--max-running", type=int, default=2)
        parser.add_argument("--inputs", help="folder of <Dataset>/<stem>.png")
        parser.add_argument("--landmarks", help="landmarks CSV (val_face.csv layout)")

    def handle(self, **o):
        challenge = Challenge.objects.filter(slug=o["challenge"]).first() or create_challenge(
            slug=o["challenge"], title=o["title"] or o["challenge"])
        if Phase.objects.filter(challenge=challenge, slug=o["phase"]).exists():
            raise CommandError(f"phase {o['phase']} exists already in {challenge.slug}")
        try:
            phase = create_phase(challenge=challenge, slug=o["phase"], name=o["name"] or o["phase"],
                                 scoring_profile=o["profile"], kind=o["kind"], visibility=o["visibility"],
                                 max_per_day=o["max_per_day"], max_total=o["max_total"],
                                 max_running=o["max_running"])
        except KeyError as exc:
            raise CommandError(str(exc)) from None
        if o["inputs"]:
            try:
                count = load_input_set(phase, Path(o["inputs"]), Path(o["landmarks"]))
            except InputSetError as exc:
                phase.delete()
                raise CommandError(str(exc)) from None
            self.stdout.write(f"loaded {count} input images")
        self.stdout.write(f"phase id {phase.pk}: {challenge.slug}/{phase.slug}")
