# A local stand-in for the redis:7 image, from Debian's Redis (bookworm: 7.0), for
# `./dev deploy-check` where no image registry is reachable. Like the official image: the
# working folder (append-only file) is /data, and docker-entrypoint.sh runs the server as the
# redis user; redis-cli reads REDISCLI_AUTH.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
