package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
)

// sshResult holds the ssh figures of `spindle bench`.
type sshResult struct {
	SpawnSSHColdMs float64 `json:"spawn_ssh_cold_ms"`
	SpawnSSHWarmMs float64 `json:"spawn_ssh_warm_ms"`
	RTTSSHUs       float64 `json:"rtt_ssh_us"`
	FanoutSSHMs    float64 `json:"fanout_ssh_ms"`
	BareSSHMs      float64 `json:"bare_ssh_ms"` // `ssh host true`, the transport's own cost, for comparison
}

// sshBenchOpts parses --ssh [USER@]HOST[:PORT] into child options.
func sshBenchOpts(spec, identity string, opts []string) (spindle.ChildOptions, string, error) {
	o := spindle.ChildOptions{Method: "ssh", Identity: identity, SSHOptions: opts}
	hostport := spec
	if u, rest, ok := strings.Cut(spec, "@"); ok {
		o.User, hostport = u, rest
	}
	o.Host = hostport
	port := "22"
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		o.Host, port = h, p
		n, err := strconv.Atoi(p)
		if err != nil {
			return o, "", fmt.Errorf("--ssh %q: bad port", spec)
		}
		o.Port = n
	}
	return o, net.JoinHostPort(o.Host, port), nil
}

// sshArgv is the plain ssh command line for the same destination.
func sshArgv(o spindle.ChildOptions, cmd string) []string {
	argv := []string{"ssh", "-o", "BatchMode=yes"}
	if o.Port != 0 {
		argv = append(argv, "-p", strconv.Itoa(o.Port))
	}
	if o.User != "" {
		argv = append(argv, "-l", o.User)
	}
	if o.Identity != "" {
		argv = append(argv, "-i", o.Identity)
	}
	for _, opt := range o.SSHOptions {
		argv = append(argv, "-o", opt)
	}
	return append(argv, o.Host, cmd)
}

func benchSSH(ctx context.Context, m *spindle.Master, o spindle.ChildOptions, scale int) (*sshResult, error) {
	res := &sshResult{}
	rounds := max(10/scale, 2)
	run := func(cmd string) error {
		argv := sshArgv(o, cmd)
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%q: %v: %s", argv, err, out)
		}
		return nil
	}
	var bare []time.Duration
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		if err := run("true"); err != nil {
			return nil, err
		}
		bare = append(bare, time.Since(t0))
	}
	res.BareSSHMs = ms(median(bare))
	var cold, warm []time.Duration
	for i := 0; i < rounds; i++ {
		// Cold: empty the remote cache first, so the binary is sent.
		if err := run(`rm -f "${XDG_CACHE_HOME:-$HOME/.cache}"/spindle/bin/spindle-*`); err != nil {
			return nil, err
		}
		for _, out := range []*[]time.Duration{&cold, &warm} {
			t0 := time.Now()
			c, err := m.Start(ctx, o)
			if err != nil {
				return nil, err
			}
			if err := c.Ping(ctx); err != nil {
				return nil, err
			}
			*out = append(*out, time.Since(t0))
			if (out == &cold) != c.SentBinary() {
				return nil, fmt.Errorf("start %d: sent binary = %v", i, c.SentBinary())
			}
			if err := c.Shutdown(ctx); err != nil {
				return nil, err
			}
		}
	}
	res.SpawnSSHColdMs, res.SpawnSSHWarmMs = ms(median(cold)), ms(median(warm))

	c, err := m.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	rtts, err := roundTrips(ctx, m.Router(), c.ID(), 5000/scale)
	if err != nil {
		return nil, err
	}
	res.RTTSSHUs = us(median(rtts))
	_ = c.Shutdown(ctx)

	// Fan-out: 20 contexts over ssh at once, each called.
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	kids := make([]*spindle.Context, 20)
	for i := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			oi := o
			oi.Name = fmt.Sprintf("ssh%d", i)
			kids[i], errs[i] = m.Start(ctx, oi)
			if errs[i] == nil {
				errs[i] = kids[i].Ping(ctx)
			}
		}()
	}
	wg.Wait()
	res.FanoutSSHMs = ms(time.Since(t0))
	for i, k := range kids {
		if k != nil {
			_ = k.Shutdown(ctx)
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
	}
	return res, nil
}

// sshReachable reports whether something accepts TCP connections at addr.
func sshReachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
