# The hub's image. Nothing is pulled: the base is Debian bookworm made with debootstrap and
# imported, and the hub binary is built on the host (also bookworm) and copied in. Build it with
# scripts/images.sh, which makes the base, builds the hub and passes this file a context holding
# only the binary (`hub`):
#
#   scripts/images.sh            # sgd-base, sgd-nats and sgd-hub:latest (a release build)
#   docker compose up -d         # see compose.yaml
ARG BASE=sgd-base:bookworm
FROM ${BASE}
# The user the hub runs as owns /data in the image, so a named volume mounted there starts out
# owned by it (Docker copies the mount point's owner into a new volume) and the hub can write its
# read model, tokens and outbox. /etc/sgd-nats is where compose puts `hub nats-config`'s output.
RUN echo 'sgd:x:10001:10001:sgd-hub:/data:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'sgd:x:10001:' >> /etc/group \
 && mkdir -p /data /etc/sgd-nats \
 && chown 10001:10001 /data /etc/sgd-nats
COPY hub /usr/local/bin/hub
USER 10001:10001
ENV HUB_DATA_DIR=/data HUB_HTTP_ADDR=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --retries=20 CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["hub"]
CMD ["serve"]
