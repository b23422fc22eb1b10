import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "frplatform.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

# Each worker imports every view and boto3, and builds its S3 clients, as it starts, not on its first requests: a
# broken import stops the worker at boot, no participant's request waits for the loading, and a worker's memory
# does not depend on which requests it happens to serve first. (django-storages keeps a client per thread: with
# gunicorn's sync workers, the default, that is this one; gthread workers each build a small one per thread.)
from django.urls import get_resolver  # noqa: E402

from competitions.storage import open_s3_clients  # noqa: E402

get_resolver().url_patterns  # noqa: B018 - importing the URLconf imports every view
open_s3_clients()
