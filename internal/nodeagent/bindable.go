package nodeagent

import (
	"fmt"
	"net"
	"os"
)

// NetNSPath is where `ip netns add NAME` puts a network namespace.
func NetNSPath(name string) string { return "/run/netns/" + name }

// CheckNetNS fails when the pods' network namespace does not exist.
func CheckNetNS(name string) error {
	if _, err := os.Stat(NetNSPath(name)); err != nil {
		return fmt.Errorf("pod network namespace %q is missing (make cluster-up creates it): %w", name, err)
	}
	return nil
}

// CheckBindable fails when the pod range is not local on this host, with the
// one command that makes it so. The first usable address stands for the range.
func CheckBindable(cidr string) error {
	a, err := NewIPAllocator(cidr)
	if err != nil {
		return err
	}
	ip := a.first().String()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return fmt.Errorf("pod CIDR %s is not local on this host (cannot bind %s: %w); run once as root: ip route add local %s dev lo", cidr, ip, err, a.prefix)
	}
	return l.Close()
}
