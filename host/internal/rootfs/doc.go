// Package rootfs gives a wazero guest a host directory it cannot get out of:
// an implementation of wazero's experimental/sys.FS on top of [os.Root].
//
// wazero's own WithDirMount and WithReadOnlyDirMount are not a jail. They
// join strings and call os.OpenFile, so a relative symlink inside the mount
// (`link -> ../SECRET`), whether the host left it there or the guest made
// it, leads to files outside. Here every path is resolved by [os.Root],
// component by component with openat and O_NOFOLLOW, so neither `..` nor
// symlinks (relative, absolute, pre-existing or made by the guest) can
// reach anything outside the directory given to [New]. Such an attempt
// fails with sys.EPERM. The package tests run one guest against this FS and
// against WithDirMount to show the difference.
//
// Mount it with
//
//	fsys, err := rootfs.New(dir, false)
//	...
//	cfg := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fsys, "/data")
//	modCfg := wazero.NewModuleConfig().WithFSConfig(cfg)
//
// # What it guarantees, and what it does not
//
// Guaranteed: every path-based operation (open, stat, lstat, readlink,
// mkdir, rmdir, unlink, rename, link, symlink, chmod, utimens) acts on a
// file inside the root. Absolute symlink targets are refused when the guest
// creates a link (EPERM) and never followed. Relative targets may be
// created, as POSIX allows, but following one out of the root fails.
// Permission bits passed to Chmod are masked to 0o777: the guest cannot
// make setuid, setgid or sticky files. In read-only mode nothing can be
// changed (EROFS).
//
// Files and directories are made with the modes [FileMode] (0o644) and
// [DirMode] (0o755), less the host process's umask, whatever mode the
// caller passes: WASI preview 1 has no mode argument, so the mode wazero
// passes (0o600, 0o700) is its own choice, not the guest's, and would
// leave what a task makes in a mount unreadable to everyone but the
// host's user. 0o644 rather than 0o666: a sandboxed guest does not make
// group- or world-writable files, whatever the umask.
//
// A mount's Made ([FS.SetMade]) grants an exact mode and an owner to what
// the guest makes. [FS.Regrant] gives the same, and nothing else, to an
// entry already there (the host's path_regrant); [FS.Attrs] reads an
// entry's permission bits and owner (path_attrs), which WASI preview 1's
// filestat lacks.
//
// Not guaranteed, and up to the host:
//   - Hard links, bind mounts and mount points placed inside the directory
//     by the host are followed like any file: prepare the directory so it
//     holds only what the guest may see.
//   - After the guest has run, the directory may hold symlinks that point
//     anywhere (`x -> ../../etc/shadow`). Host code that later reads it must
//     not follow them: use [os.Root] or [os.Lstat], never a plain copy.
//   - What the guest writes is bounded by a [Disk] budget, counted
//     conservatively (below), but the host's file system is not consulted:
//     the budgets of all calls together must fit on it.
//   - Root.Chmod and Root.Chtimes may, under a race with a concurrent
//     rename, apply to a symlink's target instead of the entry looked at
//     (Regrant) or to a symlink instead of its target; the file they touch
//     is still inside the root.
//
// # Bounds
//
// Open files: an FS holds at most DefaultMaxOpenFiles (256) host
// descriptors for the guest's open files, or shares the bound of a [Files]
// with other FSs ([NewShared]: the host gives all mounts of one call one
// Files). An open past the bound fails with sys.EAGAIN (wazero's errnos have
// no EMFILE) and other FSs, other calls, are not affected. The root's own
// descriptor is not counted.
//
// Disk: what the guest writes through an FS spends a [Disk] budget,
// DefaultDiskBytes (1 GiB) of its own, or shared with other FSs
// ([NewShared]: the host gives all mounts of one call one Disk). Every byte
// written counts, overwrites included, and so do the holes of writes past
// the end, the growth of truncates, and EntryBytes (4 KiB) for each file,
// directory or link made; nothing is given back. A write that only partly
// fits is short; then writes and creates fail with sys.EIO, and the Disk
// records the refusal ([Disk.Refused]) so that the host can tell the guest
// ENOSPC, which wazero's errnos do not have. A write costs an lseek more than
// it would, and an fstat when it may start past the end.
//
// Files that are not regular: every open adds O_NONBLOCK (on Linux), so that
// opening a FIFO never waits for a writer or reader, and then a file that is
// neither a regular file nor a directory (a FIFO, socket or device) is
// closed again and the open fails with sys.ENOTSUP. A guest thus never
// blocks the host in open, and reads and writes only reach regular files.
// Off Linux, opening a FIFO may block.
//
// # Virtual directories
//
// [Virtual] is a read-only directory with no host file behind it: [NewEmpty]
// for the host to mount at "/", so that a path outside every mount is
// ENOENT (without a preopen that holds it, a guest's libc passes no
// directory and the guest sees EBADF) and cannot be made (EROFS), and
// [NewDev] for /dev, which holds null: writes succeed and are dropped,
// reads give EOF, as /dev/null. Their open files count against a Files
// bound too.
//
// # Errors
//
// Every method returns a sys.Errno. Errors from the os package map as
// sys.UnwrapOSError does (fs.ErrNotExist to ENOENT, a syscall.Errno to the
// same name, and so on). os.Root's "path escapes from parent" error, which
// otherwise would become EIO, becomes EPERM; ENXIO (a FIFO
// without a reader, a socket) becomes ENOTSUP. Anything else unknown is EIO,
// and so is a write or create past the Disk budget (see Bounds).
//
// # Concurrency
//
// An *FS is safe for concurrent use, and may be shared by several module
// instances. A file it opens is used by one module instance at a time, as
// wazero does; only its Close may be called from another goroutine
// concurrently with the other methods (wazero closes a module's files from
// whichever goroutine closes the module). A [Files], a [Disk] and a
// [Virtual] are safe for concurrent use.
//
// # Lifecycle
//
// The host calls [New] and owns the result. wazero never closes a sys.FS,
// so the host calls [FS.Close] itself, after every module instance that
// mounts the FS has been closed. Files already open stay usable after
// [FS.Close]; new path operations fail with EBADF. A [Virtual] holds
// nothing to close.
package rootfs
