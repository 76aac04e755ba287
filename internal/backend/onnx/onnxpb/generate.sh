#!/bin/sh
# generate.sh regenerates onnx-ml.pb.go from onnx-ml.proto.
#
# onnx-ml.proto is the file shipped by Debian's python3-onnx 1.12 (ONNX,
# Apache-2.0), with one added line: option go_package. It needs protoc
# (Debian package protobuf-compiler) and protoc-gen-go v1.36.12 on PATH:
#
#	GOBIN=$(mktemp -d) go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#	PATH=$GOBIN:$PATH go generate ./internal/backend/onnx/onnxpb
set -eu
cd "$(dirname "$0")"
protoc --go_out=. --go_opt=paths=source_relative onnx-ml.proto
