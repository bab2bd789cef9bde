# labctl, built the ordinary way, for machines that can pull base images from a registry.
#
#   docker build -t labctl .
#   docker run --rm -v "$PWD/topologies:/topologies" labctl sim /topologies/ring6.toml
#
# (Machines without a registry: later work makes `labctl image build` assemble a `FROM scratch`
# image from static binaries through the engine's API, with no base image at all.)

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin labctl

FROM debian:bookworm-slim
COPY --from=build /src/target/release/labctl /usr/local/bin/labctl
COPY topologies /topologies
ENTRYPOINT ["labctl"]
