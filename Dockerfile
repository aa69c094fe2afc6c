# syntax=docker/dockerfile:1
#
# The operator image: one Rust binary (it links only glibc and libgcc) on distroless, non-root.
#
# The whole build is `cargo build --release --locked --bin entra-operator`; the same command outside
# Docker gives the same binary in target/release/entra-operator. The runtime stage only copies it.
#
#   docker build -t ghcr.io/hanzoai/entra-operator:0.1.0 .
#   docker run --rm ghcr.io/hanzoai/entra-operator:0.1.0 --version

# Debian 12 on both sides, so the binary links against the glibc it runs with.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Cargo loads every workspace member (tests/entra-emulator, tests/support, bench) before it builds
# one binary, so they are in the context, though the image compiles none of them; .dockerignore
# keeps the rest of tests/ out. `make test` (tests/image.rs) runs the cargo command below in exactly
# this context, so a new member that is missing here fails the tests, not the release.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests/entra-emulator ./tests/entra-emulator
COPY tests/support ./tests/support
COPY bench ./bench
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin entra-operator \
    && cp target/release/entra-operator /entra-operator

# glibc, libgcc and CA certificates, no shell, no package manager; the nonroot user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="entra-operator" \
      org.opencontainers.image.description="Issues Microsoft Entra ID user credentials as Kubernetes Secrets" \
      org.opencontainers.image.source="https://github.com/hanzoai/entra-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /entra-operator /entra-operator
USER 65532:65532
# /metrics (HTTPS, authorized callers only) and the probes (/livez, /readyz, plain HTTP).
EXPOSE 8443 8081
ENTRYPOINT ["/entra-operator"]
CMD ["run"]
