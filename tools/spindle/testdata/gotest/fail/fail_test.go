package fail

import "testing"

func TestPasses(t *testing.T) {}

func TestFails(t *testing.T) { t.Error("this test fails on purpose") }
