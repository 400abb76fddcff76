package nodeagent

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// The test binary doubles as the container's server when this variable is set.
const helperEnv = "NODEAGENT_TEST_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helperServer()
		return
	}
	os.Exit(m.Run())
}

func helperServer() {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	addr := fs.String("addr", "", "")
	admin := fs.String("admin-addr", "", "")
	_ = fs.Parse(os.Args[1:])
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "key=%s", os.Getenv("KEY")) })
	adm := http.NewServeMux()
	adm.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	go func() { _ = http.ListenAndServe(*addr, mux) }()
	go func() { _ = http.ListenAndServe(*admin, adm) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("got SIGTERM")
	os.Exit(0)
}

// TestContainerLifecycle runs a real process: it becomes ready from its real
// readiness probe, serves on the pod IP, is restarted and counted after being
// killed, and stops on SIGTERM without a restart.
func TestContainerLifecycle(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	podIP := fmt.Sprintf("127.0.%d.%d", 100+os.Getpid()%100, 1+os.Getpid()%250)
	spec := corev1.Container{
		Name:  "s",
		Image: "ragops/embedserver:test",
		Args:  []string{"--addr=:18080", "--admin-addr=:18090"},
		Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 18090}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("admin")}},
			PeriodSeconds: 1,
		},
	}
	c := newContainer(spec, 0)
	c.binary = self
	c.args = CommandLine(&spec, podIP, nil)
	c.env = []string{helperEnv + "=1", "KEY=v1"}
	c.podIP = podIP
	c.policy = corev1.RestartPolicyAlways
	c.grace = 2 * time.Second
	c.logPath = filepath.Join(dir, "s.log")
	c.pidPath = filepath.Join(dir, "s.pid")
	c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	c.notify = func() {}
	go c.run()
	defer c.stop(time.Second)

	poll.Until(t, "ready", func() bool { o := c.observe(); return o.Running && o.Ready })
	body := get(t, "http://"+podIP+":18080/")
	if body != "key=v1" {
		t.Fatalf("pod answered %q", body)
	}
	first := c.observe().ProcessID

	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "restarted and ready", func() bool {
		o := c.observe()
		return o.Running && o.Ready && o.ProcessID != first
	})
	o := c.observe()
	if o.RestartCount != 1 || o.LastTermination == nil || o.LastTermination.ExitCode != 137 || o.LastTermination.Signal != 9 {
		t.Fatalf("after kill: restarts %d, last termination %+v", o.RestartCount, o.LastTermination)
	}

	c.stop(2 * time.Second)
	o = c.observe()
	if o.Running || o.Terminated == nil || o.Terminated.ExitCode != 0 {
		t.Fatalf("after stop: running %v, terminated %+v", o.Running, o.Terminated)
	}
	logs, _ := os.ReadFile(c.logPath)
	if !strings.Contains(string(logs), "got SIGTERM") {
		t.Fatalf("process did not get SIGTERM; log: %s", logs)
	}
	if _, err := http.Get("http://" + podIP + ":18080/"); err == nil {
		t.Fatal("stopped container still answers")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
