package limiter

import "sync/atomic"

// Bytes bounds the memory that requests hold: each reserves what it will hold
// (a body as it is read) and releases it once answered. A reservation that
// would pass the bound is refused at once, so the caller can shed the request
// before reading more of it. The zero value is not usable; call NewBytes.
type Bytes struct {
	max  int64
	used atomic.Int64
}

// NewBytes returns a budget of limit bytes (at least 1).
func NewBytes(limit int64) *Bytes {
	return &Bytes{max: max(limit, 1)}
}

// TryReserve takes n bytes (n >= 0) if they fit, and reports whether they did.
func (b *Bytes) TryReserve(n int64) bool {
	for {
		used := b.used.Load()
		if n > b.max-used {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Release returns n reserved bytes.
func (b *Bytes) Release(n int64) { b.used.Add(-n) }

// Used is the number of bytes reserved.
func (b *Bytes) Used() int64 { return b.used.Load() }

// Max is the bound.
func (b *Bytes) Max() int64 { return b.max }
