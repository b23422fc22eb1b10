"""The Celery application: light work on the default queue, scoring on the ``scoring`` queue."""

import logging
import os

from celery import Celery
from celery.signals import worker_process_init
from django.conf import settings
from django.db import connection
from kombu.transport import sqlalchemy as sqlalchemy_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "frplatform.settings")
logger = logging.getLogger(__name__)

# The embedded broker (SQLAlchemy on SQLite) polls its table once a second by default;
# a submission then waits a second per hop. Poll ten times a second instead.
sqlalchemy_transport.Transport.polling_interval = 0.1

app = Celery("frplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def warm_up_models(**_kwargs) -> None:
    """Scoring workers load their models once, at start, and keep them for every submission."""
    if not settings.FR_PRELOAD_MODELS:
        return
    # Here, not at the top: this module is imported while Django configures itself (frplatform/__init__.py),
    # before the apps' models can be imported.
    from submissions.pipeline import preload_models

    try:
        logger.info("models loaded at start: %s", preload_models())
    except Exception:  # a worker without weights still serves light work; scoring will say why
        logger.exception("could not preload the scoring models")
    finally:
        connection.close()
