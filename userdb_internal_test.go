package spindle

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// A name os/user does not know is asked of getent, which answers from the
// machine's name services (LDAP, SSSD) as a cgo build's lookup would. A
// fake getent stands in for a directory server: it knows ldapuser and
// ldapgroup, and logs how it was called.
func TestLookupFallsBackToGetent(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := `#!/bin/sh
echo "$@" >> ` + log + `
case "$1 $2" in
"passwd ldapuser") echo "ldapuser:*:5001:5002:LDAP User:/home/ldapuser:/bin/sh" ;;
"group ldapgroup") echo "ldapgroup:*:6001:ldapuser,other" ;;
"passwd twolines") printf 'twolines:x:1:1::/:/bin/sh\ntwolines:x:2:2::/:/bin/sh\n' ;;
"passwd othername") echo "someoneelse:x:7:7::/:/bin/sh" ;;
"passwd badid") echo "badid:x:12a:7::/:/bin/sh" ;;
"group short") echo "short:x" ;;
*) exit 2 ;;
esac
`
	fake := filepath.Join(dir, "getent")
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	old := getentPath
	getentPath = fake
	t.Cleanup(func() { getentPath = old })

	u, err := lookupUser("ldapuser")
	if err != nil || u.Uid != "5001" || u.Gid != "5002" || u.HomeDir != "/home/ldapuser" || u.Name != "LDAP User" {
		t.Errorf("lookupUser(ldapuser) = %+v, %v", u, err)
	}
	g, err := lookupGroup("ldapgroup")
	if err != nil || g.Gid != "6001" || g.Name != "ldapgroup" {
		t.Errorf("lookupGroup(ldapgroup) = %+v, %v", g, err)
	}
	if id, err := lookupID("ldapuser", false); err != nil || id != 5001 {
		t.Errorf("lookupID(ldapuser) = %d, %v", id, err)
	}

	// What getent does not answer, or answers oddly, is os/user's
	// unknown name, named in the error.
	for _, name := range []string{"nobody-at-all", "twolines", "othername", "badid"} {
		_, err := lookupUser(name)
		if !errors.As(err, new(user.UnknownUserError)) {
			t.Errorf("lookupUser(%s) = %v, want os/user's UnknownUserError", name, err)
		}
	}
	if _, err := lookupGroup("short"); !errors.As(err, new(user.UnknownGroupError)) {
		t.Errorf("lookupGroup(short) = %v, want UnknownGroupError", err)
	}
	// A name getent would read as an option or as several keys is not
	// asked at all.
	for _, name := range []string{"-s", "a b", "a:b", ""} {
		if _, err := lookupUser(name); err == nil {
			t.Errorf("lookupUser(%q) found someone", name)
		}
	}
	// A user os/user knows is not asked of getent.
	if u, err := lookupUser("root"); err != nil || u.Uid != "0" {
		t.Errorf("lookupUser(root) = %+v, %v", u, err)
	}
	calls, _ := os.ReadFile(log)
	want := "passwd ldapuser\ngroup ldapgroup\npasswd ldapuser\npasswd nobody-at-all\npasswd twolines\npasswd othername\npasswd badid\ngroup short\n"
	if string(calls) != want {
		t.Errorf("getent was run as:\n%s\nwant:\n%s", calls, want)
	}

	// Without getent, the unknown name is os/user's error.
	getentPath = filepath.Join(dir, "missing")
	if _, err := lookupUser("ldapuser"); !errors.As(err, new(user.UnknownUserError)) || !strings.Contains(err.Error(), "ldapuser") {
		t.Errorf("without getent: %v", err)
	}
}

// The real getent, where the machine has one: root is found either way,
// and an unknown name is still unknown.
func TestLookupRealGetent(t *testing.T) {
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("no getent on this machine")
	}
	if f, ok := getent("passwd", "root", 7, 2); !ok || f[2] != "0" {
		t.Errorf("getent passwd root = %q, %v", f, ok)
	}
	if _, ok := getent("passwd", "no-such-user-here", 7, 2); ok {
		t.Error("getent found no-such-user-here")
	}
}
