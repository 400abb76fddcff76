// Package skipapply decides whether an owned object needs a server-side apply,
// so that a reconcile that changes nothing writes nothing.
//
// A hash of the applied configuration alone is not enough: a hand edit of a
// field the operator set (kubectl edit, kubectl scale) leaves any hash the
// operator recorded intact, and must still be repaired. What does change on
// every such edit is the operator's own entry in metadata.managedFields:
// another manager that changes or removes a field the operator applied takes
// that field out of the operator's set. So an apply is skipped only when the
// configuration is the one last applied, to the same object (UID), and the
// operator's field set is still exactly what that apply left.
//
// The record of the last apply lives in memory: a manager that starts (or a new
// leader) applies each object once, which also repairs drift that happened
// while no manager ran. Everything here is pure: no client, no clock.
package skipapply

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Record is what one successful apply left on the object.
type Record struct {
	// Hash is Hash of the applied configuration.
	Hash string
	// UID of the object the apply wrote to.
	UID types.UID
	// Fields is FieldsOf the object the apply returned.
	Fields string
}

// Observed is what the cache shows of the object.
type Observed struct {
	UID types.UID
	// Terminating is true once the object has a deletion timestamp.
	Terminating bool
	// Fields is FieldsOf the cached object.
	Fields string
}

// Reason says why an object needs an apply; ReasonUpToDate means it does not.
type Reason string

// The reasons Decide gives, each with what the cache showed.
const (
	ReasonUpToDate    Reason = ""                    // as the last apply left it: no request
	ReasonAbsent      Reason = "absent"              // not in the cache: new, or deleted by someone
	ReasonTerminating Reason = "terminating"         // being deleted
	ReasonUnknown     Reason = "no record"           // not applied since this manager started
	ReasonChanged     Reason = "changed"             // the desired configuration changed
	ReasonRecreated   Reason = "recreated"           // another object of the same name
	ReasonFieldsMoved Reason = "fields changed hand" // someone else changed or removed a field the operator set
)

// Decide tells whether the configuration of hash desired must be applied,
// given the last apply's record (nil: none) and the cached object (nil: absent).
func Decide(desired string, last *Record, obs *Observed) Reason {
	switch {
	case obs == nil:
		return ReasonAbsent
	case obs.Terminating:
		return ReasonTerminating
	case last == nil:
		return ReasonUnknown
	case last.Hash != desired:
		return ReasonChanged
	case last.UID != obs.UID:
		return ReasonRecreated
	case last.Fields != obs.Fields:
		return ReasonFieldsMoved
	}
	return ReasonUpToDate
}

// Hash identifies an applied configuration by its serialized form.
func Hash(config []byte) string {
	sum := sha256.Sum256(config)
	return hex.EncodeToString(sum[:16])
}

// FieldsOf identifies the field set that manager owns through server-side
// apply on the object itself (not a subresource); "" when it owns none. The
// server serializes field sets in one canonical form, so equal sets give
// equal bytes.
func FieldsOf(entries []metav1.ManagedFieldsEntry, manager string) string {
	for _, e := range entries {
		if IsApplyEntry(e, manager) {
			if e.FieldsV1 == nil {
				return ""
			}
			return Hash(e.FieldsV1.GetRawBytes())
		}
	}
	return ""
}

// IsApplyEntry is true for manager's server-side apply entry on the object itself.
func IsApplyEntry(e metav1.ManagedFieldsEntry, manager string) bool {
	return e.Manager == manager && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == ""
}

// Key names one owned object of one owner.
type Key struct {
	Kind, Name string
}

// Memory holds the last apply's record of every owned object, by owner. It is
// safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	owners map[types.NamespacedName]map[Key]Record
}

// Get returns the record of an owned object, or nil.
func (m *Memory) Get(owner types.NamespacedName, k Key) *Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.owners[owner][k]
	if !ok {
		return nil
	}
	return &r
}

// Set stores the record of an apply.
func (m *Memory) Set(owner types.NamespacedName, k Key, r Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.owners == nil {
		m.owners = map[types.NamespacedName]map[Key]Record{}
	}
	if m.owners[owner] == nil {
		m.owners[owner] = map[Key]Record{}
	}
	m.owners[owner][k] = r
}

// Forget drops the record of one object (after an apply failed, or the object was deleted).
func (m *Memory) Forget(owner types.NamespacedName, k Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.owners[owner], k)
}

// ForgetOwner drops every record of an owner that is gone.
func (m *Memory) ForgetOwner(owner types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.owners, owner)
}

// Len is the number of records held, for tests and metrics.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, objs := range m.owners {
		n += len(objs)
	}
	return n
}

// OwnApplyEntry keeps only manager's apply entry of a managedFields list (nil
// when there is none): what Decide needs of an object, and a fraction of what a
// cache would otherwise hold for every object.
func OwnApplyEntry(entries []metav1.ManagedFieldsEntry, manager string) []metav1.ManagedFieldsEntry {
	for _, e := range entries {
		if IsApplyEntry(e, manager) {
			return []metav1.ManagedFieldsEntry{e}
		}
	}
	return nil
}
