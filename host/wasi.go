package host

import (
	"context"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// ENOSPC. A guest past its disk budget (Limits.DiskBytes) must see ENOSPC,
// but the errnos a wazero sys.FS can return (experimental/sys.Errno) have
// none: wazero turns every errno it does not know into EIO. So package
// rootfs fails such a write with EIO and records the refusal in the call's
// Disk, and listeners on the WASI functions that can spend the budget turn
// an EIO result into ENOSPC when the Disk refused during that function.
//
// The listeners rewrite the function's result in place: in both of
// wazero's engines, After's results are the stack the guest reads the
// result from (TestDiskBudget fails if a later wazero changes that).
// The Disk records a refusal only as it fails the operation with EIO, and
// After clears it as it reads it, so an EIO that is not the budget's stays
// EIO. After looks no further than the result unless it is EIO: a guest
// making millions of one-byte writes pays one comparison for each (with
// Before clearing the flag too, TestStdoutFloodBounded took twice as long
// under -race).

// The WASI errnos the listeners read and write (WASI preview 1, errno).
const (
	wasiEIO    = 29
	wasiENOSPC = 51
)

// diskFuncs are the WASI functions that can spend a Disk: writes, growing
// a file (fd_allocate is a truncate in wazero) and making entries.
var diskFuncs = map[string]bool{
	"fd_write":              true,
	"fd_pwrite":             true,
	"fd_allocate":           true,
	"fd_filestat_set_size":  true,
	"path_open":             true,
	"path_create_directory": true,
	"path_symlink":          true,
	"path_link":             true,
}

// wasiListeners is the FunctionListenerFactory of the Host's WASI module:
// a diskListener on the diskFuncs, nothing on the others.
type wasiListeners struct{}

func (wasiListeners) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	for _, name := range def.ExportNames() {
		if diskFuncs[name] {
			return diskListener{}
		}
	}
	return nil
}

// diskListener turns EIO into ENOSPC for a refusal of the call's Disk.
type diskListener struct{}

func (diskListener) Before(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
}

func (diskListener) After(ctx context.Context, _ api.Module, _ api.FunctionDefinition, results []uint64) {
	if len(results) == 0 || uint32(results[0]) != wasiEIO {
		return // the common case costs one comparison
	}
	if st := stateFrom(ctx); st != nil && st.disk != nil && st.disk.Refused() {
		results[0] = wasiENOSPC
	}
}

func (diskListener) Abort(context.Context, api.Module, api.FunctionDefinition, error) {}
