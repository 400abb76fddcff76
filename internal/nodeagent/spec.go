package nodeagent

import (
	"fmt"
	"net"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// RunsImage reports whether the agent can run image: any image whose repository
// name ends in "embedserver", with or without registry, tag or digest
// ("ragops/embedserver:0.1.0", "host:5000/team/embedserver@sha256:...").
func RunsImage(image string) bool {
	name := image
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if slash, colon := strings.LastIndex(name, "/"), strings.LastIndex(name, ":"); colon > slash {
		name = name[:colon]
	}
	return strings.HasSuffix(name, "embedserver")
}

// ListenDefaults are the listen flags the embedding server takes and the ports
// they default to. The agent appends the ones a container does not pass, bound
// to the pod IP, because the server's own defaults (":8080") would bind every
// pod to the same port on all addresses.
var ListenDefaults = []ListenFlag{{Name: "addr", Port: "8080"}, {Name: "admin-addr", Port: "9090"}}

// ListenFlag is a flag taking a host:port listen address.
type ListenFlag struct {
	Name string
	Port string
}

// wildcardHosts bind more than the pod's own address; the agent narrows them.
var wildcardHosts = map[string]bool{"": true, "0.0.0.0": true, "::": true, "localhost": true, "127.0.0.1": true}

// RewriteListenArgs makes every listen flag bind to podIP: "--addr=:8080",
// "--addr=0.0.0.0:8080" and "--addr :8080" become "--addr=<podIP>:8080"
// (one- or two-dash forms), and the flags in defaults that are absent are
// appended. Other arguments pass through unchanged.
func RewriteListenArgs(args []string, podIP string, defaults []ListenFlag) []string {
	isListen := map[string]bool{}
	for _, d := range defaults {
		isListen[d.Name] = true
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(args)+len(defaults))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := splitFlag(a)
		if name == "" || !isListen[name] {
			out = append(out, a)
			continue
		}
		seen[name] = true
		if !hasValue {
			if i+1 >= len(args) {
				out = append(out, a)
				continue
			}
			i++
			value = args[i]
		}
		out = append(out, "--"+name+"="+bindTo(value, podIP))
	}
	for _, d := range defaults {
		if !seen[d.Name] {
			out = append(out, "--"+d.Name+"="+net.JoinHostPort(podIP, d.Port))
		}
	}
	return out
}

func splitFlag(a string) (name, value string, hasValue bool) {
	if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
		return "", "", false
	}
	a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	name, value, hasValue = strings.Cut(a, "=")
	return name, value, hasValue
}

func bindTo(value, podIP string) string {
	host, port, err := net.SplitHostPort(value)
	if err != nil || !wildcardHosts[host] {
		return value
	}
	return net.JoinHostPort(podIP, port)
}

// PodFacts are the values the downward API and the agent give a container.
type PodFacts struct {
	PodIP    string
	NodeName string
	HostIP   string
}

// Sources reads Secrets and ConfigMaps of the pod's namespace.
type Sources struct {
	Secret    func(name string) (map[string][]byte, error)
	ConfigMap func(name string) (map[string]string, error)
}

// BuildEnv returns the container's environment as NAME=value pairs, in the order
// Kubernetes defines it: POD_IP first (so args can say $(POD_IP) even when the
// pod does not declare it), then envFrom, then env, each value expanded with
// $(VAR) references to earlier variables. Secret and ConfigMap values are
// resolved; a missing required one is an error the pod's status shows.
func BuildEnv(pod *corev1.Pod, c *corev1.Container, facts PodFacts, src Sources) ([]string, map[string]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	set("POD_IP", facts.PodIP)
	for _, ef := range c.EnvFrom {
		switch {
		case ef.SecretRef != nil:
			data, err := src.Secret(ef.SecretRef.Name)
			if err != nil {
				if optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, nil, fmt.Errorf("envFrom secret %q: %w", ef.SecretRef.Name, err)
			}
			for _, k := range sortedKeys(data) {
				set(ef.Prefix+k, string(data[k]))
			}
		case ef.ConfigMapRef != nil:
			data, err := src.ConfigMap(ef.ConfigMapRef.Name)
			if err != nil {
				if optional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, nil, fmt.Errorf("envFrom configmap %q: %w", ef.ConfigMapRef.Name, err)
			}
			for _, k := range sortedKeys(data) {
				set(ef.Prefix+k, data[k])
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, vars))
			continue
		}
		v, ok, err := valueFrom(pod, e.ValueFrom, facts, src)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, vars, nil
}

func valueFrom(pod *corev1.Pod, vf *corev1.EnvVarSource, facts PodFacts, src Sources) (string, bool, error) {
	switch {
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		data, err := src.Secret(ref.Name)
		if err == nil {
			if v, ok := data[ref.Key]; ok {
				return string(v), true, nil
			}
			err = fmt.Errorf("key %q not found", ref.Key)
		}
		if optional(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		data, err := src.ConfigMap(ref.Name)
		if err == nil {
			if v, ok := data[ref.Key]; ok {
				return v, true, nil
			}
			err = fmt.Errorf("key %q not found", ref.Key)
		}
		if optional(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
	case vf.FieldRef != nil:
		switch vf.FieldRef.FieldPath {
		case "metadata.name":
			return pod.Name, true, nil
		case "metadata.namespace":
			return pod.Namespace, true, nil
		case "metadata.uid":
			return string(pod.UID), true, nil
		case "spec.nodeName":
			return facts.NodeName, true, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, true, nil
		case "status.podIP", "status.podIPs":
			return facts.PodIP, true, nil
		case "status.hostIP", "status.hostIPs":
			return facts.HostIP, true, nil
		}
		if k, ok := strings.CutPrefix(vf.FieldRef.FieldPath, "metadata.labels['"); ok {
			return pod.Labels[strings.TrimSuffix(k, "']")], true, nil
		}
		if k, ok := strings.CutPrefix(vf.FieldRef.FieldPath, "metadata.annotations['"); ok {
			return pod.Annotations[strings.TrimSuffix(k, "']")], true, nil
		}
		return "", false, fmt.Errorf("fieldRef %q is not supported by the local node agent", vf.FieldRef.FieldPath)
	case vf.ResourceFieldRef != nil:
		return "", false, fmt.Errorf("resourceFieldRef is not supported by the local node agent")
	}
	return "", false, nil
}

func optional(b *bool) bool { return b != nil && *b }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Expand replaces $(NAME) with vars[NAME] as Kubernetes does for command, args
// and env values: "$$" escapes a dollar, and a reference to an undefined name
// stays as written.
func Expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// CommandLine returns the arguments the binary runs with: the container's
// command without its first element (the path inside the image, which the agent
// replaces with the local binary) followed by args, all expanded, with listen
// flags bound to the pod IP.
func CommandLine(c *corev1.Container, podIP string, vars map[string]string) []string {
	var raw []string
	if len(c.Command) > 1 {
		raw = append(raw, c.Command[1:]...)
	}
	raw = append(raw, c.Args...)
	for i := range raw {
		raw[i] = Expand(raw[i], vars)
	}
	return RewriteListenArgs(raw, podIP, ListenDefaults)
}
