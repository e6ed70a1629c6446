package spindle_test

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/target"
)

// TestSSHConfigFile logs in through an ssh config file that alone knows the
// server's address, port, user, key and known hosts: the login works only
// if ssh read it. The file reaches a hop the master starts (the fleet's
// default), and a hop behind another machine only through its own
// config=, which names a file on that machine: the default is not sent
// there.
func TestSSHConfigFile(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	s := testutil.StartSSHD(t)
	ctx := taskContext(t)
	cleanBinaryCache(t, "/root")
	m, logs := newMaster(t, spindle.Config{CacheDir: sharedCache(), LogLevel: slog.LevelDebug})

	c, err := m.Start(ctx, spindle.ChildOptions{Method: "ssh", Host: testutil.SSHHost, SSHConfig: s.SSHConfig})
	if err != nil {
		t.Fatalf("ssh -F %s %s: %v", s.SSHConfig, testutil.SSHHost, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, spindle.ChildOptions{Method: "ssh", Host: testutil.SSHHost, Name: "no-config"}); !errors.Is(err, spindle.ErrChildStart) {
		t.Fatalf("ssh %s without the config file = %v, want a start error (the name resolves nowhere else)", testutil.SSHHost, err)
	}

	fl := spindle.NewFleet(m)
	fl.Defaults = target.Defaults{SSHConfig: s.SSHConfig}
	two, err := target.Parse("ssh://" + testutil.SSHHost + "/ssh://" + testutil.SSHHost + "?name=behind&config=" + s.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	behind, err := fl.Start(ctx, two)
	if err != nil {
		t.Fatalf("fleet start of %s: %v", two, err)
	}
	if err := behind.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// The second hop's ssh ran on the first hop's machine, with -F.
	if _, ok := logs.waitFor(10*time.Second, func(r logRecord) bool {
		return r.Msg == "starting child" && r.Attrs["child"] == "behind" && r.Attrs["context"] == "ssh."+testutil.SSHHost &&
			strings.HasPrefix(r.Attrs["cmd"], "ssh -F "+s.SSHConfig+" ")
	}); !ok {
		t.Errorf("no record of the second hop's ssh -F command from the first hop:%s", logs.dump())
	}
	bare, err := target.Parse("ssh://" + testutil.SSHHost + "/ssh://" + testutil.SSHHost + "?name=behind-bare")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Start(ctx, bare); !errors.Is(err, spindle.ErrChildStart) {
		t.Fatalf("a hop behind another machine without config= = %v, want a start error: the default file is not used there", err)
	}
}

// TestConnectTimeoutSilentServer: an ssh hop to a server that accepts and
// never answers ends at about its connect timeout, as the fleet's default
// or as the hop's own, with an error that says it timed out.
func TestConnectTimeoutSilentServer(t *testing.T) {
	testutil.VerifyNone(t)
	port := testutil.SilentServer(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: "-"})
	fl := spindle.NewFleet(m)
	fl.Defaults = target.Defaults{ConnectTimeout: 2 * time.Second, HostKeyCheck: "no"}
	for _, tt := range []string{
		"ssh://nobody@127.0.0.1:" + strconv.Itoa(port),                          // the default's 2 s
		"ssh://nobody@127.0.0.1:" + strconv.Itoa(port) + "?timeout=1s&name=own", // its own 1 s wins
	} {
		tg, err := target.Parse(tt)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			err error
			d   time.Duration
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			_, err := fl.Start(ctx, tg)
			done <- result{err, time.Since(start)}
		}()
		select {
		case r := <-done:
			if !errors.Is(r.err, spindle.ErrChildStart) || (!strings.Contains(r.err.Error(), "timeout") && !strings.Contains(r.err.Error(), "timed out")) {
				t.Errorf("%s: Start = %v, want a start error that says it timed out", tt, r.err)
			}
			t.Logf("%s: ended after %v: %v", tt, r.d.Round(time.Millisecond), r.err)
		case <-time.After(25 * time.Second):
			t.Fatalf("%s: Start still running after 25 s, with a connect timeout of 2 s", tt)
		}
	}
}

// TestBootstrapTrace: at spindle.LevelTrace each step of a start is
// logged, and the steps of a hop that a child starts reach the master's
// logger, tagged with that child.
func TestBootstrapTrace(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	s := testutil.StartSSHD(t)
	ctx := taskContext(t)
	cleanBinaryCache(t, "/root")
	m, logs := newMaster(t, spindle.Config{CacheDir: sharedCache(), LogLevel: spindle.LevelTrace})
	first, err := m.Start(ctx, sshOpts(s))
	if err != nil {
		t.Fatal(err)
	}
	hop2 := sshOpts(s)
	hop2.Name = "traced"
	if _, err := first.Start(ctx, hop2); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"starting child", "bootstrap: remote platform", "bootstrap: broker started on the remote",
		"handshake: hello sent", "handshake: hello acknowledged"} {
		for _, where := range []string{"", first.Name()} {
			if _, ok := logs.waitFor(10*time.Second, func(r logRecord) bool {
				child := r.Attrs["child"] == "traced"
				if where == "" {
					child = r.Attrs["child"] == first.Name()
				}
				return r.Msg == msg && child && r.Attrs["context"] == where
			}); !ok {
				t.Errorf("no %q record from context %q:%s", msg, where, logs.dump())
			}
		}
	}
	if len(logs.find(func(r logRecord) bool {
		return strings.HasPrefix(r.Msg, "bootstrap: ") && strings.Contains(r.Msg, "broker binary") && len(r.Attrs["sha256"]) == 64
	})) < 2 {
		t.Errorf("the binary's hash was not logged for both hops:%s", logs.dump())
	}
}
