//go:build !unix

package origin

import "os"

// openFlags opens served files.
const openFlags = os.O_RDONLY
