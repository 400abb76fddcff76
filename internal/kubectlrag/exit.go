package kubectlrag

import (
	"errors"
	"fmt"
)

// Exit codes of kubectl-rag. A CI pipeline branches on them, so they are a contract
// (documented in docs/kubectl-rag.md).
const (
	// ExitOK: the command did what was asked; for status, the RAGService is Healthy
	// at its current generation.
	ExitOK = 0
	// ExitFailed: status saw RolledBack, Degraded or Stalled at the current generation.
	ExitFailed = 1
	// ExitTimeout: status --watch reached --timeout before a terminal state.
	ExitTimeout = 2
	// ExitProgressing: status without --watch saw a rollout still in progress.
	ExitProgressing = 3
	// ExitError: bad usage, an object not found, or the API server refused.
	ExitError = 4
)

// ExitError carries the process exit code of a failed command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitError
}
