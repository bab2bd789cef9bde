# labctl, built the ordinary way, for machines that can pull base images from a registry.
#
#   docker build -t labctl:latest .
#   docker run --rm labctl:latest sim /topologies/ring6.toml
#
# The image runs every daemon of a lab (`labctl daemon …`), so the compose files of
# `labctl export compose` (image `labctl:latest` unless LABCTL_IMAGE says otherwise) run on it.
#
# Machines without a registry cannot pull the base images below: there `labctl image build` (which
# `labctl up --runtime docker` runs when needed) assembles an image `FROM scratch` through the
# engine's API from the labctl already built, its shared libraries and busybox: no base image at all.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin labctl

FROM debian:bookworm-slim
# A shell with ip, ping, nc and wget in every node (`labctl shell`, `docker exec -it <lab>-<id> sh`):
# busybox's applets, after Debian's own tools on PATH.
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox-static \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /opt/busybox && busybox --install -s /opt/busybox
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/busybox
COPY --from=build /src/target/release/labctl /usr/local/bin/labctl
COPY topologies /topologies
ENTRYPOINT ["labctl"]
