from django.apps import AppConfig


class OrganizersConfig(AppConfig):
    name = "organizers"
    verbose_name = "Organizer pages"
    default_auto_field = "django.db.models.BigAutoField"
