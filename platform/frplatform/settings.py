"""Settings, all from the environment.

With no environment at all this is the embedded default: SQLite, local file storage and
a Celery broker on SQLite (``sqla+sqlite://``). Production sets DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis or RabbitMQ) and FR_S3_BUCKET (S3 through django-storages).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("FR_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).lower() in ("1", "true", "yes", "on")


def database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme in ("sqlite", "sqlite3"):
        path = unquote(parsed.path)[1:] if parsed.path.startswith("//") else unquote(parsed.path)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path or str(VAR_DIR / "db.sqlite3"),
            # Web, worker and demo seeding share one file: WAL lets readers run beside a writer.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
            "TEST": {"NAME": str(VAR_DIR / "test-db.sqlite3")},
        }
    if parsed.scheme in ("postgres", "postgresql", "pgsql"):
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": int(os.environ.get("FR_DB_CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ValueError(f"unsupported DATABASE_URL scheme: {parsed.scheme}")


DEBUG = env_bool("FR_DEBUG", False)
PRODUCTION = env_bool("FR_PRODUCTION", False)
SECRET_KEY = os.environ.get("FR_SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise RuntimeError("FR_SECRET_KEY must be set in production")
    SECRET_KEY = "embedded-default-not-secret"  # noqa: S105 - only for the embedded default
# Rotating the key: put the old one here (comma-separated) so sessions survive the change.
SECRET_KEY_FALLBACKS = [k for k in os.environ.get("FR_SECRET_KEY_FALLBACKS", "").split(",") if k]
ALLOWED_HOSTS = [h for h in os.environ.get("FR_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("FR_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

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

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"))}
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

S3_BUCKET = os.environ.get("FR_S3_BUCKET", "")
S3_ACCESS_KEY_ID = os.environ.get("FR_S3_ACCESS_KEY_ID") or None
S3_SECRET_ACCESS_KEY = os.environ.get("FR_S3_SECRET_ACCESS_KEY") or None
S3_REGION = os.environ.get("FR_S3_REGION", "us-east-1")
# Presigned upload URLs are signed for this address when participants reach S3 elsewhere.
S3_PUBLIC_ENDPOINT_URL = os.environ.get("FR_S3_PUBLIC_ENDPOINT_URL", "")
if S3_BUCKET:
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": S3_BUCKET,
                "endpoint_url": os.environ.get("FR_S3_ENDPOINT_URL") or None,
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
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["FR_CACHE_URL"]}
        if os.environ.get("FR_CACHE_URL") else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Proxies in front of the site that append the client's address to X-Forwarded-For (nginx: 1).
# 0 (the default) never reads that header: a client could write anything in it.
FR_TRUSTED_PROXIES = int(os.environ.get("FR_TRUSTED_PROXIES", "0"))
FR_INVITATION_DAYS = int(os.environ.get("FR_INVITATION_DAYS", "7"))  # how long an invitation link works
FR_UPLOAD_RATE = (int(os.environ.get("FR_UPLOAD_RATE_LIMIT", "20")), 3600)  # uploads per user per hour

EMAIL_BACKEND = os.environ.get("FR_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("FR_DEFAULT_FROM_EMAIL", "challenge@localhost")
EMAIL_FILE_PATH = os.environ.get("FR_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))  # the file-based backend's folder
# Sign-up sends a link that verifies the address; an unverified account cannot register for a challenge.
FR_EMAIL_VERIFICATION = env_bool("FR_EMAIL_VERIFICATION", PRODUCTION)
FR_EMAIL_VERIFICATION_DAYS = int(os.environ.get("FR_EMAIL_VERIFICATION_DAYS", "3"))  # how long a link works

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}")
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
    {"visibility_timeout": int(os.environ.get("FR_VISIBILITY_TIMEOUT", "3600"))}
    if CELERY_BROKER_URL.startswith(("redis", "rediss")) else {}
)
CELERY_TASK_ALWAYS_EAGER = env_bool("FR_CELERY_EAGER", False)
CELERY_BEAT_SCHEDULE = {
    "watchdog": {"task": "submissions.tasks.watchdog", "schedule": float(os.environ.get("FR_WATCHDOG_INTERVAL", "30"))},
}

# --- Scoring ------------------------------------------------------------------------------
FR_WEIGHTS_DIR = os.environ.get("FR_WEIGHTS_DIR", str(VAR_DIR / "weights"))
FR_SCORING_DEVICE = os.environ.get("FR_SCORING_DEVICE", "auto")
FR_SCRATCH_DIR = Path(os.environ.get("FR_SCRATCH_DIR", VAR_DIR / "scratch"))
FR_SCORING_TIME_LIMIT = int(os.environ.get("FR_SCORING_TIME_LIMIT", "7200"))
FR_HEARTBEAT_TIMEOUT = int(os.environ.get("FR_HEARTBEAT_TIMEOUT", "300"))
# The rank-stability analysis of each board (docs/rank-stability.md): its draws, how long a board's changes are
# gathered before one analysis runs, and how many of the board's first ranked teams it covers.
FR_RANK_STABILITY_RESAMPLES = int(os.environ.get("FR_RANK_STABILITY_RESAMPLES", "1000"))
FR_RANK_STABILITY_SEED = int(os.environ.get("FR_RANK_STABILITY_SEED", "2025"))
FR_RANK_STABILITY_DEBOUNCE = int(os.environ.get("FR_RANK_STABILITY_DEBOUNCE", "30"))
FR_RANK_STABILITY_MAX_TEAMS = int(os.environ.get("FR_RANK_STABILITY_MAX_TEAMS", "50"))
FR_MAX_ATTEMPTS = int(os.environ.get("FR_MAX_ATTEMPTS", "3"))
# A submission still queued after this long is sent to the broker again (its message may have
# been lost with a broker restart); at most once per this interval.
FR_RESEND_AFTER = int(os.environ.get("FR_RESEND_AFTER", "900"))
# Inputs without landmarks the organizers' input-set form may run RetinaFace on within one request (~0.45 s
# an image on a CPU; more raise a clear error pointing to `python -m scoring landmarks`).
FR_WEB_DETECT_MAX = int(os.environ.get("FR_WEB_DETECT_MAX", "100"))
# The largest extra file (a factsheet template, say) organizers may upload for a phase's participants.
FR_EXTRA_FILE_MAX_BYTES = int(os.environ.get("FR_EXTRA_FILE_MAX_BYTES", str(200 * 1024**2)))

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("FR_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("FR_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("FR_LOG_LEVEL", "INFO")},
}
