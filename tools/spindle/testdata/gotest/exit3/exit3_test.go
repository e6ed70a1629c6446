package exit3

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	fmt.Println("exiting with status 3")
	os.Exit(3)
}

func TestNeverRuns(t *testing.T) {}
