//go:build tools

// Package tools only records, for `go mod tidy`, which upstream programs build.sh builds; it is never
// compiled (the `tools` build tag is never set). The imports are main packages, so they are blank.
package tools

import (
	_ "github.com/ultravioletrs/cocos/cmd/agent"
	_ "github.com/ultravioletrs/cocos/cmd/attestation-service"
	_ "github.com/ultravioletrs/cocos/cmd/cli"
	_ "github.com/ultravioletrs/cocos/cmd/computation-runner"
	_ "github.com/ultravioletrs/cocos/cmd/log-forwarder"
	_ "github.com/ultravioletrs/cocos/cmd/manager"
	_ "github.com/ultravioletrs/cocos/test/cvms"
)
