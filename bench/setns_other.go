//go:build linux && !amd64 && !arm64

package bench

// sysSetns is unknown on this architecture: --netns fails with an error.
const sysSetns = 0
