//go:build !linux

package netns

import (
	"errors"
	"time"
)

var errLinuxOnly = errors.New("netns: network namespaces are Linux only")

// Do fails: network namespaces are Linux only.
func Do(name string, f func() error) error { return errLinuxOnly }

// Delayer is Linux only.
type Delayer struct{}

// StartDelayer fails: NFQUEUE is Linux only.
func StartDelayer(ns string, queue uint16, d time.Duration) (*Delayer, error) {
	return nil, errLinuxOnly
}

// Delayed is always 0.
func (q *Delayer) Delayed() int64 { return 0 }

// Early is always 0.
func (q *Delayer) Early() int64 { return 0 }

// Close does nothing.
func (q *Delayer) Close() error { return nil }
