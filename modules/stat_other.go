//go:build !linux

package modules

import "io/fs"

// statKeyOf memoizes nothing off Linux: the fields it needs are spelled
// differently on each system.
func statKeyOf(fs.FileInfo) (statKey, bool) { return statKey{}, false }
