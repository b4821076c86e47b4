# Builds the `hub` binary into a small image. Used by compose.yaml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p sgd-hub --bin hub

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/hub /usr/local/bin/hub
USER 10001
ENV HUB_DATA_DIR=/data HUB_HTTP_ADDR=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["hub"]
CMD ["serve"]
