//go:build linux

package netns

// sysSetns is setns(2)'s number, which package syscall does not name here.
const sysSetns = 308
