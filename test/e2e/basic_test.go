package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A new service becomes Ready; `kubectl wait` and `kubectl get ragsvc` show it.
func TestServiceBecomesReady(t *testing.T) {
	ns := namespace(t, "e2e-ready")
	apply(t, svcSpec{Name: "docs", Namespace: ns, Replicas: 2})
	mustKubectl(t, "", "wait", "--for=condition=Ready", "ragsvc/docs", "-n", ns, "--timeout=90s")

	out := mustKubectl(t, "", "get", "ragsvc", "-n", ns)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get ragsvc:\n%s", out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME READY PHASE STABLE CANARY WEIGHT AGE" {
		t.Fatalf("columns %v, want NAME READY PHASE STABLE CANARY WEIGHT AGE", got)
	}
	// No canary: the Canary column is empty, so the row has one field fewer.
	row := strings.Fields(lines[1])
	s := getSvc(t, ns, "docs")
	if len(row) != 6 || row[0] != "docs" || row[1] != "True" || row[2] != "Healthy" || row[3] != s.Status.StableRevision || row[4] != "0" {
		t.Fatalf("row %q; want docs True Healthy %s 0 <age>", lines[1], s.Status.StableRevision)
	}
	if !regexp.MustCompile(`^\d+s$`).MatchString(row[5]) {
		t.Fatalf("age %q", row[5])
	}
	if s.Status.ReadyReplicas != 2 || s.Status.Replicas != 2 {
		t.Fatalf("status replicas %d ready %d, want 2/2", s.Status.Replicas, s.Status.ReadyReplicas)
	}
}

// Every manifest under testdata/invalid is refused by the API server with a
// message naming the field given in its first line: "# expect: <text>".
func TestInvalidManifestsRefused(t *testing.T) {
	ns := namespace(t, "e2e-invalid")
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) < 5 {
		t.Fatalf("want at least 5 invalid manifests, found %d", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			want, ok := strings.CutPrefix(first, "# expect: ")
			if !ok {
				t.Fatalf("%s: first line must be '# expect: <text of the error>'", f)
			}
			out, errOut, err := kubectl(string(b), "apply", "-n", ns, "-f", "-")
			if err == nil {
				t.Fatalf("accepted: %s", out)
			}
			if !strings.Contains(errOut, strings.TrimSpace(want)) {
				t.Fatalf("error does not name %q:\n%s", want, errOut)
			}
		})
	}
	if out := mustKubectl(t, "", "get", "ragsvc", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("something was created: %s", out)
	}
}

// kubectl scale goes through the scale subresource: spec.replicas changes, the
// stable revision's Deployment follows, status.replicas reports it, and no
// canary starts.
func TestScaleSubresource(t *testing.T) {
	ns := namespace(t, "e2e-scale")
	apply(t, svcSpec{Name: "docs", Namespace: ns, Replicas: 1})
	before := waitHealthy(t, ns, "docs", 90*time.Second)

	mustKubectl(t, "", "scale", "ragsvc/docs", "-n", ns, "--replicas=3")
	eventually(t, 90*time.Second, 500*time.Millisecond, "3 ready replicas", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		return s.Status.ReadyReplicas == 3 && s.Status.Replicas == 3 && s.Status.Phase == "Healthy",
			fmt.Sprintf("replicas %d ready %d phase %s", s.Status.Replicas, s.Status.ReadyReplicas, s.Status.Phase)
	})
	s := getSvc(t, ns, "docs")
	if *s.Spec.Replicas != 3 || s.Status.StableRevision != before.Status.StableRevision || s.Status.CanaryRevision != "" {
		t.Fatalf("spec.replicas %d, stable %s (was %s), canary %q", *s.Spec.Replicas, s.Status.StableRevision, before.Status.StableRevision, s.Status.CanaryRevision)
	}
	out := mustKubectl(t, "", "get", "ragsvc/docs", "-n", ns, "--subresource=scale", "-o", "jsonpath={.spec.replicas} {.status.replicas} {.status.selector}")
	if f := strings.Fields(out); len(f) != 3 || f[0] != "3" || f[1] != "3" || !strings.Contains(f[2], "app.kubernetes.io/instance=docs") {
		t.Fatalf("scale subresource: %q", out)
	}
	var d appsv1.Deployment
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: revisionDeployment("docs", s.Status.StableRevision)}, &d); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 3 || d.Status.ReadyReplicas != 3 {
		t.Fatalf("stable Deployment replicas %d ready %d", *d.Spec.Replicas, d.Status.ReadyReplicas)
	}
}

// An owned Deployment deleted or edited by hand is put back by the operator.
func TestOwnedDeploymentRestored(t *testing.T) {
	ns := namespace(t, "e2e-restore")
	apply(t, svcSpec{Name: "docs", Namespace: ns, Replicas: 2})
	name := revisionDeployment("docs", waitHealthy(t, ns, "docs", 90*time.Second).Status.StableRevision)
	ctx := context.Background()
	get := func() (*appsv1.Deployment, error) {
		var d appsv1.Deployment
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d)
		return &d, err
	}
	d, err := get()
	if err != nil {
		t.Fatal(err)
	}
	oldUID := d.UID
	image := d.Spec.Template.Spec.Containers[0].Image

	mustKubectl(t, "", "delete", "deployment", name, "-n", ns, "--wait=false")
	eventually(t, 90*time.Second, 500*time.Millisecond, "stable Deployment recreated and ready", func() (bool, string) {
		d, err := get()
		if err != nil {
			return false, err.Error()
		}
		return d.UID != oldUID && d.Status.ReadyReplicas == 2, fmt.Sprintf("uid %s ready %d", d.UID, d.Status.ReadyReplicas)
	})

	// Edited by hand: scaled down and given another image.
	mustKubectl(t, "", "scale", "deployment", name, "-n", ns, "--replicas=1")
	mustKubectl(t, "", "set", "image", "deployment/"+name, "-n", ns, "embedserver=example.com/other:1")
	eventually(t, 90*time.Second, 500*time.Millisecond, "hand edits undone", func() (bool, string) {
		d, err := get()
		if err != nil {
			return false, err.Error()
		}
		img := d.Spec.Template.Spec.Containers[0].Image
		return *d.Spec.Replicas == 2 && img == image && d.Status.ReadyReplicas == 2 && d.Status.UpdatedReplicas == 2,
			fmt.Sprintf("replicas %d image %s ready %d updated %d", *d.Spec.Replicas, img, d.Status.ReadyReplicas, d.Status.UpdatedReplicas)
	})
	waitHealthy(t, ns, "docs", 60*time.Second)
}
