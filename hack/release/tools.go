//go:build tools

// Package release pins the tools the release workflow and `make actionlint` run with
// `go run` / `go build`, so their versions are this module's go.mod and go.sum.
package release

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "github.com/rhysd/actionlint/cmd/actionlint"
	_ "helm.sh/helm/v4/cmd/helm"
)
