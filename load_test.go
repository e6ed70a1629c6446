package spindle_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestManyCalls pipelines 10,000 calls across 10 contexts and checks every
// reply is its own.
func TestManyCalls(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	const contexts, perContext = 10, 1000
	cs := make([]*spindle.Context, contexts)
	errs := make([]error, contexts)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Go(func() {
			cs[i], errs[i] = m.StartLocal(ctx, spindle.LocalOptions{Name: fmt.Sprintf("w%d", i)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start w%d: %v", i, err)
		}
	}
	start := time.Now()
	failures := make([][]string, contexts)
	for i, c := range cs {
		wg.Go(func() {
			ps := make([]*spindle.PendingCall, perContext)
			for j := range ps {
				p, err := c.CallAsync(ctx, "echo", fmt.Sprintf("%d/%d", i, j))
				if err != nil {
					failures[i] = append(failures[i], fmt.Sprintf("CallAsync %d/%d: %v", i, j, err))
					return
				}
				ps[j] = p
			}
			for j, p := range ps {
				var got string
				if err := p.Wait(ctx, &got); err != nil || got != fmt.Sprintf("%d/%d", i, j) {
					failures[i] = append(failures[i], fmt.Sprintf("call %d/%d = %q, %v", i, j, got, err))
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls in %v", contexts*perContext, time.Since(start))
	for _, f := range failures {
		for k, s := range f {
			if k == 5 {
				t.Errorf("... %d more", len(f)-k)
				break
			}
			t.Error(s)
		}
	}
}
