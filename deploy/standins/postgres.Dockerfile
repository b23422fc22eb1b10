# A local stand-in for the postgres:16 image, from Debian's PostgreSQL (bookworm: 15), for
# `./dev deploy-check` where no image registry is reachable. It honours what compose.yaml uses of
# the official image: POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD, the data in
# /var/lib/postgresql/data, pg_isready on the PATH, password logins from other containers.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
