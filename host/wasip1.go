package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// WASI preview 1, as guests see it: wazero's implementation, with the
// functions that take or make a file descriptor wrapped by this layer,
// which keeps the guest's descriptor numbers, rights and sync flags
// (fdTable, fdtable.go) and implements what wazero lacks:
//
//   - fd_renumber of any descriptor onto any open one, stdio and preopens
//     included (wazero: ENOTSUP), and EBADF onto a number not open (wazero
//     opened it);
//   - rights: fd_fdstat_get reports what path_open asked for (within the
//     directory's inheriting rights and wazero's rights for the file's
//     type), fd_fdstat_set_rights drops rights (wazero: ENOSYS) and never
//     adds one (ENOTCAPABLE), and a function that needs a dropped right,
//     or read or write on a descriptor opened without it, fails with
//     ENOTCAPABLE;
//   - fd_fdstat_get reports the DSYNC, RSYNC and SYNC flags it was opened
//     with;
//   - poll_oneoff: every descriptor subscription is ready at once, reads
//     and writes alike (wazero: ENOTSUP for writes, stdin only for
//     reads); with clock subscriptions alone it sleeps as the call's
//     clock does (not at all under the fake clock);
//   - path_readlink into a buffer too small fills it (POSIX; wazero:
//     ERANGE); path_filestat_set_times without LOOKUP_SYMLINK_FOLLOW sets a
//     symlink's own times (wazero followed it); path_link with
//     LOOKUP_SYMLINK_FOLLOW is EINVAL (as wasmtime: not supported; wazero
//     ignored the flag);
//   - fd_prestat_dir_name: ENAMETOOLONG when the buffer is smaller than
//     the name, success when larger (wazero had it the other way round);
//   - sock_*: ENOTSOCK on a descriptor that is open (no sockets are ever
//     granted), EBADF otherwise.
//
// The other functions (args, environ, clocks, random, proc_exit,
// sched_yield) are wazero's own, unwrapped.

// The WASI errnos this layer returns (WASI preview 1, errno).
const (
	wasiEBADF        = 8
	wasiEFAULT       = 21
	wasiEINVAL       = 28
	wasiENAMETOOLONG = 37
	wasiENOTSOCK     = 57
	wasiENOTSUP      = 58
	wasiERANGE       = 68
	wasiENOTCAPABLE  = 76
)

// Flags of WASI preview 1 this layer reads.
const (
	lookupSymlinkFollow = 1 // lookupflags

	oflagCreat     = 1 // oflags
	oflagDirectory = 2
	oflagTrunc     = 8

	fdflagDsync = 2 // fdflags
	fdflagRsync = 8
	fdflagSync  = 16
	syncFlags   = fdflagDsync | fdflagRsync | fdflagSync

	fstflagAtim    = 1 // fstflags
	fstflagAtimNow = 2
	fstflagMtim    = 4
	fstflagMtimNow = 8

	whenceCur = 1
)

// fakeWalltime is the wall clock of a call without Grants.Clock where this
// layer needs "now" (path_filestat_set_times of a symlink with *_NOW):
// wazero's fake clock starts there (midnight UTC, 2022-01-01).
const fakeWalltime = 1640995200_000_000_000

// fdArg is a parameter of a WASI function that is a file descriptor, and
// the right the function needs on it (0: none).
type fdArg struct {
	param int
	right uint64
}

// fdArgs are the functions this layer only translates: their descriptor
// parameters, and the rights they need.
var fdArgs = map[string][]fdArg{
	"fd_advise":             {{0, rightFdAdvise}},
	"fd_allocate":           {{0, rightFdAllocate}},
	"fd_datasync":           {{0, rightFdDatasync}},
	"fd_fdstat_set_flags":   {{0, rightFdFdstatSetFlags}},
	"fd_filestat_get":       {{0, rightFdFilestatGet}},
	"fd_filestat_set_size":  {{0, rightFdFilestatSetSize}},
	"fd_filestat_set_times": {{0, rightFdFilestatSetTimes}},
	"fd_pread":              {{0, rightFdRead | rightFdSeek}},
	"fd_prestat_get":        {{0, 0}},
	"fd_pwrite":             {{0, rightFdWrite | rightFdSeek}},
	"fd_read":               {{0, rightFdRead}},
	"fd_readdir":            {{0, rightFdReaddir}},
	"fd_sync":               {{0, rightFdSync}},
	"fd_tell":               {{0, rightFdTell}},
	"fd_write":              {{0, rightFdWrite}},
	"path_create_directory": {{0, rightPathCreateDirectory}},
	"path_filestat_get":     {{0, rightPathFilestatGet}},
	"path_remove_directory": {{0, rightPathRemoveDirectory}},
	"path_rename":           {{0, rightPathRenameSource}, {3, rightPathRenameTarget}},
	"path_symlink":          {{2, rightPathSymlink}},
	"path_unlink_file":      {{0, rightPathUnlinkFile}},
}

// wasiLayer holds wazero's WASI functions, which this layer's wrappers
// call. Immutable after newWASILayer.
type wasiLayer struct {
	inner map[string]api.GoModuleFunction
}

// instantiateWASI instantiates WASI preview 1 in rt: wazero's functions,
// with this layer's in place of those it wraps. ctx carries the function
// listeners (wasi.go).
func instantiateWASI(ctx context.Context, rt wazero.Runtime) error {
	// wazero's functions, from a compiled (never instantiated) copy of
	// its module: each is a Go function that acts on the module calling it.
	compiled, err := wasi_snapshot_preview1.NewBuilder(rt).Compile(ctx)
	if err != nil {
		return err
	}
	defs := compiled.ExportedFunctions()
	l := &wasiLayer{inner: make(map[string]api.GoModuleFunction, len(defs))}
	for name, def := range defs {
		if fn, ok := def.GoFunction().(api.GoModuleFunction); ok {
			l.inner[name] = fn
		}
	}
	if err := compiled.Close(ctx); err != nil {
		return err
	}
	b := rt.NewHostModuleBuilder(wasiModule)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	for name, def := range defs {
		fn := l.wrap(name)
		if fn == nil {
			continue
		}
		if _, ok := l.inner[name]; !ok {
			return fmt.Errorf("WASI function %s is not a Go function of wazero's", name)
		}
		// Exporting the name again replaces wazero's function.
		b.NewFunctionBuilder().WithGoModuleFunction(fn, def.ParamTypes(), def.ResultTypes()).
			WithParameterNames(def.ParamNames()...).WithResultNames(def.ResultNames()...).Export(name)
	}
	_, err = b.Instantiate(ctx)
	return err
}

// wrap returns this layer's function for the WASI function name, or nil
// to keep wazero's.
func (l *wasiLayer) wrap(name string) api.GoModuleFunction {
	counted := !inertWASI[name]
	if args, ok := fdArgs[name]; ok {
		inner := l.inner[name]
		return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			t := tableFor(ctx, counted)
			if errno := t.translate(stack, args); errno != 0 {
				stack[0] = errno
				return
			}
			inner.Call(ctx, mod, stack)
		})
	}
	var fn func(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64
	switch name {
	case "fd_close":
		fn = l.fdClose
	case "fd_fdstat_get":
		fn = l.fdFdstatGet
	case "fd_fdstat_set_rights":
		fn = l.fdFdstatSetRights
	case "fd_prestat_dir_name":
		fn = l.fdPrestatDirName
	case "fd_renumber":
		fn = l.fdRenumber
	case "fd_seek":
		fn = l.fdSeek
	case "path_filestat_set_times":
		fn = l.pathFilestatSetTimes
	case "path_link":
		fn = l.pathLink
	case "path_open":
		fn = l.pathOpen
	case "path_readlink":
		fn = l.pathReadlink
	case "poll_oneoff":
		fn = l.pollOneoff
	case "sock_accept", "sock_recv", "sock_send", "sock_shutdown":
		fn = l.sock
	default:
		return nil
	}
	return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		stack[0] = fn(ctx, tableFor(ctx, counted), mod, stack)
	})
}

// inertWASI are the descriptor functions that change nothing of an
// instance's descriptors or of what lies behind them in an instance that
// may be snapshotted (nothing mounted, no stdin: only stdio is open);
// every other one counts in callState.hostCalls, so that an
// initialization that closes, renumbers or opens a descriptor is never
// snapshotted (snapshot.go): a restored instance gets a new descriptor
// table. fd_fdstat_set_flags is inert there because only stdio is open
// and wazero keeps no flags for it: NONBLOCK on a stdio that is not an
// *os.File (the host's never is) is ENOSYS either way, the sync flags
// EINVAL, APPEND ignored. Go's os package calls it on each stdio file as
// it starts.
var inertWASI = map[string]bool{
	"fd_fdstat_set_flags": true,
	"fd_prestat_get":      true,
	"fd_prestat_dir_name": true,
	"fd_fdstat_get":       true,
	"fd_filestat_get":     true,
	"fd_tell":             true,
	"path_filestat_get":   true,
	"path_readlink":       true,
	"fd_readdir":          true,
}

// tableFor returns the descriptor table of the instance the call runs
// on, and counts the call in the call's hostCalls if counted. Every
// instance has one (instantiate); a guest running outside a call (none
// does) would get an empty table.
func tableFor(ctx context.Context, counted bool) *fdTable {
	if st := stateFrom(ctx); st != nil && st.fds != nil {
		if counted {
			st.hostCalls++
		}
		return st.fds
	}
	return &fdTable{}
}

// translate replaces the guest descriptors among stack's parameters with
// wazero's, checking the rights args name. It returns a WASI errno.
func (t *fdTable) translate(stack []uint64, args []fdArg) uint64 {
	for _, a := range args {
		e := t.get(uint32(stack[a.param]))
		if e == nil {
			return wasiEBADF
		}
		if e.dropped&a.right != 0 {
			return wasiENOTCAPABLE
		}
		stack[a.param] = uint64(uint32(e.host))
	}
	return 0
}

// call runs wazero's function name with stack and returns its errno.
func (l *wasiLayer) call(ctx context.Context, name string, mod api.Module, stack []uint64) uint64 {
	l.inner[name].Call(ctx, mod, stack)
	return uint32Errno(stack[0])
}

func uint32Errno(v uint64) uint64 { return uint64(uint32(v)) }

func (l *wasiLayer) fdClose(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	fd := uint32(stack[0])
	if errno := t.translate(stack, []fdArg{{0, 0}}); errno != 0 {
		return errno
	}
	errno := l.call(ctx, "fd_close", mod, stack)
	if errno == 0 {
		t.remove(fd)
	}
	return errno
}

// fdFdstatGet is wazero's, with the rights and sync flags of the entry.
func (l *wasiLayer) fdFdstatGet(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	e := t.get(uint32(stack[0]))
	if e == nil {
		return wasiEBADF
	}
	result := uint32(stack[1])
	stack[0] = uint64(uint32(e.host))
	if errno := l.call(ctx, "fd_fdstat_get", mod, stack); errno != 0 {
		return errno
	}
	// fdstat: filetype u8, fs_flags u16 at 2, fs_rights_base u64 at 8,
	// fs_rights_inheriting u64 at 16.
	b, ok := mod.Memory().Read(result, 24)
	if !ok {
		return wasiEFAULT
	}
	le := binary.LittleEndian
	le.PutUint16(b[2:], le.Uint16(b[2:])|e.sync)
	le.PutUint64(b[8:], le.Uint64(b[8:])&e.base&^e.dropped)
	le.PutUint64(b[16:], le.Uint64(b[16:])&e.inherit&^e.droppedInherit)
	return 0
}

// fdFdstatSetRights drops rights; it never adds one.
func (l *wasiLayer) fdFdstatSetRights(_ context.Context, t *fdTable, _ api.Module, stack []uint64) uint64 {
	e := t.get(uint32(stack[0]))
	if e == nil {
		return wasiEBADF
	}
	base, inherit := stack[1], stack[2]
	curBase, curInherit := e.base&^e.dropped, e.inherit&^e.droppedInherit
	if base&^curBase != 0 || inherit&^curInherit != 0 {
		return wasiENOTCAPABLE
	}
	e.dropped |= curBase &^ base
	e.droppedInherit |= curInherit &^ inherit
	return 0
}

func (l *wasiLayer) fdPrestatDirName(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	e := t.get(uint32(stack[0]))
	if e == nil || e.preopen == "" {
		return wasiEBADF
	}
	p, n := uint32(stack[1]), uint32(stack[2])
	if n < uint32(len(e.preopen)) {
		return wasiENAMETOOLONG
	}
	if !mod.Memory().WriteString(p, e.preopen) {
		return wasiEFAULT
	}
	return 0
}

// fdRenumber moves the entry of from onto to, which must be open: what
// was open there is closed. wazero's descriptors keep their numbers.
func (l *wasiLayer) fdRenumber(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	from, to := uint32(stack[0]), uint32(stack[1])
	e, old := t.get(from), t.get(to)
	if e == nil || old == nil {
		return wasiEBADF
	}
	if from == to {
		return 0
	}
	// wazero may refuse to close a preopen: then its descriptor stays open
	// in wazero, out of the guest's reach, until the instance closes.
	_ = l.call(ctx, "fd_close", mod, []uint64{uint64(uint32(old.host))})
	t.entries[to] = e
	t.remove(from)
	return 0
}

// fdSeek needs FD_TELL alone to read the offset, FD_SEEK to move it.
func (l *wasiLayer) fdSeek(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	right := uint64(rightFdSeek)
	if stack[1] == 0 && uint8(stack[2]) == whenceCur {
		right = rightFdTell
	}
	if errno := t.translate(stack, []fdArg{{0, right}}); errno != 0 {
		return errno
	}
	return l.call(ctx, "fd_seek", mod, stack)
}

func (l *wasiLayer) pathFilestatSetTimes(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	e := t.get(uint32(stack[0]))
	if errno := t.translate(stack, []fdArg{{0, rightPathFilestatSetTimes}}); errno != 0 {
		return errno
	}
	lut, ok := e.fsys.(interface {
		Lutimens(p string, atim, mtim int64) sys.Errno
	})
	if uint16(stack[1])&lookupSymlinkFollow != 0 || !ok {
		return l.call(ctx, "path_filestat_set_times", mod, stack)
	}
	// Not following: the link itself, which sys.FS cannot do (wazero
	// opened the path, following it).
	atim, mtim, errno := fileTimes(ctx, int64(stack[4]), int64(stack[5]), uint16(stack[6]))
	if errno != 0 {
		return errno
	}
	name, errno := e.resolve(mod, uint32(stack[2]), uint32(stack[3]))
	if errno != 0 {
		return errno
	}
	return errnoOf(lut.Lutimens(name, atim, mtim))
}

// fileTimes turns path_filestat_set_times's times and fstflags into the
// times to set (sys.UTIME_OMIT: unchanged), as wazero does; "now" is the
// call's wall clock, the fake one unless the call has Grants.Clock.
func fileTimes(ctx context.Context, atim, mtim int64, flags uint16) (int64, int64, uint64) {
	if flags&fstflagAtim != 0 && flags&fstflagAtimNow != 0 || flags&fstflagMtim != 0 && flags&fstflagMtimNow != 0 {
		return 0, 0, wasiEINVAL
	}
	now := func() int64 {
		if st := stateFrom(ctx); st != nil && st.walltime != nil {
			return st.walltime()
		}
		return fakeWalltime
	}
	pick := func(v int64, set, setNow uint16) int64 {
		switch {
		case flags&set != 0:
			return v
		case flags&setNow != 0:
			return now()
		}
		return sys.UTIME_OMIT
	}
	return pick(atim, fstflagAtim, fstflagAtimNow), pick(mtim, fstflagMtim, fstflagMtimNow), 0
}

func (l *wasiLayer) pathLink(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	if errno := t.translate(stack, []fdArg{{0, rightPathLinkSource}, {4, rightPathLinkTarget}}); errno != 0 {
		return errno
	}
	if uint16(stack[1])&lookupSymlinkFollow != 0 {
		return wasiEINVAL // linking a symlink's target: not supported
	}
	return l.call(ctx, "path_link", mod, stack)
}

// pathOpen is wazero's, with the new descriptor given the lowest free
// guest number and an entry with its rights.
func (l *wasiLayer) pathOpen(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	dir := t.get(uint32(stack[0]))
	oflags, base, inherit, fdflags, result := uint16(stack[4]), stack[5], stack[6], uint16(stack[7]), uint32(stack[8])
	right := uint64(rightPathOpen)
	if oflags&oflagCreat != 0 {
		right |= rightPathCreateFile
	}
	if oflags&oflagTrunc != 0 {
		right |= rightPathFilestatSetSize
	}
	if errno := t.translate(stack, []fdArg{{0, right}}); errno != 0 {
		return errno
	}
	name, nameErr := dir.resolve(mod, uint32(stack[2]), uint32(stack[3]))
	if errno := l.call(ctx, "path_open", mod, stack); errno != 0 {
		return errno
	}
	mem := mod.Memory()
	host, ok := mem.ReadUint32Le(result)
	if !ok {
		return wasiEFAULT // wazero wrote it there
	}
	e := &fdEntry{
		host:           int32(host),
		base:           base & dir.inherit,
		inherit:        inherit & dir.inherit,
		dropped:        dir.droppedInherit | ^base&(rightFdRead|rightFdWrite),
		droppedInherit: dir.droppedInherit,
		sync:           fdflags & syncFlags,
	}
	if oflags&oflagDirectory != 0 {
		// A directory has no file rights: refused, not passed to
		// wazero, which would let fd_allocate "succeed" on one.
		e.dropped |= notDirRights
	}
	if nameErr == 0 {
		e.fsys, e.name = dir.fsys, name
	}
	fd := t.add(e)
	if !mem.WriteUint32Le(result, fd) {
		return wasiEFAULT
	}
	return 0
}

// pathReadlink is wazero's, except that a buffer shorter than the link's
// target gets as much as fits (POSIX readlink) instead of ERANGE.
func (l *wasiLayer) pathReadlink(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	e := t.get(uint32(stack[0]))
	p, n, buf, bufLen, result := uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4]), uint32(stack[5])
	if errno := t.translate(stack, []fdArg{{0, rightPathReadlink}}); errno != 0 {
		return errno
	}
	errno := l.call(ctx, "path_readlink", mod, stack)
	if errno != wasiERANGE || e.fsys == nil {
		return errno
	}
	name, errno := e.resolve(mod, p, n)
	if errno != 0 {
		return errno
	}
	target, serr := e.fsys.Readlink(name)
	if serr != 0 {
		return errnoOf(serr)
	}
	target = target[:min(len(target), int(bufLen))]
	mem := mod.Memory()
	if !mem.WriteString(buf, target) || !mem.WriteUint32Le(result, uint32(len(target))) {
		return wasiEFAULT
	}
	return 0
}

// resolve returns the path that the guest's path p (n bytes in memory)
// names in e's mount, as wazero resolves it for e's directory: cleaned,
// a trailing slash kept, and inside the mount lexically (rootfs keeps it
// inside for real).
func (e *fdEntry) resolve(mod api.Module, p, n uint32) (string, uint64) {
	b, ok := mod.Memory().Read(p, n)
	if !ok {
		return "", wasiEFAULT
	}
	name := string(b)
	slash := strings.HasSuffix(name, "/")
	name = path.Clean(name)
	if !fs.ValidPath(name) {
		return "", errnoOf(sys.EPERM)
	}
	if slash {
		name += "/"
	}
	if e.preopen == "" {
		name = e.name + "/" + name
	}
	return name, 0
}

// pollOneoff answers at once for descriptors, which are always ready:
// reads of stdin and files, writes of stdout, stderr and files (a read of
// stdin may still wait for input). With only clock subscriptions it sleeps
// until the first of them is due, as the call's clock sleeps (not at all
// under the fake clock, whose time nobody waits for).
func (l *wasiLayer) pollOneoff(ctx context.Context, t *fdTable, mod api.Module, stack []uint64) uint64 {
	in, out, n, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if n == 0 {
		return wasiEINVAL
	}
	const subSize, eventSize = 48, 32
	if uint64(n)*subSize > 1<<32 {
		return wasiEFAULT
	}
	mem := mod.Memory()
	subs, ok := mem.Read(in, n*subSize)
	if !ok {
		return wasiEFAULT
	}
	events, ok := mem.Read(out, n*eventSize)
	if !ok {
		return wasiEFAULT
	}
	le := binary.LittleEndian
	const (
		typeClock   = 0
		typeFdRead  = 1
		typeFdWrite = 2
	)
	// First the descriptors; the earliest clock is the timeout.
	nevents := uint32(0)
	timeout := int64(-1)
	event := func(sub []byte, errno uint16) {
		ev := events[nevents*eventSize : (nevents+1)*eventSize]
		clear(ev)
		copy(ev[0:8], sub[0:8]) // userdata
		le.PutUint16(ev[8:], errno)
		ev[10] = sub[8] // type
		nevents++
	}
	for i := range n {
		sub := subs[i*subSize : (i+1)*subSize]
		switch sub[8] {
		case typeClock:
			// subscription_clock: id u32 at 16, timeout u64 at 24,
			// precision u64 at 32, flags u16 at 40.
			switch le.Uint16(sub[40:]) {
			case 0:
			case 1: // an absolute time: not supported, as in wazero
				return wasiENOTSUP
			default:
				return wasiEINVAL
			}
			if d := int64(le.Uint64(sub[24:])); timeout < 0 || d < timeout {
				timeout = max(d, 0)
			}
		case typeFdRead, typeFdWrite:
			var errno uint16
			if t.get(le.Uint32(sub[16:])) == nil {
				errno = wasiEBADF
			}
			event(sub, errno)
		default:
			return wasiEINVAL
		}
	}
	if nevents == 0 {
		if st := stateFrom(ctx); st != nil && st.sleep != nil && timeout > 0 {
			st.sleep(timeout)
		}
		for i := range n {
			sub := subs[i*subSize : (i+1)*subSize]
			if sub[8] == typeClock && int64(le.Uint64(sub[24:])) <= timeout {
				event(sub, 0)
			}
		}
	}
	if !mem.WriteUint32Le(result, nevents) {
		return wasiEFAULT
	}
	return 0
}

// sock: no sockets are ever granted.
func (l *wasiLayer) sock(_ context.Context, t *fdTable, _ api.Module, stack []uint64) uint64 {
	if t.get(uint32(stack[0])) == nil {
		return wasiEBADF
	}
	return wasiENOTSOCK
}

// errnoOf is the WASI errno of a sys.Errno from package rootfs.
func errnoOf(e sys.Errno) uint64 {
	switch e {
	case 0:
		return 0
	case sys.EACCES:
		return 2
	case sys.EAGAIN:
		return 6
	case sys.EBADF:
		return wasiEBADF
	case sys.EEXIST:
		return 20
	case sys.EFAULT:
		return wasiEFAULT
	case sys.EINTR:
		return 27
	case sys.EINVAL:
		return wasiEINVAL
	case sys.EISDIR:
		return 31
	case sys.ELOOP:
		return 32
	case sys.ENAMETOOLONG:
		return wasiENAMETOOLONG
	case sys.ENOENT:
		return 44
	case sys.ENOSYS:
		return 52
	case sys.ENOTDIR:
		return 54
	case sys.ENOTEMPTY:
		return 55
	case sys.ENOTSOCK:
		return wasiENOTSOCK
	case sys.ENOTSUP:
		return wasiENOTSUP
	case sys.ERANGE:
		return wasiERANGE
	case sys.EPERM:
		return 63
	case sys.EROFS:
		return 69
	}
	return wasiEIO
}
