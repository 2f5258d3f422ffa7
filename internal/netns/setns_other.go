//go:build linux && !amd64 && !arm64

package netns

// sysSetns is unknown on this architecture: Do fails with an error.
const sysSetns = 0
