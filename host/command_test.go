package host_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

func TestCommand(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	cmd := compile(t, h, "ccommand")
	gocmd := compile(t, h, "gocmd")
	tests := []struct {
		name       string
		m          *host.Module
		call       host.Call
		wantCode   int
		wantStdout []string // each in stdout
		wantStderr string
	}{
		{
			name: "args env stdin exit code",
			m:    cmd,
			call: host.Call{
				Task:   "prog",
				Args:   []string{"5", "two words"},
				Stdin:  strings.NewReader("from stdin\n"),
				Grants: host.Grants{Env: map[string]string{"FOO": "bar"}},
			},
			wantCode:   5,
			wantStdout: []string{"arg prog\narg 5\narg two words\n", "FOO=bar\n", "from stdin\n"},
			wantStderr: "bye\n",
		},
		{
			name:       "defaults",
			m:          cmd,
			call:       host.Call{},
			wantStdout: []string{"arg main\nFOO=(unset)\n"},
			wantStderr: "bye\n",
		},
		{
			name:     "go exit code",
			m:        gocmd,
			call:     host.Call{Args: []string{"sandbox", "exit:3"}},
			wantCode: 3,
			wantStdout: []string{
				"year=2022\n",
			},
		},
		{
			name:       "go exit 0",
			m:          gocmd,
			call:       host.Call{Args: []string{"exit:0"}},
			wantStdout: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			tt.call.Stdout, tt.call.Stderr = &stdout, &stderr
			res, err := h.Run(t.Context(), tt.m, tt.call)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d", res.ExitCode, tt.wantCode)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout = %q, want it to hold %q", stdout.String(), want)
				}
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestCommandOutputLimit(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "ccommand")
	var stdout bytes.Buffer
	start := time.Now()
	_, err := h.Run(t.Context(), m, host.Call{
		Args:   []string{"flood"},
		Stdout: &stdout,
		Limits: host.Limits{OutputBytes: 64 << 10, Timeout: 10 * time.Second},
	})
	if host.KindOf(err) != host.KindOutputLimit {
		t.Fatalf("Run = %v, want kind output_limit", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the flood should end at the limit, not the timeout", d)
	}
	if stdout.Len() > 64<<10 {
		t.Errorf("stdout got %d bytes, limit %d", stdout.Len(), 64<<10)
	}
	// Discarded output is not limited: the flood runs to its timeout.
	_, err = h.Run(t.Context(), m, host.Call{
		Args:   []string{"flood"},
		Limits: host.Limits{OutputBytes: 64 << 10, Timeout: 200 * time.Millisecond},
	})
	if host.KindOf(err) != host.KindTimeout {
		t.Fatalf("Run without Stdout = %v, want kind timeout", err)
	}
}
