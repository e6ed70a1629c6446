package spindle

// LastOutputHandle is the handle of the output sink of the newest Run
// started from m: the handle a compromised child is told in its RunTask.
func (m *Master) LastOutputHandle() uint32 { return m.n.lastOutput.Load() }

// WorkRoot is workRoot: where a context's CI workspaces live.
var WorkRoot = workRoot
