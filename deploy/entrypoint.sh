#!/bin/sh
# Entry point of the platform's images (deploy/Dockerfile, deploy/Dockerfile.gpu).
#
#   FR_MIGRATE=1        apply the database migrations first (the web service; retried while
#                       the database is not reachable yet)
#   FR_COLLECTSTATIC=1  collect the static files into $FR_VAR_DIR/staticfiles for whitenoise
#
# then runs the command (gunicorn, a Celery worker, `python -m scoring ...`) in place of this
# shell, in the working directory the container was given, so it receives the signals.
set -eu

APP_DIR=${FR_APP_DIR:-/app}

if [ "${FR_MIGRATE:-0}" = "1" ]; then
    tries=0
    until python "$APP_DIR/manage.py" migrate --noinput; do
        tries=$((tries + 1))
        if [ "$tries" -ge "${FR_MIGRATE_TRIES:-30}" ]; then
            echo "entrypoint: manage.py migrate failed $tries times; giving up" >&2
            exit 1
        fi
        echo "entrypoint: manage.py migrate failed (database not ready?); retrying in 2 s" >&2
        sleep 2
    done
fi

if [ "${FR_COLLECTSTATIC:-0}" = "1" ]; then
    python "$APP_DIR/manage.py" collectstatic --noinput --verbosity 0
fi

if [ "$#" -eq 0 ]; then
    echo "entrypoint: no command given" >&2
    exit 64
fi
exec "$@"
