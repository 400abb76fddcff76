package platform

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

var (
	apiOnce       sync.Once
	apiClient     client.Client
	apiKubeconfig string
	apiErr        error
)

// apiServer is a real kube-apiserver and etcd (envtest, the binaries of
// `make k8s-bins`), shared by the tests of this package, and a kubeconfig of
// an admin for it.
func apiServer(t *testing.T) (client.Client, string) {
	t.Helper()
	apiOnce.Do(func() {
		// The RAGService CRD: ragload reads a service's status for its tracks.
		env := &envtest.Environment{CRDDirectoryPaths: []string{root + "/config/crd/bases"}}
		if os.Getenv(netnsEnv) != "" {
			// No default route to guess it from in the test's own namespace.
			env.ControlPlane.GetAPIServer().Configure().Set("advertise-address", apiServerAddress)
		}
		env, cfg, err := kubetest.StartEnv(env)
		if err != nil {
			apiErr = err
			return
		}
		atExit(func() { _ = env.Stop() })
		scheme := runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(scheme); err != nil {
			apiErr = err
			return
		}
		if err := ragv1.AddToScheme(scheme); err != nil {
			apiErr = err
			return
		}
		if apiClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			apiErr = err
			return
		}
		user, err := env.AddUser(envtest.User{Name: "ragload", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			apiErr = fmt.Errorf("adding a user: %w", err)
			return
		}
		kc, err := user.KubeConfig()
		if err != nil {
			apiErr = err
			return
		}
		dir, err := os.MkdirTemp("", "platform-kubeconfig")
		if err != nil {
			apiErr = err
			return
		}
		atExit(func() { _ = os.RemoveAll(dir) })
		apiKubeconfig = filepath.Join(dir, "kubeconfig")
		apiErr = os.WriteFile(apiKubeconfig, kc, 0o600)
	})
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	return apiClient, apiKubeconfig
}

// backend is one pod's embedding server: the real server on its own
// loopback address, counting what it received.
type backend struct {
	pod, revision, track, ip string
	received                 atomic.Int64
	srv                      *http.Server
}

// The API server refuses loopback addresses in EndpointSlices, as it should
// for pods. So the test runs in a network namespace of its own (unshare(1),
// which needs root, as the local cluster does), where pod-like addresses of
// the 198.18.0.0/15 benchmark range are on its own loopback device, with the
// API server, the embedding servers and ragload beside them. Nothing of the
// machine's network changes.
const (
	netnsEnv    = "PLATFORM_TEST_NETNS"
	ragloadEnv  = "PLATFORM_TEST_RAGLOAD"
	podSubnet24 = "198.18.7."
	// apiServerAddress is the API server's advertised address in that namespace.
	apiServerAddress = podSubnet24 + "9"
)

// inOwnNetns runs the named test again in a new network namespace and reports
// its result; it returns false in that second run, which does the work.
func inOwnNetns(t *testing.T, name string, env ...string) bool {
	t.Helper()
	if os.Getenv(netnsEnv) != "" {
		return false
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s needs root: it runs in a network namespace of its own (see ragload_test.go)", name)
	}
	cmd := exec.Command("unshare", "--net", os.Args[0], "-test.run", "^"+name+"$", "-test.v", "-test.timeout", "5m")
	cmd.Env = append(append(os.Environ(), netnsEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s in its own network namespace: %v", name, err)
	}
	return true
}

// podAddresses puts n addresses of podSubnet24 on the namespace's loopback
// device, with the API server's, and brings it up for the API server's
// 127.0.0.1.
func podAddresses(t *testing.T, n int) []string {
	t.Helper()
	if os.Getenv(netnsEnv) == "" {
		t.Fatal("pod addresses outside a network namespace of the test's own")
	}
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "set", "lo", "up")
	run("addr", "add", apiServerAddress+"/32", "dev", "lo")
	var ips []string
	for i := range n {
		ip := fmt.Sprintf("%s%d", podSubnet24, 10+i)
		run("addr", "add", ip+"/32", "dev", "lo")
		ips = append(ips, ip)
	}
	return ips
}

// startBackends runs a real embedding server per pod on a pod address of its
// own, all on one port, as pods behind one EndpointSlice port.
func startBackends(t *testing.T, pods map[string]string, tracks map[string]string, ips []string) (map[string]*backend, int) {
	t.Helper()
	port := 0
	out := map[string]*backend{}
	n := 0
	for pod, rev := range pods {
		b := &backend{pod: pod, revision: rev, track: tracks[rev], ip: ips[n]}
		n++
		ln, err := net.Listen("tcp", net.JoinHostPort(b.ip, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("listening for %s: %v", pod, err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		es := embedserver.New(embedserver.Config{Model: "hash-64", MaxInFlight: 16, MaxQueue: 64}, builtinmodel.Provider{Model: builtinmodel.Model{Dims: 64}})
		h := es.Handler()
		b.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.received.Add(1)
			// A little latency, so a level lasts long enough for the endpoints to change under it.
			time.Sleep(2 * time.Millisecond)
			h.ServeHTTP(w, r)
		})}
		go func() { _ = b.srv.Serve(ln) }()
		t.Cleanup(func() { _ = b.srv.Close() })
		out[pod] = b
	}
	return out, port
}

func endpointFor(b *backend, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{b.ip},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: b.pod},
	}
}

// ragload --service against a real API server: the Service's ready endpoints
// get the load (a not-ready one none), the endpoints are followed while it
// runs (a pod that goes stops getting requests, one that comes gets them), and
// the per-pod and per-track tables say what each pod really received.
func TestRagloadService(t *testing.T) {
	if os.Getenv(netnsEnv) == "" {
		// Built here: the namespace has no network to fetch modules with.
		ragload, err := buildBinary("./cmd/ragload")
		if err != nil {
			t.Fatal(err)
		}
		inOwnNetns(t, "TestRagloadService", ragloadEnv+"="+ragload)
		return
	}
	ragload := os.Getenv(ragloadEnv)
	ips := podAddresses(t, 5) // first: it brings up the loopback device the API server listens on
	c, kubeconfig := apiServer(t)
	ctx := context.Background()
	const ns = "search"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// Two revisions, each a Deployment's pods; which is stable and which the
	// canary only the RAGService's status says (the pods carry no track).
	const stable, canary = "7c9f5d0a1b", "5d2a11c3e4"
	backends, port := startBackends(t, map[string]string{
		"docs-7c9f5d0a1b-a": stable, "docs-7c9f5d0a1b-b": stable, "docs-7c9f5d0a1b-c": stable,
		"docs-5d2a11c3e4-a": canary, "docs-5d2a11c3e4-b": canary,
	}, map[string]string{stable: "stable", canary: "canary"}, ips)
	for _, b := range backends {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: b.pod, Namespace: ns, Labels: map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: b.revision}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "embedserver", Image: "ragops/embedserver:test"}}},
		}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	rag := createDocsService(ctx, t, c, ns)
	rag.Status.StableRevision, rag.Status.CanaryRevision = stable, canary
	if err := c.Status().Update(ctx, rag); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{ragv1.LabelInstance: "docs"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(int32(port))}}},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	name, tcp, p := "http", corev1.ProtocolTCP, int32(port)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "docs-x1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "docs"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &tcp, Port: &p}},
		Endpoints: []discoveryv1.Endpoint{
			endpointFor(backends["docs-7c9f5d0a1b-a"], true), endpointFor(backends["docs-7c9f5d0a1b-b"], true),
			endpointFor(backends["docs-7c9f5d0a1b-c"], false), // not ready: gets nothing
			endpointFor(backends["docs-5d2a11c3e4-a"], true),
		},
	}
	if err := c.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	// Another Service's slice in the namespace is not ours.
	other := slice.DeepCopy()
	other.Name, other.Labels, other.ResourceVersion, other.UID = "web-x1", map[string]string{discoveryv1.LabelServiceName: "web"}, "", ""
	other.Endpoints = []discoveryv1.Endpoint{endpointFor(backends["docs-5d2a11c3e4-b"], true)}
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(ragload, "--service", "docs", "-n", ns, "--kubeconfig", kubeconfig, "--refresh", "100ms",
		"--levels", "2,4", "--duration", "3s", "--deadline", "5s", "--margin", "1s")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Once the canary pod has served a while, it goes (not ready, as a
	// terminating pod is) and another canary pod comes.
	deadline := time.Now().Add(20 * time.Second)
	for backends["docs-5d2a11c3e4-a"].received.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("docs-5d2a11c3e4-a got %d requests in 20s\n%s%s", backends["docs-5d2a11c3e4-a"].received.Load(), stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(slice), slice); err != nil {
		t.Fatal(err)
	}
	slice.Endpoints[3] = endpointFor(backends["docs-5d2a11c3e4-a"], false)
	slice.Endpoints = append(slice.Endpoints, endpointFor(backends["docs-5d2a11c3e4-b"], true))
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	// Well past a refresh, the old canary pod gets nothing more.
	time.Sleep(time.Second)
	afterChange := backends["docs-5d2a11c3e4-a"].received.Load()

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ragload: %v\n%s%s", err, stdout.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("ragload did not finish\n%s", stdout.String())
	}
	out := stdout.String()
	t.Logf("ragload output:\n%s%s", out, stderr.String())
	if !strings.Contains(out, "service search/docs, 3 ready endpoints (canary 1, stable 2)") || !strings.Contains(out, "OK: no request hung") {
		t.Errorf("header or verdict missing")
	}
	if n := backends["docs-5d2a11c3e4-a"].received.Load(); n != afterChange {
		t.Errorf("docs-5d2a11c3e4-a got %d requests more a second after it stopped being ready", n-afterChange)
	}
	if n := backends["docs-5d2a11c3e4-b"].received.Load(); n == 0 {
		t.Error("docs-5d2a11c3e4-b, which came while ragload ran, got no requests")
	}
	if n := backends["docs-7c9f5d0a1b-c"].received.Load(); n != 0 {
		t.Errorf("the not-ready docs-7c9f5d0a1b-c got %d requests", n)
	}

	// The per-pod table is what each server received; the per-track table adds them up.
	pods := table(t, out, "by pod, all levels")
	want := map[string]string{"docs-7c9f5d0a1b-a": "ready", "docs-7c9f5d0a1b-b": "ready", "docs-5d2a11c3e4-a": "gone", "docs-5d2a11c3e4-b": "ready"}
	if len(pods) != len(want) {
		t.Errorf("pod rows %v, want %v", pods, want)
	}
	byTrack := map[string]int64{}
	for pod, state := range want {
		row, ok := pods[pod]
		if !ok {
			t.Errorf("no row for %s", pod)
			continue
		}
		b := backends[pod]
		if row[0] != b.track || row[1] != state || row[2] != strconv.FormatInt(b.received.Load(), 10) || row[3] != row[2] {
			t.Errorf("%s: row %v, want track %s, endpoint %s, %d requests all ok", pod, row, b.track, state, b.received.Load())
		}
		byTrack[b.track] += b.received.Load()
	}
	tracks := table(t, out, "by track")
	for track, n := range byTrack {
		sum := int64(0)
		for key, row := range tracks {
			if strings.HasSuffix(key, "/"+track) {
				v, _ := strconv.ParseInt(row[0], 10, 64)
				sum += v
			}
		}
		if sum != n {
			t.Errorf("track %s: %d requests over the levels, the servers received %d", track, sum, n)
		}
	}
}

// table reads the rows of the table after the line starting with title: the
// first column (or, for the track table, clients/track) keys the rest.
func table(t *testing.T, out, title string) map[string][]string {
	t.Helper()
	i := strings.Index(out, "\n"+title)
	if i < 0 {
		t.Fatalf("no %q table in:\n%s", title, out)
	}
	lines := strings.Split(out[i+1:], "\n")
	rows := map[string][]string{}
	for _, l := range lines[2:] { // title, column names
		f := strings.Fields(l)
		if len(f) == 0 {
			break
		}
		if title == "by track" {
			rows[f[0]+"/"+f[1]] = f[2:]
		} else {
			rows[f[0]] = f[1:]
		}
	}
	return rows
}

// The track of an endpoint is its pod's revision's role in the RAGService's
// status, read again on every refresh: a promotion (one status write) moves
// the canary's pods to stable without any pod label changing, the previous
// stable revision is retiring while status says so, and a revision status
// stops naming keeps the last role it had (its pods drain under it: a retired
// stable, a rolled-back canary). A pod of the previous layout whose revision
// status never named counts by its track label; anything else is unknown.
func TestEndpointsTrackFollowsStatus(t *testing.T) {
	c, _ := apiServer(t)
	ctx := context.Background()
	ns := "promote"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	const first, second, third, never = "7c9f5d0a1b", "5d2a11c3e4", "0e8b7a6c5d", "99aa88bb77"
	pods := []struct {
		name   string
		labels map[string]string
	}{
		{"docs-7c9f5d0a1b-a", map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: first}},
		{"docs-5d2a11c3e4-a", map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: second}},
		{"docs-0e8b7a6c5d-a", map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: third}},
		{"docs-stable-x", map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: never, ragv1.LabelTrack: ragv1.TrackStable}},
		{"docs-99aa88bb77-a", map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: never}},
	}
	name, tcp, p := "http", corev1.ProtocolTCP, int32(8080)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "docs-x1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "docs"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &tcp, Port: &p}},
	}
	for i, pod := range pods {
		if err := c.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: pod.name, Namespace: ns, Labels: pod.labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "embedserver", Image: "ragops/embedserver:test"}}},
		}); err != nil {
			t.Fatal(err)
		}
		slice.Endpoints = append(slice.Endpoints, endpointFor(&backend{pod: pod.name, ip: fmt.Sprintf("198.18.9.%d", i+1)}, true))
	}
	// An endpoint naming no pod.
	slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.18.9.99"}})
	if err := c.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	rag := createDocsService(ctx, t, c, ns)
	// setStatus writes the three revisions as the operator does; retiring is
	// written as JSON, so this test needs no Go field for it.
	setStatus := func(stable, canary, retiring string) {
		t.Helper()
		r := "null"
		if retiring != "" {
			r = fmt.Sprintf(`{"revision":%q,"since":%q}`, retiring, time.Now().UTC().Format(time.RFC3339))
		}
		patch := fmt.Sprintf(`{"status":{"stableRevision":%q,"canaryRevision":%q,"retiring":%s}}`, stable, canary, r)
		if err := c.Status().Patch(ctx, rag, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(first, second, "")

	eps, err := loadgen.FollowEndpoints(ctx, c, ns, "docs", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer eps.Stop()
	tracks := func() map[string]string {
		out := map[string]string{}
		for _, tg := range eps.Current() {
			pod := tg.Pod
			if pod == "" {
				pod = "(no pod)"
			}
			out[pod] = tg.Track + "/" + tg.Revision
		}
		return out
	}
	want := map[string]string{
		"docs-7c9f5d0a1b-a": "stable/" + first, "docs-5d2a11c3e4-a": "canary/" + second,
		"docs-0e8b7a6c5d-a": "unknown/" + third, // status never named it
		"docs-stable-x":     "stable/" + never,  // the previous layout's label
		"docs-99aa88bb77-a": "unknown/" + never,
		"(no pod)":          "unknown/",
	}
	if got := tracks(); !maps.Equal(got, want) {
		t.Fatalf("during the canary: %v, want %v", got, want)
	}
	expect := func(what string, changes map[string]string) {
		t.Helper()
		maps.Copy(want, changes)
		poll.UntilSaw(t, what, func() (bool, string) {
			got := tracks()
			return maps.Equal(got, want), fmt.Sprintf("%v, want %v", got, want)
		})
	}

	// The handover: one status write makes the canary's revision stable and
	// the old one retiring; the same pods change track.
	setStatus(second, "", first)
	var u unstructured.Unstructured
	u.SetGroupVersionKind(ragv1.GroupVersion.WithKind("RAGService"))
	if err := c.Get(ctx, client.ObjectKeyFromObject(rag), &u); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedString(u.Object, "status", "retiring", "revision"); r == first {
		expect("the tracks after the handover", map[string]string{"docs-7c9f5d0a1b-a": "retiring/" + first, "docs-5d2a11c3e4-a": "stable/" + second})
		// The delay is over: status names it no more, its pods drain as retiring.
		setStatus(second, "", "")
		time.Sleep(200 * time.Millisecond) // a few refreshes
		expect("the tracks once the retiring revision left status", nil)
	} else {
		// This tree's CRD has no status.retiring yet (it prunes the field):
		// the old stable revision leaves status at the handover and keeps its role.
		t.Log("status.retiring not stored by this CRD: the handover is checked without it")
		expect("the tracks after the handover", map[string]string{"docs-5d2a11c3e4-a": "stable/" + second})
	}

	// A canary of the third revision, then its rollback: status names no
	// canary, and its pods drain as the canary they were.
	setStatus(second, third, "")
	expect("the tracks during the second canary", map[string]string{"docs-0e8b7a6c5d-a": "canary/" + third})
	setStatus(second, "", "")
	time.Sleep(200 * time.Millisecond)
	expect("the tracks after the rollback", nil)
}

// createDocsService creates the RAGService "docs" whose status names the
// revisions the test's pods carry (no operator runs: the test writes it).
func createDocsService(ctx context.Context, t *testing.T, c client.Client, ns string) *ragv1.RAGService {
	t.Helper()
	rag := &ragv1.RAGService{
		ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: ns},
		Spec:       ragv1.RAGServiceSpec{Embedding: ragv1.EmbeddingSpec{Provider: ragv1.ProviderBuiltin, Model: "hash-64"}},
	}
	if err := c.Create(ctx, rag); err != nil {
		t.Fatal(err)
	}
	return rag
}
