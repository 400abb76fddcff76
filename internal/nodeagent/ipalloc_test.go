package nodeagent

import (
	"net/netip"
	"testing"
)

func TestIPAllocator(t *testing.T) {
	a, err := NewIPAllocator("198.18.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	ip1, _ := a.Allocate("pod-1")
	ip2, _ := a.Allocate("pod-2")
	again, _ := a.Allocate("pod-1")
	for _, tc := range []struct {
		what      string
		got, want string
	}{
		{"first address skips the range's first /24", ip1.String(), "198.18.1.1"},
		{"second", ip2.String(), "198.18.1.2"},
		{"same key, same address", again.String(), "198.18.1.1"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.what, tc.got, tc.want)
		}
	}
	a.Release("pod-1")
	ip3, _ := a.Allocate("pod-3")
	if ip3.String() != "198.18.1.3" {
		t.Errorf("a freed address is not reused at once: got %s, want 198.18.1.3", ip3)
	}
	if a.InUse() != 2 {
		t.Errorf("in use %d, want 2", a.InUse())
	}
}

func TestIPAllocatorSkipsEdgesAndWraps(t *testing.T) {
	a, err := NewIPAllocator("127.0.0.0/23") // usable: 127.0.1.1 .. 127.0.1.254
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for i := 0; i < 254; i++ {
		ip, err := a.Allocate(string(rune('a' + i)))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		b := ip.As4()
		if b[2] != 1 || b[3] == 0 || b[3] == 255 || seen[ip] {
			t.Fatalf("allocation %d gave %s", i, ip)
		}
		seen[ip] = true
	}
	if _, err := a.Allocate("one-too-many"); err == nil {
		t.Fatal("exhausted range: want an error")
	}
	a.Release(string(rune('a' + 10)))
	ip, err := a.Allocate("late")
	if err != nil || ip.String() != "127.0.1.11" {
		t.Fatalf("after release got %s, %v; want 127.0.1.11 (wrapped around)", ip, err)
	}
}

func TestIPAllocatorClaim(t *testing.T) {
	a, _ := NewIPAllocator("198.18.0.0/16")
	for _, tc := range []struct {
		key, ip string
		want    bool
	}{
		{"p1", "198.18.3.4", true},
		{"p2", "198.18.3.4", false}, // taken
		{"p1", "198.18.3.4", true},  // already p1's
		{"p3", "198.19.0.1", false}, // out of range
		{"p4", "198.18.0.9", false}, // reserved first /24
		{"p5", "198.18.4.255", false},
	} {
		if got := a.Claim(tc.key, netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Claim(%s, %s) = %v, want %v", tc.key, tc.ip, got, tc.want)
		}
	}
	if ip, _ := a.Allocate("p6"); ip.String() != "198.18.3.5" {
		t.Errorf("allocation continues after a claimed address: got %s", ip)
	}
}

func TestNewIPAllocatorRejects(t *testing.T) {
	for _, cidr := range []string{"nope", "198.18.0.0/24", "fd00::/64"} {
		if _, err := NewIPAllocator(cidr); err == nil {
			t.Errorf("NewIPAllocator(%q): want an error", cidr)
		}
	}
}
