//go:build !linux

package bench

import "errors"

func inNetns(name string, f func() error) error {
	return errors.New("bench: network namespaces are Linux only")
}
