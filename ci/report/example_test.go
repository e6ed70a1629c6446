package report_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/spindle-hq/spindle/ci/report"
)

func Example() {
	tap := `TAP version 13
1..3
ok 1 - parses the plan
not ok 2 - reads the diagnostics
  ---
  message: "want 2, got 3"
  duration_ms: 1.5
  ...
ok 3 - skips # SKIP no network
`
	r, err := report.Parse(report.FormatTAP, strings.NewReader(tap), report.Options{Name: "tests.sh"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Summary())
	for _, t := range r.Packages[0].Tests {
		fmt.Printf("%s: %s %q\n", t.Name, t.Status, t.Message)
	}
	if err := r.WriteJUnit(os.Stdout, "ci"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1 passed, 1 failed, 1 skipped in 1 package
	// parses the plan: pass ""
	// reads the diagnostics: fail "want 2, got 3"
	// skips: skip "no network"
	// <?xml version="1.0" encoding="UTF-8"?>
	// <testsuites name="ci" tests="3" failures="1" errors="0" skipped="1" time="0.002">
	//   <testsuite name="tests.sh" tests="3" failures="1" errors="0" skipped="1" time="0.002">
	//     <testcase name="parses the plan" classname="tests.sh" time="0.000">
	//       <system-out>ok 1 - parses the plan
	// </system-out>
	//     </testcase>
	//     <testcase name="reads the diagnostics" classname="tests.sh" time="0.002">
	//       <failure message="want 2, got 3">not ok 2 - reads the diagnostics
	//   ---
	//   message: "want 2, got 3"
	//   duration_ms: 1.5
	//   ...
	// </failure>
	//     </testcase>
	//     <testcase name="skips" classname="tests.sh" time="0.000">
	//       <skipped message="no network"></skipped>
	//       <system-out>ok 3 - skips # SKIP no network
	// </system-out>
	//     </testcase>
	//     <system-out>TAP version 13
	// </system-out>
	//   </testsuite>
	// </testsuites>
}
