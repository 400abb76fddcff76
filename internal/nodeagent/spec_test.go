package nodeagent

import (
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestRunsImage(t *testing.T) {
	for _, tc := range []struct {
		image string
		want  bool
	}{
		{"ragops/embedserver:0.1.0", true},
		{"embedserver", true},
		{"ragops/embedserver", true},
		{"localhost:5000/team/embedserver:dev", true},
		{"localhost:5000/team/embedserver", true},
		{"ghcr.io/acme/my-embedserver@sha256:abcd", true},
		{"ragops/embedserver-canary:1", false},
		{"nginx:1.27", false},
		{"embedserver.io/nginx:1", false},
		{"ragops/embedserver:embedserver/x", false}, // odd, but the name is what counts
		{"", false},
	} {
		if got := RunsImage(tc.image); got != tc.want {
			t.Errorf("RunsImage(%q) = %v, want %v", tc.image, got, tc.want)
		}
	}
}

func TestRewriteListenArgs(t *testing.T) {
	const ip = "198.18.1.7"
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"none given: both appended", nil, []string{"--addr=198.18.1.7:8080", "--admin-addr=198.18.1.7:9090"}},
		{"port only", []string{"--addr=:8080", "--admin-addr=:9090"}, []string{"--addr=198.18.1.7:8080", "--admin-addr=198.18.1.7:9090"}},
		{"separate value and one dash", []string{"-addr", ":7000", "--admin-addr", "0.0.0.0:7001"}, []string{"--addr=198.18.1.7:7000", "--admin-addr=198.18.1.7:7001"}},
		{"explicit host kept", []string{"--addr=10.1.2.3:8080", "--admin-addr=198.18.1.7:9090"}, []string{"--addr=10.1.2.3:8080", "--admin-addr=198.18.1.7:9090"}},
		{"loopback narrowed", []string{"--addr=127.0.0.1:8080", "--admin-addr=localhost:9"}, []string{"--addr=198.18.1.7:8080", "--admin-addr=198.18.1.7:9"}},
		{"other flags untouched, missing one appended", []string{"--model=hash-384", "--addr=:8080", "--max-in-flight", "8"}, []string{"--model=hash-384", "--addr=198.18.1.7:8080", "--max-in-flight", "8", "--admin-addr=198.18.1.7:9090"}},
		{"similar names are not listen flags", []string{"--address=:1", "--upstream-url=http://x:1"}, []string{"--address=:1", "--upstream-url=http://x:1", "--addr=198.18.1.7:8080", "--admin-addr=198.18.1.7:9090"}},
		{"dangling flag kept", []string{"--admin-addr=:9090", "--addr"}, []string{"--admin-addr=198.18.1.7:9090", "--addr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RewriteListenArgs(tc.in, ip, ListenDefaults); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"POD_IP": "198.18.1.2", "A": "x"}
	for in, want := range map[string]string{
		"--addr=$(POD_IP):8080": "--addr=198.18.1.2:8080",
		"$(A)$(A)":              "xx",
		"$$(A)":                 "$(A)",
		"$(MISSING)":            "$(MISSING)",
		"cost $5":               "cost $5",
		"open $(A":              "open $(A",
		"trailing $":            "trailing $",
	} {
		if got := Expand(in, vars); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "docs-abc", Namespace: "search", UID: "u1", Labels: map[string]string{"track": "canary"}}}
	src := Sources{
		Secret: func(name string) (map[string][]byte, error) {
			if name == "openai" {
				return map[string][]byte{"api-key": []byte("sk-test")}, nil
			}
			return nil, errors.New("not found")
		},
		ConfigMap: func(name string) (map[string]string, error) {
			if name == "cfg" {
				return map[string]string{"B": "2", "A": "1"}, nil
			}
			return nil, errors.New("not found")
		},
	}
	facts := PodFacts{PodIP: "198.18.1.9", NodeName: "local-1", HostIP: "127.0.0.1"}
	for _, tc := range []struct {
		name    string
		c       corev1.Container
		want    []string
		wantErr string
	}{
		{
			name: "secret, field refs, expansion and envFrom order",
			c: corev1.Container{
				EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				Env: []corev1.EnvVar{
					{Name: "EMBEDSERVER_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "openai"}, Key: "api-key"}}},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "TRACK", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['track']"}}},
					{Name: "URL", Value: "http://$(POD_IP):8080/$(POD_NAME)"},
				},
			},
			want: []string{"POD_IP=198.18.1.9", "CFG_A=1", "CFG_B=2", "EMBEDSERVER_API_KEY=sk-test", "POD_NAME=docs-abc", "TRACK=canary", "URL=http://198.18.1.9:8080/docs-abc"},
		},
		{
			name: "pod's own POD_IP overrides the agent's",
			c:    corev1.Container{Env: []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}},
			want: []string{"POD_IP=198.18.1.9"},
		},
		{
			name:    "missing secret is an error naming it",
			c:       corev1.Container{Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}}},
			wantErr: `env K: secret "gone": not found`,
		},
		{
			name:    "missing key is an error naming it",
			c:       corev1.Container{Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "openai"}, Key: "nope"}}}}},
			wantErr: `env K: secret "openai": key "nope" not found`,
		},
		{
			name: "optional missing secret is skipped",
			c:    corev1.Container{Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k", Optional: ptr.To(true)}}}}},
			want: []string{"POD_IP=198.18.1.9"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := BuildEnv(pod, &tc.c, facts, src)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	c := &corev1.Container{Command: []string{"/embedserver", "--model=$(MODEL)"}, Args: []string{"--addr=$(POD_IP):8080"}}
	got := CommandLine(c, "198.18.1.3", map[string]string{"POD_IP": "198.18.1.3", "MODEL": "hash-384"})
	want := []string{"--model=hash-384", "--addr=198.18.1.3:8080", "--admin-addr=198.18.1.3:9090"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestResolvePort(t *testing.T) {
	c := &corev1.Container{Name: "s", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "admin", ContainerPort: 9090}}}
	for _, tc := range []struct {
		port    intstr.IntOrString
		want    int
		wantErr bool
	}{
		{intstr.FromString("admin"), 9090, false},
		{intstr.FromInt32(7000), 7000, false},
		{intstr.FromString("metrics"), 0, true},
		{intstr.FromInt32(0), 0, true},
	} {
		got, err := ResolvePort(c, tc.port)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ResolvePort(%v) = %d, %v; want %d, err %v", tc.port.String(), got, err, tc.want, tc.wantErr)
		}
	}
}
