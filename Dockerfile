# syntax=docker/dockerfile:1
# Build in the Rust image, run in a slim one as a non-root user.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits rebuild only classbell itself.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked --bin classbell \
    && rm -rf src tests
COPY src src
COPY migrations migrations
# The manifest names the test target; it must exist even though only the binary is built.
COPY tests tests
ARG CLASSBELL_GIT_COMMIT=unknown
ENV CLASSBELL_GIT_COMMIT=${CLASSBELL_GIT_COMMIT}
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin classbell

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/classbell --create-home classbell
COPY --from=build /src/target/release/classbell /usr/local/bin/classbell
USER classbell
WORKDIR /var/lib/classbell
ENV CLASSBELL_BIND=0.0.0.0:8080 \
    CLASSBELL_MAIL_OUTBOX=/var/lib/classbell/outbox \
    CLASSBELL_STORAGE_DIR=/var/lib/classbell/storage \
    CLASSBELL_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["classbell"]
CMD ["serve"]
