#!/bin/sh
# As the official image's: a volume mounted on /data becomes the redis user's, then the
# command runs as that user.
set -eu
if [ "$(id -u)" = "0" ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
