//go:build !linux

package bench

import (
	"errors"
	"time"
)

func inNetns(name string, f func() error) error {
	return errors.New("bench: network namespaces are Linux only")
}

type delayer struct{}

func startDelayer(ns string, queue uint16, d time.Duration) (*delayer, error) {
	return nil, errors.New("bench: NFQUEUE is Linux only")
}

func (q *delayer) close() error { return nil }
