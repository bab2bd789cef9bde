# labctl, built the ordinary way, for machines that can pull base images from a registry.
#
#   docker build -t labctl:latest .
#   docker run --rm labctl:latest sim /topologies/ring6.toml
#
# The image runs every daemon of a lab (`labctl daemon …`), so the compose files of
# `labctl export compose` (image `labctl:latest` unless LABCTL_IMAGE says otherwise) run on it.
#
# Machines without a registry cannot pull the base images below: there `labctl image build` (which
# `labctl up --runtime docker` runs when needed) assembles an image `FROM scratch` from a static
# labctl through the engine's API, with no base image at all.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin labctl

FROM debian:bookworm-slim
COPY --from=build /src/target/release/labctl /usr/local/bin/labctl
COPY topologies /topologies
ENTRYPOINT ["labctl"]
