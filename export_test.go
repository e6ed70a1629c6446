package spindle

// LastOutputHandle is the handle of the output sink of the newest Run
// started from m: the handle a compromised child is told in its RunTask.
func (m *Master) LastOutputHandle() uint32 { return m.n.lastOutput.Load() }

// LastStdinHandle is the handle of the stdin source of the newest Run
// started from m with a Stdin.
func (m *Master) LastStdinHandle() uint32 { return m.n.lastStdin.Load() }

// SetLogBound sets the master's bound on each child stream's log records
// (logRate, logBurst by default).
func (m *Master) SetLogBound(rate, burst float64) { m.n.logs.setBound(rate, burst) }

// WorkRoot is workRoot: where a context's CI workspaces live.
var WorkRoot = workRoot
