package spindle_test

import (
	"context"
	"errors"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/target"
	"github.com/vmihailenco/msgpack/v5"
)

// The container tests run against a real engine, rootful, with a
// container started from the busybox image tools/ctrimage.sh builds (no
// libc, no network): they run when SPINDLE_CONTAINER_ENGINES names the
// engine (.ci/run sets it), and then fail, with the engine's own error in
// one line, if it cannot start a container. The broker is the static
// spindle binary (testutil.BuildBroker): the test binary is linked against
// libc, which the image lacks.

func TestContainerPodman(t *testing.T) { testContainer(t, "podman") }
func TestContainerDocker(t *testing.T) { testContainer(t, "docker") }

// helloIn runs the example hello task in c and checks its greeting.
func helloIn(t *testing.T, ctx context.Context, c *spindle.Context, mod string) {
	t.Helper()
	res, err := c.Run(ctx, spindle.Task{Module: mod, Task: "hello", Input: mustPack(t, map[string]string{"name": c.Name()})})
	if err != nil {
		t.Fatalf("Run(hello) in %s: %v", c, err)
	}
	var out struct {
		Greeting string `msgpack:"greeting"`
	}
	if err := msgpack.Unmarshal(res.Output, &out); err != nil || out.Greeting != "hello, "+c.Name() {
		t.Fatalf("hello in %s = %q (%v), want greeting %q", c, res.Output, err, "hello, "+c.Name())
	}
}

// noProcsLeft fails t unless the container has no process but its init,
// waiting a little for the brokers' exits.
func noProcsLeft(t *testing.T, ctr *testutil.Container, after string) {
	t.Helper()
	var procs []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		var err error
		if procs, err = ctr.Procs(); err != nil {
			t.Fatalf("processes in %s %s: %v", ctr.Engine, ctr.Name, err)
		}
		if len(procs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(procs) != 0 {
		t.Errorf("after %s, the container still runs %q", after, procs)
	}
}

// testContainer: a task runs in a real container through ENGINE://NAME, the
// broker binary is sent once and then found in the container's cache,
// local:a/ENGINE://NAME reaches it through a local context, shutting the
// contexts down leaves no process in the container, and a stopped and then
// a removed container fail with a classified start error.
func testContainer(t *testing.T, engine string) {
	testutil.VerifyNone(t)
	name := "spindle-test-" + engine
	ctr := testutil.StartContainer(t, engine, name)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{Executable: testutil.BuildBroker(t), CacheDir: sharedCache()})
	hello := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/hello", true))

	c, err := m.Start(ctx, spindle.ChildOptions{Method: engine, Container: name})
	if err != nil {
		t.Fatal(err)
	}
	if !c.SentBinary() {
		t.Errorf("first start in a new container did not send the broker binary")
	}
	if c.Name() != engine+"."+name {
		t.Errorf("context name = %q, want %q", c.Name(), engine+"."+name)
	}
	helloIn(t, ctx, c, hello)
	st := stats(t, ctx, c)
	if st.UID != 0 || st.Compiles != 1 {
		t.Errorf("stats in the container = uid %d, %d compiles; want uid 0 (the container's root), 1 compile", st.UID, st.Compiles)
	}
	// The broker runs inside the container: its PID there is the one it
	// reports (the host's PID of it differs, in the container's PID
	// namespace).
	if out, err := ctr.Exec("cat", "/proc/"+strconv.Itoa(st.PID)+"/cmdline"); err != nil || !strings.Contains(out, "__spindle_child__") {
		t.Errorf("PID %d in the container is %q (%v), want the broker", st.PID, out, err)
	}
	cached, err := ctr.Exec("ls", "/root/.cache/spindle/bin")
	if err != nil || len(strings.Fields(cached)) != 1 || !strings.HasPrefix(cached, "spindle-") {
		t.Errorf("the container's binary cache holds %q (%v), want one spindle-HASH", cached, err)
	}

	again, err := m.Start(ctx, spindle.ChildOptions{Method: engine, Container: name, Name: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if again.SentBinary() {
		t.Error("second start in the container sent the binary again")
	}
	helloIn(t, ctx, again, hello)

	// Through a local context: local:a runs the engine's exec itself.
	tgt, err := target.Parse("local:a/" + engine + "://" + name + "?name=via-a")
	if err != nil {
		t.Fatal(err)
	}
	via, err := m.StartTarget(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	if via.SentBinary() {
		t.Error("the start through local:a sent the binary again (the container's cache has it)")
	}
	helloIn(t, ctx, via, hello)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	noProcsLeft(t, ctr, "the master closed")

	// A stopped container, then a removed one: classified start errors,
	// nothing left behind.
	m2, _ := newMaster(t, spindle.Config{Executable: testutil.BuildBroker(t), CacheDir: sharedCache()})
	ctr.Stop()
	startFails(t, ctx, m2, engine, name, spindle.ClassUnreachable, "stopped")
	ctr.Remove()
	startFails(t, ctx, m2, engine, name, spindle.ClassUnreachable, "removed")
	if got := m2.Router().Routes(); len(got) != 0 {
		t.Errorf("routes after failed starts: %v", got)
	}
}

// startFails starts ENGINE://NAME and checks that it fails with a
// StartError of class want.
func startFails(t *testing.T, ctx context.Context, m *spindle.Master, engine, name string, want spindle.StartClass, state string) {
	t.Helper()
	start := time.Now()
	_, err := m.Start(ctx, spindle.ChildOptions{Method: engine, Container: name})
	var se *spindle.StartError
	if !errors.As(err, &se) || se.Class != want || !errors.Is(err, spindle.ErrChildStart) {
		t.Errorf("start in a %s container = %v, want a StartError of class %s", state, err, want)
		return
	}
	if want == spindle.ClassUnreachable && !errors.Is(err, spindle.ErrUnreachable) {
		t.Errorf("start in a %s container = %v, does not match ErrUnreachable", state, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("start in a %s container took %v to fail", state, d)
	}
	t.Logf("%s container: %v", state, err)
}

// TestContainerPodmanRootless: a rootless container (podman run by the
// unprivileged user, in its own storage) reached as an operator without
// root reaches it, through a context running as that user:
// sudo://USER/podman://NAME. The broker is root inside the container and
// the unprivileged user outside it.
func TestContainerPodmanRootless(t *testing.T) {
	testutil.VerifyNone(t)
	name := "spindle-test-rootless"
	ctr := testutil.StartContainer(t, "podman-rootless", name)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{Executable: testutil.BuildBroker(t), CacheDir: sharedCache()})
	hello := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/hello", true))
	tgt, err := target.Parse("sudo://" + testutil.UnprivUser + "/podman://" + name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.StartTarget(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	helloIn(t, ctx, c, hello)
	if st := stats(t, ctx, c); st.UID != 0 {
		t.Errorf("the broker's uid in the rootless container = %d, want 0 (the container's root)", st.UID)
	}
	// Outside, the container's processes are the unprivileged user's.
	u, err := user.Lookup(testutil.UnprivUser)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := ctr.HostPID()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nUid:\t"+u.Uid+"\t") {
		t.Errorf("the container's init (host PID %d) is not %s's (uid %s):\n%s", pid, u.Username, u.Uid, status)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	noProcsLeft(t, ctr, "the master closed")
}

// TestContainerChains reaches a podman container through ssh (the
// loopback sshd), so the ssh context runs podman exec itself, and runs a
// task there; then the contexts' shutdown leaves no process in it.
//
// The sshd stays in the test's PID namespace (StartSSHDHostPID), as a
// real one does: from the new PID namespace StartSSHD puts it in, runc
// cannot setns into the container's ("nsexec-1: failed to setns into pid
// namespace: Invalid argument": setns needs the target namespace to be
// the caller's own or a descendant of it).
func TestContainerChains(t *testing.T) {
	testutil.VerifyNone(t)
	testutil.RequireEngine(t, "podman")
	s := testutil.StartSSHDHostPID(t)
	cleanBinaryCache(t, "/root")
	name := "spindle-test-chain"
	ctr := testutil.StartContainer(t, "podman", name)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{Executable: testutil.BuildBroker(t), CacheDir: sharedCache()})
	hello := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/hello", true))
	tgt, err := target.Parse("ssh://" + testutil.SSHHost + "?config=" + s.SSHConfig + "/podman://" + name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.StartTarget(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	if !c.SentBinary() {
		t.Error("the first start in a new container, through ssh, did not send the binary")
	}
	if c.Parent() == 0 {
		t.Errorf("%s's parent is the master, want the ssh context", c)
	}
	helloIn(t, ctx, c, hello)
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	noProcsLeft(t, ctr, "its context shut down")
}
