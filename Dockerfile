# Multi-stage build: compile in the Rust image, run from a slim Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
# The dependencies first, in a layer of their own: built from Cargo.toml and Cargo.lock alone,
# with stand-ins for the crate's sources, so that a change to src/ does not recompile the ~360
# crates below it.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > tests/benches/token_endpoint.rs \
 && cargo build --release --locked --bin wecom-oidc \
 && rm -rf src tests
COPY src src
COPY migrations migrations
# Cargo.toml names the benchmark's file; the build needs it to exist, not to compile it.
COPY tests/benches tests/benches
# COPY keeps the files' own times, which may be older than the stand-ins' build: touch the crate
# roots so that cargo rebuilds the crate rather than keep the stand-in.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin wecom-oidc \
 && strip target/release/wecom-oidc

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/wecom-oidc wecom-oidc
COPY --from=build /src/target/release/wecom-oidc /usr/local/bin/wecom-oidc
USER 10001
WORKDIR /var/lib/wecom-oidc
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/wecom-oidc/wecom-oidc.db
# The SQLite store (signing keys, clients, members) lives here: give it a named volume, or a host
# directory owned by uid 10001, so that it outlives the container.
VOLUME /var/lib/wecom-oidc
EXPOSE 8080
# `health` asks /readyz on LISTEN_ADDR (the image has no curl): 0 when the provider and its
# database answer, 1 otherwise.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["wecom-oidc", "health"]
ENTRYPOINT ["wecom-oidc"]
CMD ["serve"]
