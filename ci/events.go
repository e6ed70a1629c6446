package ci

import "time"

// The types of Event.
const (
	EventJobStarted   = "job_started"
	EventJobFinished  = "job_finished"
	EventStepStarted  = "step_started"
	EventLog          = "log"
	EventStepFinished = "step_finished"
	EventSummary      = "summary" // the last event of a run
	// EventTarget reports a context the run started, once per target, with
	// its OS layers in Line ("no_new_privs on; ...; landlock abi=7 ...
	// on", or "off (not started with Sandbox)").
	EventTarget = "target"
)

// Event is one thing that happened in a run, for people (the CLI prints
// them as they come) and for programs (`spindle ci --json` writes one JSON
// object per event). Every string in an event has had the secrets masked.
type Event struct {
	Type    string        `json:"type"`
	Elapsed time.Duration `json:"elapsed_ns"` // since the run started
	Job     string        `json:"job,omitempty"`
	Step    string        `json:"step,omitempty"`
	Target  string        `json:"target,omitempty"`
	// Stream is "stdout" or "stderr" and Line one line of it (without its
	// newline) for EventLog.
	Stream string `json:"stream,omitempty"`
	Line   string `json:"line,omitempty"`
	// Attempt counts the tries of a step (from 1); a retry on another
	// target after an infrastructure failure starts a new attempt.
	Attempt int `json:"attempt,omitempty"`
	// Result is the step's, for EventStepFinished; Status the job's, for
	// EventJobFinished.
	Result  *StepResult `json:"result,omitempty"`
	Status  Status      `json:"status,omitempty"`
	Summary *Summary    `json:"summary,omitempty"`
}
