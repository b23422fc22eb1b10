"""``manage.py challenge export SLUG OUT.zip``; ``manage.py challenge import BUNDLE.zip --slug NEW --start DATE``."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from competitions.models import Challenge
from organizers import bundles, services


def profile_choices(values: list[str]) -> dict[str, str]:
    """``--profile NAME`` (every phase) or ``--profile PHASE=NAME``."""
    chosen: dict[str, str] = {}
    for value in values:
        phase, _, name = value.rpartition("=")
        chosen[phase or "*"] = name
    return chosen


class Command(BaseCommand):
    help = "Export a challenge as a bundle (zip), or create a challenge from one (docs/bundles.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="write SLUG's bundle to OUT.zip")
        export.add_argument("slug")
        export.add_argument("out")
        load = sub.add_parser("import", help="create a challenge from BUNDLE.zip")
        load.add_argument("bundle")
        load.add_argument("--slug", required=True, help="the new challenge's slug")
        load.add_argument("--start", required=True, help="when its first phase opens: 2026-01-15 or an ISO time")
        load.add_argument("--title", default="", help="its title (default: the bundle's)")
        load.add_argument("--profile", action="append", default=[], metavar="[PHASE=]NAME",
                          help="score with this preset instead of the bundle's (repeatable)")
        load.add_argument("--organizer", help="username who organizes it (default: the first superuser)")
        load.add_argument("--no-score", action="store_true", help="do not queue the baselines for scoring")

    def handle(self, action: str, **options) -> None:
        if action == "export":
            self.export(options["slug"], Path(options["out"]))
        else:
            self.load(options)

    def export(self, slug: str, out: Path) -> None:
        challenge = Challenge.objects.filter(slug=slug).first()
        if challenge is None:
            raise CommandError(f"no challenge {slug!r}")
        with open(out, "wb") as handle:
            manifest = bundles.export_bundle(challenge, handle)
        images = sum(len(d["images"]) for p in manifest["phases"] for d in p["datasets"])
        baselines = sum(len(p["baselines"]) for p in manifest["phases"])
        self.stdout.write(f"exported {slug}: {len(manifest['phases'])} phase(s), {images} input image(s),"
                          f" {baselines} baseline(s), start {manifest['start']} -> {out} ({out.stat().st_size}"
                          " bytes)")

    def load(self, options: dict) -> None:
        users = get_user_model().objects
        user = (users.filter(username=options["organizer"]).first() if options["organizer"]
                else users.filter(is_superuser=True).order_by("id").first())
        if user is None:
            raise CommandError("no organizer: pass --organizer USERNAME (or create a superuser)")
        try:
            start = bundles.parse_start(options["start"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            done = services.import_bundle(Path(options["bundle"]), slug=options["slug"], start=start, user=user,
                                          title=options["title"], profiles=profile_choices(options["profile"]),
                                          enqueue=not options["no_score"])
        except bundles.BundleInvalid as exc:
            raise CommandError(str(exc)) from None
        for phase in done.challenge.phases.all():
            opens = f"{phase.opens_at:%Y-%m-%d %H:%M}"
            self.stdout.write(f"  phase {phase.slug}: profile {phase.scoring_profile}, opens {opens} UTC,"
                              f" thresholds {phase.profile_snapshot['identity_thresholds']}")
        self.stdout.write(f"imported {done.challenge.slug} ({done.challenge.title}): {done.phases} phase(s),"
                          f" {done.images} input image(s) ({done.files_stored} file(s) stored,"
                          f" {done.files_reused} already in storage), {len(done.baselines)} baseline(s)"
                          f"{' queued for scoring' if done.baselines and not options['no_score'] else ''},"
                          f" organizer {user.username}")
