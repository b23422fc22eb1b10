"""The Django project of the face restoration challenge platform."""

from frplatform.celery import app as celery_app

__all__ = ["celery_app"]
