package nodeagent

import (
	"fmt"
	"net/netip"
	"sync"
)

// IPAllocator hands out one address per pod from a local range. Addresses whose
// last octet is 0 or 255 and the whole first /24 of the range are never handed
// out: the first /24 of 127.0.0.0/8 holds 127.0.0.1, where the control plane
// listens, and .0/.255 confuse people reading logs.
type IPAllocator struct {
	mu     sync.Mutex
	prefix netip.Prefix
	next   netip.Addr
	byKey  map[string]netip.Addr
	inUse  map[netip.Addr]string
}

// NewIPAllocator returns an allocator over cidr, which must be an IPv4 prefix of
// at most /23 (so there is something after the reserved first /24).
func NewIPAllocator(cidr string) (*IPAllocator, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("parse pod CIDR %q: %w", cidr, err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || p.Bits() > 23 {
		return nil, fmt.Errorf("pod CIDR %q: need an IPv4 prefix of /23 or larger", cidr)
	}
	a := &IPAllocator{prefix: p, byKey: map[string]netip.Addr{}, inUse: map[netip.Addr]string{}}
	a.next = a.first()
	return a, nil
}

func (a *IPAllocator) first() netip.Addr {
	b := a.prefix.Addr().As4()
	b[2]++
	b[3] = 1
	return netip.AddrFrom4(b)
}

func usable(ip netip.Addr) bool {
	b := ip.As4()
	return b[3] != 0 && b[3] != 255
}

// Allocate returns the address held by key, or a free one. Keys are pod UIDs.
// Allocation continues after the last address handed out, so an address freed a
// moment ago is not reused at once (a late client of the old pod must not reach
// the new one).
func (a *IPAllocator) Allocate(key string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.byKey[key]; ok {
		return ip, nil
	}
	start := a.next
	ip := start
	for {
		if usable(ip) {
			if _, taken := a.inUse[ip]; !taken {
				a.take(key, ip)
				return ip, nil
			}
		}
		ip = a.step(ip)
		if ip == start {
			return netip.Addr{}, fmt.Errorf("pod CIDR %s is exhausted (%d pods)", a.prefix, len(a.inUse))
		}
	}
}

// Claim gives key the address ip if it is in range, usable and free; used when
// the agent restarts and finds a pod that already reports an IP.
func (a *IPAllocator) Claim(key string, ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.byKey[key]; ok {
		return cur == ip
	}
	if !a.prefix.Contains(ip) || !usable(ip) || ip.Less(a.first()) {
		return false
	}
	if _, taken := a.inUse[ip]; taken {
		return false
	}
	a.take(key, ip)
	return true
}

func (a *IPAllocator) take(key string, ip netip.Addr) {
	a.byKey[key] = ip
	a.inUse[ip] = key
	a.next = a.step(ip)
}

func (a *IPAllocator) step(ip netip.Addr) netip.Addr {
	n := ip.Next()
	if !n.IsValid() || !a.prefix.Contains(n) {
		return a.first()
	}
	return n
}

// Release frees the address held by key; releasing an unknown key is a no-op.
func (a *IPAllocator) Release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.byKey[key]; ok {
		delete(a.byKey, key)
		delete(a.inUse, ip)
	}
}

// InUse is the number of addresses handed out.
func (a *IPAllocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.inUse)
}
