//go:build tools

// The toolbox's commands, imported so that go mod tidy keeps the modules
// that provide them: this file is never built (the tools build tag), the
// Makefile's toolbox target builds each command for wasip1 instead.
package toolbox

import (
	_ "github.com/google/go-jsonnet/cmd/jsonnet"
	_ "github.com/itchyny/gojq/cmd/gojq"
	_ "github.com/rhysd/actionlint/cmd/actionlint"
	_ "mvdan.cc/gofumpt"
	_ "mvdan.cc/sh/v3/cmd/shfmt"
)
