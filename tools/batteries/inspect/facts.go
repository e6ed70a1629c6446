package inspect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// MaxFileBytes bounds what is read of any one file; MaxItems the length
// of every list in Facts.
const (
	MaxFileBytes = 4 << 20
	MaxItems     = 10000
)

// Facts is what the facts battery gathers on one machine. Its fields are
// empty when they could not be read; Missing then says which and why.
type Facts struct {
	Hostname   string      `msgpack:"hostname" json:"hostname"`
	Domain     string      `msgpack:"domain" json:"domain"`
	MachineID  string      `msgpack:"machine_id" json:"machine_id"`
	OS         OSRelease   `msgpack:"os" json:"os"`
	Kernel     Kernel      `msgpack:"kernel" json:"kernel"`
	Arch       string      `msgpack:"arch" json:"arch"`
	CPU        CPU         `msgpack:"cpu" json:"cpu"`
	Memory     Memory      `msgpack:"memory" json:"memory"`
	Disks      []Disk      `msgpack:"disks" json:"disks"`
	Mounts     []Mount     `msgpack:"mounts" json:"mounts"`
	Interfaces []Interface `msgpack:"interfaces" json:"interfaces"`
	// UptimeSeconds is the time since boot; BootTime its start, in Unix
	// seconds.
	UptimeSeconds float64    `msgpack:"uptime_seconds" json:"uptime_seconds"`
	BootTime      int64      `msgpack:"boot_time" json:"boot_time"`
	Load          [3]float64 `msgpack:"load" json:"load"` // 1, 5 and 15 minutes
	Users         []User     `msgpack:"users" json:"users"`
	// Missing names each fact (by its JSON name, "os", "interfaces.ipv4")
	// that is empty or cut short, with the reason.
	Missing []Missing `msgpack:"missing" json:"missing"`
}

// OSRelease is the distribution, from os-release(5).
type OSRelease struct {
	ID         string `msgpack:"id" json:"id"`
	IDLike     string `msgpack:"id_like" json:"id_like"`
	Name       string `msgpack:"name" json:"name"`
	Version    string `msgpack:"version" json:"version"`
	VersionID  string `msgpack:"version_id" json:"version_id"`
	PrettyName string `msgpack:"pretty_name" json:"pretty_name"`
}

// Kernel is what uname -s, -r and -v say.
type Kernel struct {
	Name    string `msgpack:"name" json:"name"`
	Release string `msgpack:"release" json:"release"`
	Version string `msgpack:"version" json:"version"`
}

// CPU is the processors: how many are online, and their model.
type CPU struct {
	Count int    `msgpack:"count" json:"count"`
	Model string `msgpack:"model" json:"model"`
}

// Memory is /proc/meminfo's totals, in bytes.
type Memory struct {
	TotalBytes     uint64 `msgpack:"total_bytes" json:"total_bytes"`
	AvailableBytes uint64 `msgpack:"available_bytes" json:"available_bytes"`
	SwapTotalBytes uint64 `msgpack:"swap_total_bytes" json:"swap_total_bytes"`
	SwapFreeBytes  uint64 `msgpack:"swap_free_bytes" json:"swap_free_bytes"`
}

// Disk is a block device of /sys/block.
type Disk struct {
	Name       string `msgpack:"name" json:"name"`
	SizeBytes  uint64 `msgpack:"size_bytes" json:"size_bytes"`
	Model      string `msgpack:"model" json:"model"`
	Rotational bool   `msgpack:"rotational" json:"rotational"`
	Removable  bool   `msgpack:"removable" json:"removable"`
}

// Mount is a line of /proc/self/mounts.
type Mount struct {
	Device  string `msgpack:"device" json:"device"`
	Path    string `msgpack:"path" json:"path"`
	FSType  string `msgpack:"fstype" json:"fstype"`
	Options string `msgpack:"options" json:"options"`
}

// Interface is a network interface of /sys/class/net and its addresses,
// as CIDR prefixes (192.0.2.7/24).
type Interface struct {
	Name  string   `msgpack:"name" json:"name"`
	MAC   string   `msgpack:"mac" json:"mac"`
	MTU   int      `msgpack:"mtu" json:"mtu"`
	State string   `msgpack:"state" json:"state"` // operstate: up, down, unknown, ...
	IPv4  []string `msgpack:"ipv4" json:"ipv4"`
	IPv6  []string `msgpack:"ipv6" json:"ipv6"`
}

// User is an account of /etc/passwd.
type User struct {
	Name  string `msgpack:"name" json:"name"`
	UID   int    `msgpack:"uid" json:"uid"`
	GID   int    `msgpack:"gid" json:"gid"`
	Home  string `msgpack:"home" json:"home"`
	Shell string `msgpack:"shell" json:"shell"`
}

// Missing is a fact that could not be had, and why.
type Missing struct {
	Field  string `msgpack:"field" json:"field"`
	Reason string `msgpack:"reason" json:"reason"`
}

// FactsMounts are the directories the facts battery reads, each to be
// granted read-only at the same path in the guest.
var FactsMounts = []string{"/etc", "/proc", "/sys", "/usr/lib"}

// Gather reads every fact of the machine it runs on, from the absolute
// paths of the package doc. It never fails: what it cannot read is empty
// and listed in Missing.
func Gather() Facts {
	g := &gatherer{}
	f := &g.f
	f.Hostname = g.line("hostname", "/proc/sys/kernel/hostname", "/etc/hostname")
	if d := g.lineOpt("/proc/sys/kernel/domainname"); d != "(none)" {
		f.Domain = d
	}
	f.MachineID = g.line("machine_id", "/etc/machine-id")
	g.osRelease()
	f.Kernel.Name = g.line("kernel.name", "/proc/sys/kernel/ostype")
	f.Kernel.Release = g.line("kernel.release", "/proc/sys/kernel/osrelease")
	f.Kernel.Version = g.line("kernel.version", "/proc/sys/kernel/version")
	cpuinfo, cpuErr := readFile("/proc/cpuinfo")
	g.arch(cpuinfo, cpuErr)
	g.cpu(cpuinfo, cpuErr)
	g.memory()
	g.disks()
	g.mounts()
	g.interfaces()
	g.uptime()
	g.users()
	return g.f
}

// gatherer fills one Facts.
type gatherer struct{ f Facts }

func (g *gatherer) miss(field string, format string, args ...any) {
	g.f.Missing = append(g.f.Missing, Missing{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// line is the first line of the first of files that can be read and is
// not empty; else field is missing.
func (g *gatherer) line(field string, files ...string) string {
	var why []string
	for _, p := range files {
		b, err := readFile(p)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if s := firstLine(b); s != "" {
			return s
		}
		why = append(why, p+": empty")
	}
	g.miss(field, "%s", strings.Join(why, "; "))
	return ""
}

// lineOpt is the first line of p, or "" (not missing: an optional fact).
func (g *gatherer) lineOpt(p string) string {
	b, _ := readFile(p)
	return firstLine(b)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}

// readFile reads p until EOF, at most MaxFileBytes: a procfs file stats
// as size 0, so its size says nothing. The error names p.
func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err // *PathError: names p
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes", p, MaxFileBytes)
	}
	return b, nil
}

func (g *gatherer) osRelease() {
	var why []string
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := readFile(p)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		kv := parseOSRelease(b)
		g.f.OS = OSRelease{ID: kv["ID"], IDLike: kv["ID_LIKE"], Name: kv["NAME"], Version: kv["VERSION"],
			VersionID: kv["VERSION_ID"], PrettyName: kv["PRETTY_NAME"]}
		return
	}
	g.miss("os", "%s", strings.Join(why, "; "))
}

// parseOSRelease reads os-release(5)'s KEY=VALUE lines, VALUE quoted or
// not (shell quoting: "..." with \", \\, \$ and \` escapes, or '...').
func parseOSRelease(b []byte) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.HasPrefix(l, "#") || k == "" {
			continue
		}
		switch {
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = v[1 : len(v)-1]
			var sb strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
				}
				sb.WriteByte(v[i])
			}
			v = sb.String()
		}
		m[k] = v
	}
	return m
}

func (g *gatherer) arch(cpuinfo []byte, cpuErr error) {
	if a := g.lineOpt("/proc/sys/kernel/arch"); a != "" {
		g.f.Arch = a
		return
	}
	if cpuErr != nil {
		g.miss("arch", "/proc/sys/kernel/arch not there (Linux before 6.1); %v", cpuErr)
		return
	}
	if a := archFromCPUInfo(cpuinfo); a != "" {
		g.f.Arch = a
		return
	}
	g.miss("arch", "/proc/sys/kernel/arch not there (Linux before 6.1), and /proc/cpuinfo does not say")
}

// archFromCPUInfo guesses uname -m from /proc/cpuinfo, for kernels
// without /proc/sys/kernel/arch.
func archFromCPUInfo(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "flags":
			if slices.Contains(strings.Fields(v), "lm") {
				return "x86_64"
			}
			return "i686"
		case k == "CPU architecture" && v == "8":
			return "aarch64"
		case k == "CPU architecture" && strings.HasPrefix(v, "7"):
			return "armv7l"
		case k == "isa" && strings.HasPrefix(v, "rv64"):
			return "riscv64"
		case k == "cpu" && strings.HasPrefix(v, "POWER"):
			return "ppc64le"
		}
	}
	return ""
}

func (g *gatherer) cpu(cpuinfo []byte, cpuErr error) {
	processors := 0
	for _, l := range strings.Split(string(cpuinfo), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			processors++
		case "model name", "Model", "cpu model":
			if g.f.CPU.Model == "" {
				g.f.CPU.Model = strings.TrimSpace(v)
			}
		}
	}
	b, err := readFile("/sys/devices/system/cpu/online")
	if err == nil {
		if n, perr := countRangeList(firstLine(b)); perr == nil {
			g.f.CPU.Count = n
			return
		} else {
			err = fmt.Errorf("/sys/devices/system/cpu/online: %w", perr)
		}
	}
	if processors > 0 {
		g.f.CPU.Count = processors
		return
	}
	g.miss("cpu.count", "%v; /proc/cpuinfo: %v", err, cmpErr(cpuErr, "no processor lines"))
}

func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// countRangeList counts the members of a sysfs range list ("0-3,8,10-11").
func countRangeList(s string) (int, error) {
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("range list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("range list %q: bad range %q", s, part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

func (g *gatherer) memory() {
	b, err := readFile("/proc/meminfo")
	if err != nil {
		g.miss("memory", "%v", err)
		return
	}
	kb := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fs[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fs) > 1 && fs[1] == "kB" {
			n *= 1024
		}
		kb[k] = n
	}
	g.f.Memory = Memory{TotalBytes: kb["MemTotal"], AvailableBytes: kb["MemAvailable"],
		SwapTotalBytes: kb["SwapTotal"], SwapFreeBytes: kb["SwapFree"]}
	if kb["MemTotal"] == 0 {
		g.miss("memory.total_bytes", "/proc/meminfo has no MemTotal")
	}
}

// dirNames lists dir, sorted, at most MaxItems names; field is missing
// (or cut short) otherwise.
func (g *gatherer) dirNames(field, dir string) []string {
	f, err := os.Open(dir)
	if err != nil {
		g.miss(field, "%v", err)
		return nil
	}
	defer f.Close()
	names, err := f.Readdirnames(MaxItems + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		g.miss(field, "list %s: %v", dir, err)
		return nil
	}
	if len(names) > MaxItems {
		names = names[:MaxItems]
		g.miss(field, "%s: more than %d entries, the rest left out", dir, MaxItems)
	}
	slices.Sort(names)
	return names
}

func (g *gatherer) disks() {
	for _, name := range g.dirNames("disks", "/sys/block") {
		d := Disk{Name: name}
		dir := path.Join("/sys/block", name)
		if b, err := readFile(dir + "/size"); err == nil {
			sectors, _ := strconv.ParseUint(firstLine(b), 10, 64)
			d.SizeBytes = sectors * 512 // sysfs counts 512-byte sectors whatever the device's own
		}
		d.Model = g.lineOpt(dir + "/device/model")
		d.Rotational = g.lineOpt(dir+"/queue/rotational") == "1"
		d.Removable = g.lineOpt(dir+"/removable") == "1"
		g.f.Disks = append(g.f.Disks, d)
	}
}

func (g *gatherer) mounts() {
	b, err := readFile("/proc/self/mounts")
	if err != nil {
		g.miss("mounts", "%v", err)
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 4 {
			continue
		}
		if len(g.f.Mounts) == MaxItems {
			g.miss("mounts", "more than %d, the rest left out", MaxItems)
			break
		}
		g.f.Mounts = append(g.f.Mounts, Mount{Device: unoctal(fs[0]), Path: unoctal(fs[1]), FSType: unoctal(fs[2]), Options: unoctal(fs[3])})
	}
}

// unoctal undoes the \ooo escapes of /proc/self/mounts (space is \040).
func unoctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

func (g *gatherer) interfaces() {
	names := g.dirNames("interfaces", "/sys/class/net")
	byName := map[string]*Interface{}
	for _, name := range names {
		dir := path.Join("/sys/class/net", name)
		it := Interface{Name: name, MAC: g.lineOpt(dir + "/address"), State: g.lineOpt(dir + "/operstate")}
		it.MTU, _ = strconv.Atoi(g.lineOpt(dir + "/mtu"))
		g.f.Interfaces = append(g.f.Interfaces, it)
	}
	for i := range g.f.Interfaces {
		byName[g.f.Interfaces[i].Name] = &g.f.Interfaces[i]
	}
	if b, err := readFile("/proc/net/if_inet6"); err != nil {
		g.miss("interfaces.ipv6", "%v", err)
	} else {
		for _, a := range parseIfInet6(b) {
			if it := byName[a.iface]; it != nil && len(it.IPv6) < MaxItems {
				it.IPv6 = append(it.IPv6, a.prefix.String())
			}
		}
	}
	trie, err := readFile("/proc/net/fib_trie")
	if err != nil {
		g.miss("interfaces.ipv4", "%v", err)
		return
	}
	route, err := readFile("/proc/net/route")
	if err != nil {
		g.miss("interfaces.ipv4", "%v", err)
		return
	}
	routes := parseRoutes(route)
	var lost []string
	for _, a := range localIPv4(trie) {
		iface, bits := "", -1
		for _, r := range routes {
			if r.prefix.Contains(a) && r.prefix.Bits() > bits {
				iface, bits = r.iface, r.prefix.Bits()
			}
		}
		if iface == "" && a.IsLoopback() {
			for _, it := range g.f.Interfaces {
				if it.MAC == "00:00:00:00:00:00" || it.Name == "lo" {
					iface, bits = it.Name, 8
					break
				}
			}
		}
		it := byName[iface]
		if it == nil {
			lost = append(lost, a.String())
			continue
		}
		if len(it.IPv4) < MaxItems {
			it.IPv4 = append(it.IPv4, netip.PrefixFrom(a, bits).String())
		}
	}
	if len(lost) > 0 {
		g.miss("interfaces.ipv4", "no link route in /proc/net/route says the interface of %s", strings.Join(lost, ", "))
	}
}

type inet6 struct {
	iface  string
	prefix netip.Prefix
}

// parseIfInet6 reads /proc/net/if_inet6: address (32 hex digits), ifindex,
// prefix length, scope, flags (all hex) and the interface's name.
func parseIfInet6(b []byte) []inet6 {
	var out []inet6
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 6 || len(fs[0]) != 32 {
			continue
		}
		var a [16]byte
		ok := true
		for i := range a {
			n, err := strconv.ParseUint(fs[0][2*i:2*i+2], 16, 8)
			ok = ok && err == nil
			a[i] = byte(n)
		}
		bits, err := strconv.ParseUint(fs[2], 16, 8)
		if !ok || err != nil || bits > 128 {
			continue
		}
		out = append(out, inet6{iface: fs[5], prefix: netip.PrefixFrom(netip.AddrFrom16(a), int(bits))})
	}
	return out
}

type route4 struct {
	iface  string
	prefix netip.Prefix
}

// parseRoutes reads the link routes (no gateway) of /proc/net/route, whose
// destination and mask are 32-bit hex numbers in the host's byte order
// (little-endian on every architecture spindle ships for).
func parseRoutes(b []byte) []route4 {
	const rtfGateway = 0x2
	var out []route4
	for _, l := range strings.Split(string(b), "\n")[1:] {
		fs := strings.Fields(l)
		if len(fs) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(fs[1], 16, 32)
		flags, err2 := strconv.ParseUint(fs[3], 16, 32)
		mask, err3 := strconv.ParseUint(fs[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || flags&rtfGateway != 0 || mask == 0 {
			continue
		}
		le := func(v uint64) netip.Addr {
			return netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
		}
		bits := 0
		for m := uint32(mask); m != 0; m &= m - 1 {
			bits++
		}
		p, err := le(dst).Prefix(bits)
		if err != nil {
			continue
		}
		out = append(out, route4{iface: fs[0], prefix: p})
	}
	return out
}

// localIPv4 is the machine's own IPv4 addresses: the "|-- A.B.C.D" leaves
// of /proc/net/fib_trie followed by a "/32 host LOCAL" line, each once, in
// order.
func localIPv4(b []byte) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var last netip.Addr
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(l, "|-- "); ok {
			last, _ = netip.ParseAddr(a)
			continue
		}
		if strings.HasPrefix(l, "/32 host LOCAL") && last.Is4() && !seen[last] && len(out) < MaxItems {
			seen[last] = true
			out = append(out, last)
		}
	}
	return out
}

func (g *gatherer) uptime() {
	if b, err := readFile("/proc/uptime"); err != nil {
		g.miss("uptime_seconds", "%v", err)
	} else if fs := strings.Fields(string(b)); len(fs) > 0 {
		g.f.UptimeSeconds, _ = strconv.ParseFloat(fs[0], 64)
	}
	if b, err := readFile("/proc/stat"); err != nil {
		g.miss("boot_time", "%v", err)
	} else {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "btime "); ok {
				g.f.BootTime, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	if b, err := readFile("/proc/loadavg"); err != nil {
		g.miss("load", "%v", err)
	} else if fs := strings.Fields(string(b)); len(fs) >= 3 {
		for i := range 3 {
			g.f.Load[i], _ = strconv.ParseFloat(fs[i], 64)
		}
	}
}

func (g *gatherer) users() {
	b, err := readFile("/etc/passwd")
	if err != nil {
		g.miss("users", "%v", err)
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Split(l, ":")
		if len(fs) < 7 || strings.HasPrefix(l, "#") {
			continue
		}
		if len(g.f.Users) == MaxItems {
			g.miss("users", "more than %d in /etc/passwd, the rest left out", MaxItems)
			break
		}
		uid, err1 := strconv.Atoi(fs[2])
		gid, err2 := strconv.Atoi(fs[3])
		if err1 != nil || err2 != nil {
			continue
		}
		g.f.Users = append(g.f.Users, User{Name: fs[0], UID: uid, GID: gid, Home: fs[5], Shell: fs[6]})
	}
}
