import secrets

from django.conf import settings
from django.db import models


def new_token_key() -> str:
    return secrets.token_hex(20)


class ApiToken(models.Model):
    """A personal token for the JSON API and the participant command line."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    key = models.CharField(max_length=40, unique=True, default=new_token_key)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"token of {self.user}"
