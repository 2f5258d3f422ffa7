//go:build unix

package origin

import (
	"os"
	"syscall"
)

// openFlags opens served files. O_NONBLOCK keeps open(2) of a FIFO from waiting
// for a writer; it changes nothing for regular files.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK
