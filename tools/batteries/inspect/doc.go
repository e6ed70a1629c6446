// Package inspect is what the facts and stat batteries (tools/batteries/facts,
// tools/batteries/stat) gather, and how: the typed results the wasm modules
// return and spindle facts and spindle stat decode, and the readers that
// fill them from /etc, /proc, /sys and the granted directories. The same
// code runs inside the sandbox (GOOS=wasip1) and natively (its tests).
//
// Nothing here runs a program or needs a host function: every fact is read
// from a file through WASI preview 1, in mounts the verb grants read-only.
//
// # What comes from where (the facts battery)
//
//	hostname     /proc/sys/kernel/hostname (the UTS name, as uname -n), else /etc/hostname
//	domain       /proc/sys/kernel/domainname ("(none)" is empty)
//	machine_id   /etc/machine-id
//	os           /etc/os-release, else /usr/lib/os-release (os-release(5))
//	kernel       /proc/sys/kernel/{ostype,osrelease,version} (uname -s, -r, -v)
//	arch         /proc/sys/kernel/arch (Linux 6.1 and later: uname -m), else
//	             guessed from /proc/cpuinfo ("lm" flag: x86_64, "CPU architecture: 8": aarch64)
//	cpu          /sys/devices/system/cpu/online (a range list: the online CPUs,
//	             as getconf _NPROCESSORS_ONLN), else the processor lines of
//	             /proc/cpuinfo; the model from /proc/cpuinfo
//	memory       /proc/meminfo (MemTotal, MemAvailable, SwapTotal, SwapFree)
//	disks        /sys/block/NAME/{size (512-byte sectors), queue/rotational,
//	             removable, device/model}
//	mounts       /proc/self/mounts (the mounts the context's process sees)
//	interfaces   /sys/class/net/NAME/{address,mtu,operstate}; IPv6 from
//	             /proc/net/if_inet6; IPv4 from the local addresses of
//	             /proc/net/fib_trie, each given to the interface (and prefix)
//	             of the longest matching link route in /proc/net/route
//	             (127.0.0.0/8 to the loopback interface)
//	uptime       /proc/uptime; boot_time from /proc/stat (btime); load from /proc/loadavg
//	users        /etc/passwd (name, uid, gid, home, shell)
//
// # What these files read like through the sandbox
//
// Files are opened through host/internal/rootfs (os.Root), so what reaches
// the guest differs from a native read in these ways, each handled here:
//
//   - procfs files stat as regular files of size 0 and hold their text only
//     when read: every file is read until EOF (bounded by MaxFileBytes),
//     never to its stated size.
//   - sysfs attributes stat as 4096 bytes and read as their short value.
//   - Symlinks are followed only while they stay inside their mount:
//     /proc/self (to the pid of the context's process), /proc/mounts and
//     /proc/net (to self/...), and /sys/class/net/NAME and /sys/block/NAME
//     (to ../../devices/...) all resolve; /etc/os-release, usually
//     ../usr/lib/os-release, leaves /etc and fails (EPERM), which is why the
//     verb also grants /usr/lib read-only.
//   - WASI preview 1 has no statvfs, no uname, no getuid: the size and free
//     space of a mount, and who the context runs as, cannot be had. They are
//     not fields here.
//
// A fact that cannot be read is left empty and named in Facts.Missing with
// its reason; it never fails the whole run.
//
// # Bounds
//
// Each file is read up to MaxFileBytes (4 MiB); lists are cut at MaxItems
// (10,000 mounts, users, disks, interfaces or addresses each), which is
// then noted in Missing. The stat battery hashes a regular file only up to
// the size its caller allows (StatRequest.HashLimit) and returns at most
// MaxHead bytes of a file's head.
//
// # Concurrency
//
// Gather and Stat are safe to call from several goroutines; they hold no
// state between calls.
package inspect
