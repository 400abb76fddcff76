# The manager image, for users with a container engine (make docker-build).
# Without one, `make images` builds the same kind of image with no engine at all.
# Multi-stage: a static binary on an empty base with a non-root user (distroless-style).
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
ARG VERSION=0.1.0
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath \
      -ldflags "-s -w -X github.com/ragops/rag-operator/internal/version.Version=${VERSION}" \
      -o /out/manager ./cmd/manager
# The only files the final image needs besides the binary.
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home/nonroot && chmod 1777 /rootfs/tmp && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group && \
    chown 65532:65532 /rootfs/home/nonroot

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="manager" \
      org.opencontainers.image.description="ragops operator: RAG embedding servers with analysed canaries" \
      org.opencontainers.image.source="https://github.com/ragops/rag-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs/ /
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/manager /manager
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/manager"]
