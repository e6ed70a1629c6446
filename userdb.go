package spindle

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"os/user"
	"strings"
	"time"
)

// Looking up users and groups by name. A broker is built without cgo (a
// static binary starts faster, and the ones shipped to remote hosts must
// be static), so os/user reads /etc/passwd and /etc/group only and knows
// nothing of the machine's other name services (LDAP, SSSD, NIS). When it
// does not know a name, the lookup asks getent(1), which goes through the
// C library's name service switch as a cgo build would: a user the machine
// knows is found whatever the build.

// getentTimeout bounds one getent run: a name service that does not answer
// must not hold a child's start or a task.
const getentTimeout = 10 * time.Second

// getentPath is the getent the fallback runs, found on PATH.
var getentPath = "getent"

// lookupUser finds the user name: os/user, then getent passwd.
func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if !errors.As(err, new(user.UnknownUserError)) {
		return u, err
	}
	f, ok := getent("passwd", name, 7, 2)
	if !ok {
		return nil, err
	}
	return &user.User{Username: f[0], Uid: f[2], Gid: f[3], Name: f[4], HomeDir: f[5]}, nil
}

// lookupGroup finds the group name: os/user, then getent group.
func lookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if !errors.As(err, new(user.UnknownGroupError)) {
		return g, err
	}
	f, ok := getent("group", name, 3, 1)
	if !ok {
		return nil, err
	}
	return &user.Group{Name: f[0], Gid: f[2]}, nil
}

// getent returns the fields of name's entry in database, as getent prints
// it (one line, colon-separated: at least fields of them, of which ids,
// from the third, must be numbers), or false when getent is missing, fails
// (exit status 2: not found), or prints something else: the caller then
// reports os/user's error. A name that getent could read as an option or
// as several keys is not asked.
func getent(database, name string, fields, ids int) ([]string, bool) {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, " \t\n:") {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), getentTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, getentPath, database, name).Output()
	if err != nil {
		return nil, false
	}
	line, rest, _ := bytes.Cut(out, []byte("\n"))
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, false // more than one entry
	}
	f := strings.Split(string(line), ":")
	if len(f) < fields || f[0] != name {
		return nil, false
	}
	for _, id := range f[2 : 2+ids] {
		if !isDecimal(id) {
			return nil, false
		}
	}
	return f, true
}

func isDecimal(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
