package guest

import "testing"

func TestYieldPolicy(t *testing.T) {
	var y yieldPolicy
	yields := 0
	marking := 0 // yields left until the "GC cycle" ends
	mark := func() bool { return marking > 0 }
	yield := func() {
		yields++
		if marking > 0 {
			marking--
		}
	}
	for range yieldEvery - 1 {
		y.after(mark, yield)
	}
	if yields != 0 {
		t.Fatalf("%d yields in %d idle calls, want 0", yields, yieldEvery-1)
	}
	y.after(mark, yield)
	if yields != 1 {
		t.Fatalf("%d yields after %d idle calls, want 1", yields, yieldEvery)
	}
	marking = 3
	y.after(mark, yield)
	if yields != 4 || marking != 0 {
		t.Fatalf("a marking call: %d yields, %d left, want 4 and 0", yields, marking)
	}
	marking = maxYields + 10
	y.after(mark, yield)
	if yields != 4+maxYields {
		t.Fatalf("a long cycle: %d yields, want at most %d", yields-4, maxYields)
	}
}
