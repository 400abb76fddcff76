package kubetest

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNamespaceName(t *testing.T) {
	for _, c := range []struct {
		n    int32
		test string
		want string
	}{
		{1, "TestCutover", "t1-testcutover"},
		{12, "TestValidation/min_cosine above one", "t12-testvalidation-min-cosine-above-one"},
		{3, "TestX/" + strings.Repeat("long", 30), "t3-testx-" + strings.Repeat("long", 13)[:51]},
		{4, "Test/ümlaut(1)", "t4-test--mlaut-1"},
	} {
		got := namespaceName(c.n, c.test)
		if got != c.want {
			t.Errorf("namespaceName(%d, %q) = %q, want %q", c.n, c.test, got, c.want)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("%q is no DNS label: %v", got, errs)
		}
	}
}
