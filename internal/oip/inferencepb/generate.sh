#!/usr/bin/env bash
# Regenerates grpc_service.pb.go and grpc_service_grpc.pb.go from
# grpc_service.proto. Needs protoc on PATH (Debian: protobuf-compiler) and the
# Go toolchain; installs the pinned Go plugins into a temporary GOBIN so the
# output depends only on these versions. Run through `go generate` in this
# directory or directly; running it twice gives the same files.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

cd "$(dirname "$0")"

command -v protoc >/dev/null || { echo "generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
# One go install per module: both @version arguments must be in one module.
GOBIN=$gobin go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN=$gobin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

PATH=$gobin:$PATH protoc \
	--proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	grpc_service.proto
