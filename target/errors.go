package target

import "errors"

// Sentinel errors. Check them with errors.Is.
var (
	// ErrInvalid is returned by Parse for a malformed target string, and is
	// wrapped by inventory errors caused by a malformed target= or via=.
	ErrInvalid = errors.New("target: invalid target")

	// ErrPassword is returned, together with ErrInvalid, for a target string
	// that carries a password (password=, or user:password@). Passwords are
	// given with -K on the command line or through the Go API, never in a
	// target string, so that they stay out of shell history, process
	// listings, inventory files and logs. The error text never contains the password.
	ErrPassword = errors.New("target: password in target string")

	// ErrInventory is returned by ParseInventory and LoadInventory for a
	// malformed inventory; the text names the line.
	ErrInventory = errors.New("target: invalid inventory")

	// ErrUnknown is returned by Inventory.Resolve for a name that is
	// neither a host nor a group of the inventory.
	ErrUnknown = errors.New("target: unknown host or group")

	// ErrPattern is returned by Inventory.Select for a malformed host
	// pattern.
	ErrPattern = errors.New("target: invalid host pattern")
)

// parseError is a syntax error in a target string. It matches ErrInvalid,
// and ErrPassword when password is set. msg never contains a password.
type parseError struct {
	msg      string
	password bool
}

func (e *parseError) Error() string { return e.msg }

func (e *parseError) Is(target error) bool {
	return target == ErrInvalid || (e.password && target == ErrPassword)
}
