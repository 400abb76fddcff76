package nodeagent

import (
	"fmt"
	"net"
)

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
