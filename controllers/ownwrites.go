package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// ownWrites remembers, per RAGService, the object as this manager's last write
// of it left it, and the resourceVersions those writes made stale, until the
// cache shows something newer.
//
// The cache lags behind the manager's own writes by a few milliseconds, and
// the owned objects a pass applies queue the next pass at once: that pass
// often read the RAGService as it was before the last pass wrote it. From such
// a read it decided again from the older rollout memory, and its status write
// was refused (409) as a stale read. Only this manager writes the status, so
// a read of a version its own writes replaced is stale for certain, and the
// object its last write returned is the newest version there is: the pass
// reads that instead. Any other version is at least as new as every one its
// writes replaced (the cache never goes back), so the memory is dropped.
type ownWrites struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*ownWrite
}

type ownWrite struct {
	last     *ragv1.RAGService   // the server's answer to the last write
	replaced map[string]struct{} // resourceVersions older than last
}

// wrote records a write that returned after; before is the resourceVersion it
// replaced ("" when unknown: a patch without an optimistic lock).
func (o *ownWrites) wrote(before string, after *ragv1.RAGService) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[types.NamespacedName]*ownWrite{}
	}
	key := client.ObjectKeyFromObject(after)
	e := o.m[key]
	if e == nil {
		e = &ownWrite{replaced: map[string]struct{}{}}
		o.m[key] = e
	}
	if before != "" {
		e.replaced[before] = struct{}{}
	}
	if e.last != nil {
		// This write came after the last one: that version is stale too.
		e.replaced[e.last.ResourceVersion] = struct{}{}
	}
	e.last = after.DeepCopy()
}

// fresher returns read, or the object the manager's last write left when read
// is a version that write made stale.
func (o *ownWrites) fresher(read *ragv1.RAGService) *ragv1.RAGService {
	o.mu.Lock()
	defer o.mu.Unlock()
	key := client.ObjectKeyFromObject(read)
	e := o.m[key]
	if e == nil {
		return read
	}
	if _, stale := e.replaced[read.ResourceVersion]; stale {
		return e.last.DeepCopy()
	}
	delete(o.m, key)
	return read
}

func (o *ownWrites) forget(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, key)
}
