package httpcache

import (
	"fmt"
	"strconv"
)

// Via returns a Shoal edge's Via entry (RFC 9110 §7.6.3), with the
// pseudonym "shoal", for a message received with protocol version
// major.minor.
func Via(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1 shoal" // nearly every request: no formatting
	case major == 1 && minor == 0:
		return "1.0 shoal"
	case major == 2 || major == 3:
		return strconv.Itoa(major) + " shoal"
	}
	return fmt.Sprintf("%d.%d shoal", major, minor)
}
