# syntax=docker/dockerfile:1
# deploybot: a static binary on a distroless base, running as non-root,
# with its store on the /var/lib/deploybot volume.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same build as CI's `make build-image`: static, no cgo, trimmed
# paths, and without the local stand-in (-tags nostandin: no `dev`, no
# `localaws`, no JavaScript engine), which serve never uses.
# VERSION (docker build --build-arg VERSION=v1.2.3) is what
# `deploybot version` prints; the build context has no .git to read it from.
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -tags nostandin -ldflags="-s -w -X github.com/deploybot/deploybot/cli.Version=${VERSION}" -o /out/deploybot ./cmd/deploybot

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/deploybot /usr/local/bin/deploybot
# 65532 is distroless's nonroot user; the volume must be writable by it.
# Docker fills a new volume (`docker run` without -v, or a new named
# volume) from the image's directory, owner included, so the directory is
# in the image, owned by that user: a copy of the base image's empty home
# of nonroot (distroless has no shell to mkdir with). Without it the
# volume would be root's and serve could not create its store. A host
# directory mounted there keeps its own owner (chown it to 65532); the
# Helm chart sets fsGroup 65532.
COPY --from=gcr.io/distroless/static-debian12:nonroot --chown=65532:65532 /home/nonroot /var/lib/deploybot
USER 65532:65532
VOLUME ["/var/lib/deploybot"]
ENV DEPLOYBOT_CONFIG=/etc/deploybot/deploybot.yaml
# serve listens here whatever the config's http.listen says (127.0.0.1
# inside a container answers no one outside it); -e DEPLOYBOT_LISTEN=...
# or serve --listen moves it. Kubernetes probes /healthz and /readyz on
# this port (the Helm chart sets DEPLOYBOT_LISTEN from service.port).
ENV DEPLOYBOT_LISTEN=0.0.0.0:8088
EXPOSE 8088
ENTRYPOINT ["/usr/local/bin/deploybot"]
CMD ["serve"]
