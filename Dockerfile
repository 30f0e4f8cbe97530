# The matview image: one binary for operator, gateway and projectors.
# Build with any OCI builder:  docker build -t matview .
# Without a container engine or a registry: `make image` (hack/image.sh)
# assembles the same runtime layout from a local release build with buildah.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY benches ./benches
RUN cargo build --release --locked --bin matview \
 && cp target/release/matview /matview

# distroless/cc: glibc, libgcc, libssl, CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/
COPY --from=build /matview /usr/local/bin/matview
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/matview"]
LABEL org.opencontainers.image.title="matview" \
      org.opencontainers.image.description="Declarative CQRS read models for Kafka, run by Kubernetes" \
      org.opencontainers.image.source="https://github.com/matview/matview" \
      org.opencontainers.image.licenses="Apache-2.0"
