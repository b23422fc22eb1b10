"""Settings, all from the environment.

With no environment at all this is the embedded default: SQLite, local file storage and
a Celery broker on SQLite (``sqla+sqlite://``). Production sets DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis) and FR_S3_BUCKET (S3 through django-storages).
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from scoring.batching import parse_images_per_call

# Every setting from the environment is read here, through this object, and nowhere else
# (deploy/env.example documents each one; tests/platform/test_deploy_settings.py checks both ways).
env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env.str("FR_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _database() -> dict:
    config = env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Web, worker and demo seeding share one file: WAL lets readers run beside a writer.
        config["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE",
                             "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
        config["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    elif config["ENGINE"] == "django.db.backends.postgresql":
        config["CONN_MAX_AGE"] = env.int("FR_DB_CONN_MAX_AGE", default=60)
        config["CONN_HEALTH_CHECKS"] = True
    else:
        raise ValueError(f"unsupported DATABASE_URL engine: {config['ENGINE']}")
    return config


DEBUG = env.bool("FR_DEBUG", default=False)
PRODUCTION = env.bool("FR_PRODUCTION", default=False)
SECRET_KEY = env.str("FR_SECRET_KEY", default="")
if not SECRET_KEY:
    if PRODUCTION:
        raise RuntimeError("FR_SECRET_KEY must be set in production")
    SECRET_KEY = "embedded-default-not-secret"  # noqa: S105 - only for the embedded default
# Rotating the key: put the old one here (comma-separated) so sessions survive the change.
SECRET_KEY_FALLBACKS = env.list("FR_SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("FR_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("FR_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "accounts",
    "competitions",
    "teams",
    "submissions",
    "leaderboard",
    "organizers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "frplatform.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "frplatform.urls"
WSGI_APPLICATION = "frplatform.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frplatform.csp.nonce",
            ]
        },
    }
]

DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# Outside production nothing runs collectstatic (the embedded default, ./dev demo): WhiteNoise serves
# static/ straight from the finders. Production collects into STATIC_ROOT (hashed, manifest storage).
WHITENOISE_USE_FINDERS = not PRODUCTION

MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
# Uploads over 1 MiB go to a temporary file, never held whole in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

S3_BUCKET = env.str("FR_S3_BUCKET", default="")
S3_ACCESS_KEY_ID = env.str("FR_S3_ACCESS_KEY_ID", default="") or None
S3_SECRET_ACCESS_KEY = env.str("FR_S3_SECRET_ACCESS_KEY", default="") or None
S3_REGION = env.str("FR_S3_REGION", default="us-east-1")
# Presigned upload URLs are signed for this address when participants reach S3 elsewhere.
S3_PUBLIC_ENDPOINT_URL = env.str("FR_S3_PUBLIC_ENDPOINT_URL", default="")
S3_ENDPOINT_URL = env.str("FR_S3_ENDPOINT_URL", default="") or None
if S3_BUCKET:
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": S3_BUCKET,
                "endpoint_url": S3_ENDPOINT_URL,
                "access_key": S3_ACCESS_KEY_ID,
                "secret_key": S3_SECRET_ACCESS_KEY,
                "region_name": S3_REGION,
                "default_acl": None,
                "file_overwrite": False,
                "querystring_auth": True,
                "addressing_style": "path",
            },
        },
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    }
else:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

# Rate limits count in this cache: shared Redis in production, process memory embedded.
_CACHE_URL = env.str("FR_CACHE_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
        if _CACHE_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Proxies in front of the site that append the client's address to X-Forwarded-For (nginx: 1).
# 0 (the default) never reads that header: a client could write anything in it.
FR_TRUSTED_PROXIES = env.int("FR_TRUSTED_PROXIES", default=0)
FR_INVITATION_DAYS = env.int("FR_INVITATION_DAYS", default=7)  # how long an invitation link works
FR_UPLOAD_RATE = (env.int("FR_UPLOAD_RATE_LIMIT", default=20), 3600)  # uploads per user per hour
# How long a direct upload's presigned part URLs work: the whole upload must start its last part by then.
FR_UPLOAD_URL_LIFETIME = env.int("FR_UPLOAD_URL_LIFETIME", default=6 * 3600)  # seconds

EMAIL_BACKEND = env.str("FR_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("FR_DEFAULT_FROM_EMAIL", default="challenge@localhost")
EMAIL_FILE_PATH = env.str("FR_EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))  # the file-based backend's folder
# Production mail: an SMTP URL (smtp+tls://user:password@host:587) sets the backend, host, port and credentials.
if env.str("FR_EMAIL_URL", default=""):
    vars().update(env.email_url("FR_EMAIL_URL"))
# Sign-up sends a link that verifies the address; an unverified account cannot register for a challenge.
FR_EMAIL_VERIFICATION = env.bool("FR_EMAIL_VERIFICATION", default=PRODUCTION)
FR_EMAIL_VERIFICATION_DAYS = env.int("FR_EMAIL_VERIFICATION_DAYS", default=3)  # how long a link works

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"submissions.tasks.score_submission": {"queue": "scoring"}}
# A scoring task is acknowledged only when it has finished, one at a time per worker process,
# and requeued if the worker dies under it; the task itself is idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacknowledged task after this long (the SQLAlchemy transport takes no options).
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": env.int("FR_VISIBILITY_TIMEOUT", default=3600)}
    if CELERY_BROKER_URL.startswith(("redis", "rediss")) else {}
)
CELERY_TASK_ALWAYS_EAGER = env.bool("FR_CELERY_EAGER", default=False)
CELERY_BEAT_SCHEDULE = {
    "watchdog": {"task": "submissions.tasks.watchdog", "schedule": env.float("FR_WATCHDOG_INTERVAL", default=30.0)},
}

# --- Scoring ------------------------------------------------------------------------------
_WEIGHTS_DIR = env.str("FR_WEIGHTS_DIR", default="")
FR_WEIGHTS_DIR = _WEIGHTS_DIR or str(VAR_DIR / "weights")
FR_WEIGHTS_DIR_CONFIGURED = bool(_WEIGHTS_DIR)  # not set: ./dev demo uses the shared test weights
FR_SCORING_DEVICE = env.str("FR_SCORING_DEVICE", default="auto")
# Images per forward call for chosen metrics on this worker, e.g. "maniqa=4,musiq=16" on a GPU (bench/device_run.py
# prints the best it measured); unset, scoring.batching's defaults. A malformed value stops the process here.
try:
    FR_IMAGES_PER_CALL = parse_images_per_call(env.str("FR_IMAGES_PER_CALL", default=""))
except ValueError as exc:
    raise ImproperlyConfigured(f"FR_IMAGES_PER_CALL: {exc}") from exc
FR_SCRATCH_DIR = Path(env.str("FR_SCRATCH_DIR", default=str(VAR_DIR / "scratch")))
FR_SCORING_TIME_LIMIT = env.int("FR_SCORING_TIME_LIMIT", default=7200)
FR_HEARTBEAT_TIMEOUT = env.int("FR_HEARTBEAT_TIMEOUT", default=300)
# The rank-stability analysis of each board (docs/rank-stability.md): its draws, how long a board's changes are
# gathered before one analysis runs, and how many of the board's first ranked teams it covers.
FR_RANK_STABILITY_RESAMPLES = env.int("FR_RANK_STABILITY_RESAMPLES", default=1000)
FR_RANK_STABILITY_SEED = env.int("FR_RANK_STABILITY_SEED", default=2025)
FR_RANK_STABILITY_DEBOUNCE = env.int("FR_RANK_STABILITY_DEBOUNCE", default=30)
FR_RANK_STABILITY_MAX_TEAMS = env.int("FR_RANK_STABILITY_MAX_TEAMS", default=50)
FR_MAX_ATTEMPTS = env.int("FR_MAX_ATTEMPTS", default=3)
# A submission still queued after this long is sent to the broker again (its message may have
# been lost with a broker restart); at most once per this interval.
FR_RESEND_AFTER = env.int("FR_RESEND_AFTER", default=900)
# Scoring workers load their models when they start (frplatform.celery); 0 leaves it to the first run.
FR_PRELOAD_MODELS = env.bool("FR_PRELOAD_MODELS", default=True)
# A public board is rebuilt at least this often (seconds) even when its version did not change; 0: every request.
FR_LEADERBOARD_CACHE_SECONDS = env.float("FR_LEADERBOARD_CACHE_SECONDS", default=300.0)
# The largest extra file (a factsheet template, say) organizers may upload for a phase's participants.
FR_EXTRA_FILE_MAX_BYTES = env.int("FR_EXTRA_FILE_MAX_BYTES", default=200 * 1024**2)

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("FR_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("FR_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("FR_LOG_LEVEL", default="INFO")},
}
