package nodeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ResolvePort turns a probe's port (a number or the name of a container port)
// into a number.
func ResolvePort(c *corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("port %d out of range", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("container %q has no port named %q", c.Name, p.StrVal)
}

// probeTiming is a probe's schedule with Kubernetes' defaults filled in.
type probeTiming struct {
	initialDelay, period, timeout time.Duration
	success, failure              int
}

func timingOf(p *corev1.Probe) probeTiming {
	t := probeTiming{
		initialDelay: time.Duration(p.InitialDelaySeconds) * time.Second,
		period:       time.Duration(p.PeriodSeconds) * time.Second,
		timeout:      time.Duration(p.TimeoutSeconds) * time.Second,
		success:      int(p.SuccessThreshold),
		failure:      int(p.FailureThreshold),
	}
	if t.period <= 0 {
		t.period = 10 * time.Second
	}
	if t.timeout <= 0 {
		t.timeout = time.Second
	}
	if t.success <= 0 {
		t.success = 1
	}
	if t.failure <= 0 {
		t.failure = 3
	}
	return t
}

var probeClient = &http.Client{
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet does not verify probe certificates either
		DisableKeepAlives: true,
	},
	// kubelet follows redirects to the same host; a redirect answer itself counts as success below.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// runProbe performs one probe attempt against the pod IP. It returns nil on
// success. Exec and gRPC probes are not run by the local agent: they count as
// success (and the agent logs that once), so a pod that has them still starts.
func runProbe(ctx context.Context, p *corev1.Probe, c *corev1.Container, podIP string) error {
	t := timingOf(p)
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		port, err := ResolvePort(c, g.Port)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = podIP
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("probe request: %w", err)
		}
		req.Header.Set("User-Agent", "ragops-nodeagent-probe")
		for _, h := range g.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := ResolvePort(c, p.TCPSocket.Port)
		if err != nil {
			return err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		return conn.Close()
	}
	return nil
}

// unsupportedProbe names a probe kind the agent does not run, or "".
func unsupportedProbe(p *corev1.Probe) string {
	switch {
	case p == nil:
		return ""
	case p.Exec != nil:
		return "exec"
	case p.GRPC != nil:
		return "grpc"
	}
	return ""
}
