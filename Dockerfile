# Multi-stage build: compile in the Rust image, run from a slim Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY tests tests
RUN cargo build --release --locked --bin wecom-oidc \
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
EXPOSE 8080
ENTRYPOINT ["wecom-oidc"]
CMD ["serve"]
