"""Members of teams that existed before registration did keep taking part after the upgrade.

Every membership of that time becomes an approved registration of its challenge (no terms accepted: the
challenges had no Terms page, version 0; a Terms page added later asks them like everyone else), and the
member's current address counts as verified, so that turning FR_EMAIL_VERIFICATION on does not stop a running
challenge's teams. Accounts without a team register and verify as new ones do.
"""

from django.db import migrations
from django.utils import timezone


def forwards(apps, schema_editor):
    Membership = apps.get_model("teams", "Membership")  # noqa: N806
    Registration = apps.get_model("competitions", "Registration")  # noqa: N806
    Profile = apps.get_model("accounts", "Profile")  # noqa: N806
    now = timezone.now()
    for membership in Membership.objects.select_related("user").iterator():
        Registration.objects.get_or_create(challenge_id=membership.challenge_id, user_id=membership.user_id,
                                           defaults={"status": "approved", "decided_at": now})
        profile, _ = Profile.objects.get_or_create(user_id=membership.user_id)
        if membership.user.email and not profile.email_verified_at:
            profile.verified_email, profile.email_verified_at = membership.user.email, now
            profile.save(update_fields=["verified_email", "email_verified_at"])


class Migration(migrations.Migration):

    dependencies = [
        ("competitions", "0003_phase_downloads"),
        ("accounts", "0002_profile_unique_email"),
        ("teams", "0002_team_name_key_invitation_expiry"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
