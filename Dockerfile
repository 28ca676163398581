# sessiond's image: built with Swift, run on slim Debian with only the libraries it links.
#   docker build -t sessiond .        (docker-compose.yml builds it for the demo cluster)

# --- build: the Swift toolchain and the -dev packages of the system libraries --------------------
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a source change does not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
RUN swift build -c release --product sessiond --static-swift-stdlib \
    && mkdir /staging \
    && cp .build/release/sessiond /staging/ \
    # The bundle holds openapi.yaml; sessiond looks for it next to its binary.
    && cp -R .build/release/sessiond_SessionService.resources /staging/

# --- run: the two runtime libraries, curl for the health check, an unprivileged user -------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis0.14 libssl3 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sessiond
COPY --from=build /staging/ /opt/sessiond/
USER sessiond
# Listens on every interface of the container; that needs API keys (SESSIOND_API_KEYS), and sessiond
# refuses to start without them unless SESSIOND_ALLOW_UNAUTHENTICATED=true says otherwise.
ENV SESSIOND_HOST=0.0.0.0 SESSIOND_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
ENTRYPOINT ["/opt/sessiond/sessiond"]
