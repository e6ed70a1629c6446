package ci

import (
	"io"

	"github.com/spindle-hq/spindle/ci/report"
)

// WriteJUnit writes the test reports of the run's steps as one JUnit XML
// document: a test suite per package, named "JOB/STEP: PACKAGE".
func WriteJUnit(w io.Writer, sum *Summary) error {
	all := &report.Report{}
	for _, s := range sum.Steps {
		if s.Report == nil {
			continue
		}
		for _, p := range s.Report.Packages {
			p.Name = s.Job + "/" + s.Step + ": " + p.Name
			all.Packages = append(all.Packages, p)
		}
		all.Truncated = all.Truncated || s.Report.Truncated
	}
	return all.WriteJUnit(w, "spindle ci")
}

// failedTests reports whether a report holds a failed test or package.
func failedTests(r *report.Report) bool {
	for _, p := range r.Packages {
		if p.Fail > 0 || p.Status == report.StatusFail {
			return true
		}
	}
	return false
}
