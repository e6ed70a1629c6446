//go:build !spindlehost

package spindle

import (
	"fmt"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// Temporary: lets the package build while host/ is being written.
type taskState struct{}

func (n *node) onRunTask(m *wire.Message, _ *broker.Stream) {
	_ = n.r.ReplyError(n.b.Context(), m, fmt.Errorf("no wasm host: %w", routing.ErrNotFound))
}
