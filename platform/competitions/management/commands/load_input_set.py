from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from competitions.models import Phase
from competitions.services import load_input_set
from scoring.inputs import InputSetError


class Command(BaseCommand):
    help = "Load a phase's input set from a folder of <Dataset>/<stem>.png and a landmarks CSV."

    def add_arguments(self, parser):
        parser.add_argument("challenge")
        parser.add_argument("phase")
        parser.add_argument("folder")
        parser.add_argument("landmarks_csv")

    def handle(self, challenge, phase, folder, landmarks_csv, **options):
        try:
            target = Phase.objects.get(challenge__slug=challenge, slug=phase)
        except Phase.DoesNotExist:
            raise CommandError(f"no phase {challenge}/{phase}") from None
        try:
            count = load_input_set(target, Path(folder), Path(landmarks_csv))
        except InputSetError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"loaded {count} input images into {target}")
