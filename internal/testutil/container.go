package testutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnginesEnv names the environment variable that lists, separated by
// spaces or commas, the container engines this machine must run for real
// ("podman docker"); .ci/run sets it. A container test whose engine is
// listed fails when the engine cannot start a container; one whose engine
// is not listed skips, saying how to run it.
const EnginesEnv = "SPINDLE_CONTAINER_ENGINES"

const (
	ctrScript  = "tools/ctrimage.sh"
	ctrTimeout = 3 * time.Minute // bound on one run of the script (it bounds each engine command itself)
)

// Container is a running container that StartContainer started for one
// test, from the local image tools/ctrimage.sh builds (busybox, no libc,
// no network). It is removed when the test ends. Its fields are set by
// StartContainer and must not be changed; its methods may be called from
// the test's goroutine only.
type Container struct {
	Engine string // "podman", "docker", or "podman-rootless" (podman run as UnprivUser)
	Name   string // the container's name
	Image  string // the image's tag
	t      testing.TB
}

// dockerd is the private dockerd that StartContainer started, shared by
// every docker test of the process and stopped by StopEngines. It is
// package state because it must outlive any one test.
var dockerd struct {
	mu      sync.Mutex
	host    string // guarded by mu; DOCKER_HOST of the engine, "" for docker's default
	checked bool   // guarded by mu; docker answers (at host)
	started bool   // guarded by mu; this process started it: StopEngines stops it
}

// RequireEngine skips t unless engine is listed in EnginesEnv, and fails
// it unless the test runs as root (the containers are rootful, but for
// podman-rootless, whose podman root runs as UnprivUser).
func RequireEngine(t testing.TB, engine string) {
	t.Helper()
	listed := strings.FieldsFunc(os.Getenv(EnginesEnv), func(r rune) bool { return r == ' ' || r == ',' })
	if !slices.Contains(listed, engine) {
		t.Skipf("testutil: %s is not in %s=%q: set %s=%s to run this test against a real engine (.ci/run does; tools/testdeps.sh ensure installs it)",
			engine, EnginesEnv, os.Getenv(EnginesEnv), EnginesEnv, engine)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("testutil: %s is in %s but the test is not root: the container tests run the engine as root", engine, EnginesEnv)
	}
}

// StartContainer starts container name on engine ("podman", "docker", or
// "podman-rootless": podman run as UnprivUser, a rootless container)
// from the test image, and removes it when the test ends. It skips t as
// RequireEngine does, and fails t with the script's one line (the engine's
// own error) when the engine cannot run a container here. For docker with
// no engine answering, it starts a private dockerd (see
// tools/ctrimage.sh) and sets DOCKER_HOST for the test; StopEngines
// stops it.
func StartContainer(t testing.TB, engine, name string) *Container {
	t.Helper()
	RequireEngine(t, engine)
	if engine == "podman-rootless" {
		UnprivilegedUser(t)
	}
	if engine == "docker" {
		host, err := dockerHost()
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		if host != "" {
			t.Setenv("DOCKER_HOST", host)
		}
	}
	c := &Container{Engine: engine, Name: name, t: t}
	// The script removes a container of the same name (left by a killed
	// run) first.
	out, err := runScript("run", engine, name)
	t.Cleanup(c.Remove)
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	c.Image = out
	return c
}

// dockerHost starts a private dockerd unless docker answers, once per
// process, and returns the DOCKER_HOST to use ("" for docker's default).
func dockerHost() (string, error) {
	dockerd.mu.Lock()
	defer dockerd.mu.Unlock()
	if dockerd.checked {
		return dockerd.host, nil
	}
	out, err := runScript("dockerd", "start")
	if err != nil {
		return "", err
	}
	// "DOCKER_HOST=unix://... started" when it started one; nothing when
	// docker's default engine answers.
	if f := strings.Fields(out); len(f) > 0 {
		dockerd.host = strings.TrimPrefix(f[0], "DOCKER_HOST=")
		dockerd.started = len(f) > 1 && f[1] == "started"
	}
	dockerd.checked = true
	return dockerd.host, nil
}

// StopEngines stops the private dockerd StartContainer started, if it did.
// Call it from TestMain after m.Run.
func StopEngines() {
	dockerd.mu.Lock()
	defer dockerd.mu.Unlock()
	if dockerd.started {
		_, _ = runScript("dockerd", "stop")
	}
	dockerd.checked, dockerd.started, dockerd.host = false, false, ""
}

// runScript runs tools/ctrimage.sh with args and returns its output, or an
// error holding its one line.
func runScript(args ...string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ctrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, ctrScript), args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		line := strings.TrimSpace(stderr.String())
		if line == "" {
			line = err.Error()
		}
		return "", fmt.Errorf("%s %s: %s", ctrScript, strings.Join(args, " "), line)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Exec runs argv in the container and returns its combined output.
func (c *Container) Exec(argv ...string) (string, error) {
	return c.run(append([]string{"exec", c.Name}, argv...)...)
}

// run runs the engine with args and returns its combined output.
func (c *Container) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Engine, args...)
	if c.Engine == "podman-rootless" {
		// As tools/ctrimage.sh's eng runs it.
		home := "/home/" + UnprivUser
		if u, err := user.Lookup(UnprivUser); err == nil {
			home = u.HomeDir
		}
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", UnprivUser, "--", "env", "-i",
			"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "podman"}, args...)...)
		cmd.Dir = "/"
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", c.Engine, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Procs lists the processes in the container other than its init (the
// sleep that keeps it up) and the ps that lists them, one "PID ARGS" a
// line.
func (c *Container) Procs() ([]string, error) {
	out, err := c.Exec("ps", "-o", "pid,args")
	if err != nil {
		return nil, err
	}
	var procs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] == "1" || (f[1] == "ps" && slices.Contains(f, "pid,args")) {
			continue
		}
		procs = append(procs, strings.Join(f, " "))
	}
	return procs, nil
}

// Stop stops the container (its processes are killed); it stays, stopped.
func (c *Container) Stop() {
	c.t.Helper()
	args := []string{"stop", "-t", "0", c.Name}
	if _, err := c.run(args...); err != nil {
		c.t.Fatalf("testutil: %v", err)
	}
}

// Remove removes the container at once, running or not. It is safe to
// call more than once.
func (c *Container) Remove() {
	args := []string{"rm", "-f", c.Name}
	if c.Engine != "docker" {
		args = []string{"rm", "-f", "-t", "0", c.Name}
	}
	if out, err := c.run(args...); err != nil && !strings.Contains(strings.ToLower(out), "no such container") {
		c.t.Errorf("testutil: %v", err)
	}
}

// HostPID returns the host's PID of the container's init.
func (c *Container) HostPID() (int, error) {
	out, err := c.run("inspect", "--format", "{{.State.Pid}}", c.Name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}
