package inspect

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseOSRelease(t *testing.T) {
	got := parseOSRelease([]byte("# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION='12 (bookworm)'\n" +
		"PRETTY_NAME=\"say \\\"hi\\\" \\$x\"\nBAD\n=x\n"))
	want := map[string]string{"NAME": "Debian GNU/Linux", "ID": "debian", "VERSION": "12 (bookworm)", "PRETTY_NAME": `say "hi" $x`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseOSRelease = %q, want %q", got, want)
	}
}

func TestCountRangeList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		ok   bool
	}{{"0", 1, true}, {"0-3", 4, true}, {"0-3,8,10-11", 7, true}, {"", 0, false}, {"3-1", 0, false}, {"a", 0, false}} {
		n, err := countRangeList(tt.in)
		if n != tt.want || (err == nil) != tt.ok {
			t.Errorf("countRangeList(%q) = %d, %v; want %d (ok %v)", tt.in, n, err, tt.want, tt.ok)
		}
	}
}

func TestUnoctal(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/x\134y`: `/x\y`, `/t\0`: `/t\0`, "/plain": "/plain", `\011`: "\t"} {
		if got := unoctal(in); got != want {
			t.Errorf("unoctal(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIPv4 attributes fib_trie's local addresses to interfaces by the
// longest link route (the text as Linux 6 writes it).
func TestIPv4(t *testing.T) {
	trie := `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 192.0.2.0/24 2 0 2
        |-- 192.0.2.0
           /24 link UNICAST
        |-- 192.0.2.2
           /32 host LOCAL
Local:
  +-- 127.0.0.0/8 2 0 2
     |-- 127.0.0.0
        /8 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 10.9.9.9
        /32 host LOCAL
`
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	addrs := localIPv4([]byte(trie))
	want := []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.9.9.9")}
	if !reflect.DeepEqual(addrs, want) {
		t.Errorf("localIPv4 = %v, want %v", addrs, want)
	}
	routes := parseRoutes([]byte(route))
	if len(routes) != 1 || routes[0].iface != "eth0" || routes[0].prefix != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("parseRoutes = %+v, want eth0's 192.0.2.0/24 (the default route has a gateway)", routes)
	}
	v6 := parseIfInet6([]byte("00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000002 02 40 00 80     eth0\nshort\n"))
	if len(v6) != 2 || v6[0].prefix.String() != "::1/128" || v6[1].iface != "eth0" || v6[1].prefix.String() != "fd00::2/64" {
		t.Errorf("parseIfInet6 = %+v", v6)
	}
}

func TestArchFromCPUInfo(t *testing.T) {
	for in, want := range map[string]string{
		"processor\t: 0\nflags\t\t: fpu vme lm sse\n": "x86_64",
		"processor\t: 0\nflags\t\t: fpu vme\n":        "i686",
		"processor\t: 0\nCPU architecture: 8\n":       "aarch64",
		"nothing\n":                                   "",
	} {
		if got := archFromCPUInfo([]byte(in)); got != want {
			t.Errorf("archFromCPUInfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStat natively: the battery's code on real files (spindle stat's
// tests run it in the sandbox).
func TestStat(t *testing.T) {
	dir := t.TempDir()
	body := []byte(strings.Repeat("x", 100))
	if err := os.WriteFile(filepath.Join(dir, "f"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	req := StatRequest{Paths: []StatPath{{Guest: filepath.Join(dir, "f"), Path: "/f"}, {Guest: filepath.Join(dir, "no"), Path: "/no"}}, Head: 3}
	lattrs := func(name string) (fs.FileMode, int, int, error) { return 0o755 | fs.ModeSetgid, 0, 42, nil }
	res, err := Stat(req, lattrs)
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Files[0]; f.Path != "/f" || !f.Exists || f.SHA256 != hex.EncodeToString(sum[:]) || f.Head != "xxx" || f.Size != 100 ||
		f.Mode != "02755" || f.UID == nil || *f.UID != 0 || f.GID == nil || *f.GID != 42 {
		t.Errorf("stat of f = %+v", f)
	}
	if f := res.Files[1]; f.Exists || f.Error != "" {
		t.Errorf("stat of a missing path = %+v, want absent and no error", f)
	}
	req.HashLimit = 99
	if res, _ := Stat(req, nil); res.Files[0].SHA256 != "" || !strings.Contains(res.Files[0].HashSkipped, "99 bytes") || res.Files[0].Head != "xxx" {
		t.Errorf("stat past the hash limit = %+v, want skipped, with the head", res.Files[0])
	}
	for _, bad := range []StatRequest{{Head: MaxHead + 1}, {Head: -1}, {Paths: make([]StatPath, MaxPaths+1)}} {
		if _, err := Stat(bad, nil); err == nil {
			t.Errorf("Stat(head %d, %d paths) = nil error", bad.Head, len(bad.Paths))
		}
	}
}
