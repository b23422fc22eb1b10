"""The Celery application: light work on the default queue, scoring on the ``scoring`` queue."""

import os

from celery import Celery
from kombu.transport import sqlalchemy as sqlalchemy_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "frplatform.settings")

# The embedded broker (SQLAlchemy on SQLite) polls its table once a second by default;
# a submission then waits a second per hop. Poll ten times a second instead.
sqlalchemy_transport.Transport.polling_interval = 0.1

app = Celery("frplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
