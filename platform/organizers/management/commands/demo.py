"""``./dev demo``: migrate, seed a demo challenge with a scored sample, run web + worker."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from accounts.services import email_verification_token, verify_email
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from competitions.demo_data import DEMO_PAGES, make_demo_inputs, make_restored_zip
from competitions.models import Challenge
from competitions.permissions import current_terms_version
from competitions.services import create_challenge, create_phase, load_input_set, register, save_page
from leaderboard.services import compute_rank_stability
from scoring.profile import PRESETS
from scoring.testweights import default_test_weights_dir, ensure_test_weights, shared_niqe_params
from submissions import pipeline, services
from teams.services import create_team

DEMO_PASSWORD = "demo-password-2025"  # noqa: S105 - printed on screen for the local demo


class Command(BaseCommand):
    help = "Run the demo: seeded challenge, web server and a real Celery worker on the embedded default."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--seed-only", action="store_true", help="seed and exit (no servers)")

    def handle(self, port, seed_only, **options):
        call_command("migrate", interactive=False, verbosity=0)
        if not settings.FR_WEIGHTS_DIR_CONFIGURED:
            # No official weights configured: share the deterministic test weights the test suite
            # uses (generated once per machine), for this process and the worker alike (serve passes it on).
            settings.FR_WEIGHTS_DIR = str(default_test_weights_dir())
        weights = Path(settings.FR_WEIGHTS_DIR)
        self.stdout.write(f"model weights: {weights}")
        ensure_test_weights(weights, niqe_params=shared_niqe_params())
        if not Challenge.objects.filter(slug="ntire2025-demo").exists():
            self.seed()
        if seed_only:
            return
        self.serve(port)

    def seed(self):
        User = get_user_model()  # noqa: N806
        organizer = User.objects.create_superuser("organizer", "organizer@localhost", DEMO_PASSWORD)
        participant = User.objects.create_user("demo", "demo@localhost", DEMO_PASSWORD)
        challenge = create_challenge(
            slug="ntire2025-demo", title="NTIRE 2025 Real-World Face Restoration (demo)",
            description="Restore real-world degraded faces; keep the identity (AdaFace) and maximise perceptual "
                        "quality (NIQE, CLIP-IQA, MANIQA, MUSIQ, Q-Align, FID).",
            organizers=[organizer],
        )
        dev = create_phase(challenge=challenge, slug="development", name="Development", kind="development",
                           scoring_profile="ntire2025-dev", order=1, shown_metrics=["clipiqa", "musiq"])
        test = create_phase(challenge=challenge, slug="test", name="Test", kind="test",
                            scoring_profile="ntire2025-no-qalign", order=2, visibility="hidden",
                            opens_at=timezone.now() + timedelta(days=30))
        for kind, body in DEMO_PAGES.items():
            save_page(challenge=challenge, kind=kind, body=body)
        inputs = Path(settings.VAR_DIR) / "demo-inputs"
        csv_path = make_demo_inputs(inputs)
        for phase in (dev, test):
            load_input_set(phase, inputs, csv_path)
        self.stdout.write(f"seeded {challenge.title}: phases {dev.slug}, {test.slug}")
        baseline = create_team(challenge=challenge, name="Unsharp-mask baseline", user=organizer)
        baseline.is_baseline = True
        baseline.save(update_fields=["is_baseline"])
        zip_path = make_restored_zip(inputs, Path(settings.VAR_DIR) / "demo-baseline.zip")
        with open(zip_path, "rb") as handle:
            upload = File(handle, name="baseline.zip")
            submission = services.create_submission(phase=dev, team=baseline, user=organizer, upload=upload,
                                                    enqueue=False)
        self.stdout.write("scoring the sample submission (loads the models once) ...")
        state = pipeline.run_submission(submission.pk)
        self.stdout.write(f"sample submission {submission.pk}: {state}")
        # A second entry (the inputs as they are), so the board's Rank stability tab compares two teams.
        # Its own user (no password): the "demo" login keeps a fresh participant's view, without a team.
        other = User.objects.create_user("demo-as-is", "demo-as-is@localhost")
        for user, name in ((participant, "Demo Participant"), (other, "Demo As-Is")):
            verify_email(email_verification_token(user))  # as if they had followed the emailed link
            register(user=user, challenge=challenge, terms_version=current_terms_version(challenge),
                     full_name=name, affiliation="Demo University")
        as_is = create_team(challenge=challenge, name="Inputs as they are", user=other)
        zip_path = make_restored_zip(inputs, Path(settings.VAR_DIR) / "demo-as-is.zip", sharpen=False)
        with open(zip_path, "rb") as handle:
            second = services.create_submission(phase=dev, team=as_is, user=other,
                                                upload=File(handle, name="as-is.zip"), enqueue=False)
        self.stdout.write(f"second submission {second.pk}: {pipeline.run_submission(second.pk)}")
        # The worker would compute it after the board's changes; computed here so the tab shows it at once.
        self.stdout.write(f"rank stability of {dev.slug}: {compute_rank_stability(dev.pk)}")
        self.stdout.write(f"logins: organizer / {DEMO_PASSWORD}   demo / {DEMO_PASSWORD}  (user {participant})")

    def serve(self, port):
        root = Path(settings.BASE_DIR)
        env = {**os.environ, "FR_WEIGHTS_DIR": str(settings.FR_WEIGHTS_DIR),
               "PYTHONPATH": f"{root}{os.pathsep}{root / 'platform'}"}
        # Sign-up verifies the address, as in production; the console backend prints the link here.
        env.setdefault("FR_EMAIL_VERIFICATION", "1")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "frplatform", "worker", "-B", "-Q", "default,scoring",
             "-c", "1", "--loglevel", "INFO", "-s", str(Path(settings.VAR_DIR) / "celerybeat-schedule")],
            cwd=root / "platform", env=env,
        )
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=root, env=env,
        )
        self.stdout.write("emails (sign-up verification links, password resets) are printed on this console\n")
        self.stdout.write(f"profiles: {', '.join(PRESETS)}\n"
                          f"NTIRE 2026 edition in two clicks: http://127.0.0.1:{port}/organize/c/ntire2025-demo/"
                          " -> 'New edition' -> 'Create the new edition'\n")
        self.stdout.write(self.style.SUCCESS(
            f"\nDemo running at http://127.0.0.1:{port}/c/ntire2025-demo/  (Ctrl-C stops web and worker)\n"))
        signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` stops the web server and worker too
        try:
            while worker.poll() is None and web.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for process in (web, worker):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in (web, worker):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
