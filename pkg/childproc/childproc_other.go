//go:build !linux

package childproc

import (
	"errors"
	"syscall"
)

const supported = false

func sysProcAttr() *syscall.SysProcAttr { return nil }

func niceThread(int) error { return errors.ErrUnsupported }

func onMainThread() bool { return false }
