package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// isProgram reports whether p is a regular file someone may execute.
func isProgram(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// execChunk is a piece of a program's output, or (data nil) the end of
// one of its streams.
type execChunk struct {
	stream int
	data   []byte
}

// run starts argv[0] in a process group of its own, with stdin from
// /dev/null, and passes its output to take until both of its streams end.
// The group is killed with SIGKILL when the program exits (whatever it
// left running in the group goes with it), when timeout passes, when ctx
// (the call's) ends, or when passing the output on fails. The leader is
// reaped only after its group is killed, so the group's ID cannot have
// been reused when the signal is sent.
func (r *execRun) run(ctx context.Context, argv, env []string, dir string, timeout time.Duration) error {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	proc, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Dir: dir, Env: env, Files: []*os.File{null, outW, errW},
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return fmt.Errorf("start %s: %w", argv[0], unwrapPathError(err))
	}
	pid := proc.Pid
	r.res.Pid = pid

	chunks := make(chan execChunk, 4)
	for i, f := range []*os.File{outR, errR} {
		go readPipe(f, i+1, chunks)
	}
	exited := make(chan error, 1)
	go func() { exited <- waitNoReap(pid) }()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var grace <-chan time.Time
	open, leaderGone, killed := 2, false, false
	kill := func() {
		if !killed {
			killed = true
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	for open > 0 || !leaderGone {
		select {
		case c := <-chunks:
			if c.data == nil {
				open--
				continue
			}
			r.take(c.stream, c.data)
			if r.stopErr != nil {
				kill()
			}
		case <-exited:
			leaderGone = true
			exited = nil
			kill() // what it left in its group
			grace = time.After(execGrace)
		case <-timer.C:
			if !leaderGone {
				r.res.TimedOut = true
			}
			kill()
		case <-ctx.Done():
			kill()
			if grace == nil {
				grace = time.After(execGrace)
			}
		case <-grace:
			// Something that left the group holds the pipes: stop
			// reading (the readers end once the pipes close).
			outR.Close()
			errR.Close()
			grace = nil
		}
	}
	outR.Close()
	errR.Close()
	ps, werr := proc.Wait()
	if werr != nil {
		return fmt.Errorf("wait %s: %w", argv[0], werr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.res.Exit = -1
		r.res.Signal = unix.SignalName(ws.Signal())
		if r.res.Signal == "" {
			r.res.Signal = ws.Signal().String()
		}
	} else {
		r.res.Exit = ps.ExitCode()
	}
	if r.stopErr != nil {
		return fmt.Errorf("output not passed on, process group killed: %w", r.stopErr)
	}
	if ctx.Err() != nil && !r.res.TimedOut {
		return fmt.Errorf("the call ended, process group killed: %w", context.Cause(ctx))
	}
	return nil
}

// readPipe sends what f gives as chunks of at most 32 KiB, then a nil
// chunk at its end.
func readPipe(f *os.File, stream int, chunks chan<- execChunk) {
	for {
		buf := make([]byte, OutputChunkBytes)
		n, err := f.Read(buf)
		if n > 0 {
			chunks <- execChunk{stream, buf[:n]}
		}
		if err != nil {
			chunks <- execChunk{stream: stream}
			return
		}
	}
}

// waitNoReap waits until pid has exited, leaving it a zombie (WNOWAIT) so
// that its process group ID stays taken until proc.Wait reaps it.
func waitNoReap(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
