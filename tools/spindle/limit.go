package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// limitEnv selects a hidden helper mode used by `spindle bench` to measure
// the machine's limits with raw blocking syscalls on the transport a local
// child gets (see spindle's childFDs): it reads a socketpair's end (fd 3) and
// writes a pipe's (fd 4). "pingpong" echoes every byte; "sink" reads total
// bytes, then acks.
const limitEnv = "SPINDLE_BENCH_LIMIT"

// maybeRunLimitHelper serves a limit helper mode and exits, if asked to.
func maybeRunLimitHelper() {
	mode := os.Getenv(limitEnv)
	if mode == "" {
		return
	}
	const in, out = 3, 4
	buf := make([]byte, 1<<20)
	switch mode {
	case "pingpong":
		for {
			n, err := unix.Read(in, buf[:1])
			if n <= 0 || err != nil {
				os.Exit(0)
			}
			if _, err := unix.Write(out, buf[:1]); err != nil {
				os.Exit(0)
			}
		}
	case "sink":
		total, _ := strconv.ParseInt(os.Getenv(limitEnv+"_BYTES"), 10, 64)
		var got int64
		for got < total {
			n, err := unix.Read(in, buf)
			if n <= 0 || err != nil {
				os.Exit(1)
			}
			got += int64(n)
		}
		_, _ = unix.Write(out, buf[:1])
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "spindle: unknown %s=%q\n", limitEnv, mode)
	os.Exit(2)
}

// limitPeer is a helper process at the other end of a blocking socketpair
// (down: we write wfd) and a pipe (up: we read rfd), sized as a local
// child's are.
type limitPeer struct {
	wfd, rfd int
	cmd      *exec.Cmd
}

func startLimitPeer(mode string, env ...string) (*limitPeer, error) {
	down, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var up [2]int
	if err := unix.Pipe2(up[:], unix.O_CLOEXEC); err != nil {
		unix.Close(down[0])
		unix.Close(down[1])
		return nil, err
	}
	for _, fd := range down {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	_, _ = unix.FcntlInt(uintptr(up[1]), unix.F_SETPIPE_SZ, 1<<20)
	childIn, childOut := os.NewFile(uintptr(down[1]), "limit-child-in"), os.NewFile(uintptr(up[1]), "limit-child-out")
	defer childIn.Close()
	defer childOut.Close()
	p := &limitPeer{wfd: down[0], rfd: up[0]}
	exe, err := os.Executable()
	if err != nil {
		p.closeFDs()
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), limitEnv+"="+mode), env...)
	cmd.ExtraFiles = []*os.File{childIn, childOut}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.closeFDs()
		return nil, err
	}
	p.cmd = cmd
	return p, nil
}

func (p *limitPeer) closeFDs() {
	unix.Close(p.wfd)
	unix.Close(p.rfd)
}

func (p *limitPeer) close() {
	p.closeFDs()
	_ = p.cmd.Wait()
}

// limitPingPong returns the round-trip times of 1-byte ping-pongs between
// two processes over a local child's transport, blocking syscalls, no runtime
// in the way.
func limitPingPong(n int) ([]time.Duration, error) {
	p, err := startLimitPeer("pingpong")
	if err != nil {
		return nil, err
	}
	defer p.close()
	b := []byte{1}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n+n/10; i++ {
		t0 := time.Now()
		if _, err := unix.Write(p.wfd, b); err != nil {
			return nil, err
		}
		if _, err := unix.Read(p.rfd, b); err != nil {
			return nil, err
		}
		if i >= n/10 { // the first tenth warms up
			out = append(out, time.Since(t0))
		}
	}
	return out, nil
}

// limitThroughput returns bytes/second for writing total bytes in 1 MiB
// writes to another process that reads and discards them, then acks.
func limitThroughput(total int64) (float64, error) {
	p, err := startLimitPeer("sink", limitEnv+"_BYTES="+strconv.FormatInt(total, 10))
	if err != nil {
		return 0, err
	}
	defer p.close()
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	for sent := int64(0); sent < total; {
		n, err := unix.Write(p.wfd, buf)
		if err != nil {
			return 0, err
		}
		sent += int64(n)
	}
	if _, err := unix.Read(p.rfd, buf[:1]); err != nil {
		return 0, err
	}
	return float64(total) / time.Since(t0).Seconds(), nil
}

func median[T cmp.Ordered](xs []T) T { return percentile(xs, 50) }

// percentile is the p-th percentile of xs (the lower one between two), of
// a sorted copy; the zero value when xs is empty.
func percentile[T cmp.Ordered](xs []T, p float64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p/100)]
}
