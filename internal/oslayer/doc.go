// Package oslayer confines the calling process with the operating system's
// own mechanisms, as a second wall under the wasm sandbox: a process that
// runs untrusted guests applies it once, so that a bug that lets a guest out
// of wazero still finds a process that cannot gain privileges, open more
// than a bounded number of descriptors, dump core, or touch files outside
// the directories it was given.
//
// Apply sets, in this order:
//
//   - no_new_privs (prctl PR_SET_NO_NEW_PRIVS), on every thread: execve
//     can no longer grant privileges (setuid bits, file capabilities), and
//     Landlock may then be enforced without CAP_SYS_ADMIN;
//   - rlimits: RLIMIT_NOFILE to Config.MaxFiles, RLIMIT_CORE to 0,
//     RLIMIT_FSIZE to Config.MaxFileBytes, each as both soft and hard limit,
//     so the process cannot raise them again (without CAP_SYS_RESOURCE);
//   - Landlock: file access only below the listed paths, with the rights
//     each list grants (Config), on every thread. Paths that do not exist
//     are skipped and named in the report: skipping one only ever takes
//     access away.
//
// RLIMIT_NPROC is deliberately left alone: it counts threads, not
// processes, of the whole real user (every process of that user on the
// machine), and the Go runtime starts OS threads whenever it needs them
// (blocked syscalls, GC workers); a refused clone is a fatal runtime error,
// not an error the program sees. What a confined process may start is
// governed instead by Landlock's execute right: Config.Exec.
//
// Each layer that cannot be applied (an old kernel, Landlock disabled at
// boot, a limit above the hard limit) is reported as off with the reason;
// nothing is skipped silently. Apply never fails as a whole: the caller
// reads the Report and decides.
//
// Linux only.
//
// # Lifecycle
//
// Apply is irreversible and process-wide: every thread of the process, and
// every process it starts afterwards, keeps the restrictions for the rest of
// its life. Call it once, from a process that exists to be confined (a
// child context), never from a library that shares its process with code
// that did not ask for it. A second call can only restrict further
// (Landlock domains stack, limits only go down).
//
// While RLIMIT_FSIZE is set, SIGXFSZ is ignored for the whole process, so a
// write past the limit fails with EFBIG instead of killing the process.
//
// # Concurrency
//
// Apply may be called from any goroutine; other goroutines keep running
// while it works, and are confined when it returns. Config and Report are
// plain values.
package oslayer
