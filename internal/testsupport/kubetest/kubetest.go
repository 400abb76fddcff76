// Package kubetest starts the real kube-apiserver and etcd the tests run
// against (envtest, with the binaries `make k8s-bins` builds) and makes
// namespaces for tests, the same way for every package that needs them.
package kubetest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Start starts an API server with the CRDs of crdPaths (which must exist)
// installed. The binaries come from KUBEBUILDER_ASSETS, which make exports;
// without it the error says how to run the tests.
func Start(crdPaths ...string) (*envtest.Environment, *rest.Config, error) {
	return StartEnv(&envtest.Environment{CRDDirectoryPaths: crdPaths})
}

// StartEnv starts env, with what Start sets filled in.
func StartEnv(env *envtest.Environment) (*envtest.Environment, *rest.Config, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests through make (make test-integration, test-chart, test-platform), which builds etcd and kube-apiserver into bin/k8s and exports it")
	}
	env.BinaryAssetsDirectory = assets
	env.ErrorIfCRDPathMissing = len(env.CRDDirectoryPaths) > 0
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting envtest: %w", err)
	}
	return env, cfg, nil
}

var counter atomic.Int32

// Namespace creates a namespace named after the test (unique in the run) and
// returns its name.
func Namespace(t testing.TB, c client.Client) string {
	t.Helper()
	name := namespaceName(counter.Add(1), t.Name())
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

// namespaceName is a DNS label from a test's name: the number first, so it
// stays unique once cut to length.
func namespaceName(n int32, test string) string {
	name := fmt.Sprintf("t%d-%s", n, strings.ToLower(test))
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name)
	if len(name) > 60 {
		name = name[:60]
	}
	return strings.Trim(name, "-")
}
