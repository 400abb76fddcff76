package platform

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

// root is the repository, from this package.
const root = "../.."

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	crlog.SetLogger(logr.Discard()) // envtest's client logs nothing the tests need
	// Helm keeps its caches out of the user's home.
	tmp, err := os.MkdirTemp("", "platform-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	for _, v := range []string{"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"} {
		os.Setenv(v, filepath.Join(tmp, v))
	}
	defer runCleanups()
	return m.Run()
}

var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

// atExit runs f after all tests, for what tests share: built binaries, the
// API server.
func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func runCleanups() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tool is a binary make provides through an environment variable.
func tool(t *testing.T, env, why string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		t.Fatalf("%s is not set: run `make test-platform`, which %s", env, why)
	}
	return bin
}

// helmErr runs the helm that make builds into bin/ ($HELM); on failure it
// returns stderr with the error.
func helmErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, "HELM", "builds helm into bin/ and sets HELM"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String(), err
	}
	return stdout.String(), nil
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helmErr(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// promtool runs Debian's promtool, which make unpacks into bin/ ($PROMTOOL).
func promtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(tool(t, "PROMTOOL", "unpacks promtool from Debian's prometheus package into bin/"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}
