package skipapply

import (
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestDecide(t *testing.T) {
	last := &Record{Hash: "h1", UID: "u1", Fields: "f1"}
	cases := []struct {
		name    string
		desired string
		last    *Record
		obs     *Observed
		want    Reason
	}{
		{"nothing changed", "h1", last, &Observed{UID: "u1", Fields: "f1"}, ReasonUpToDate},
		{"new object", "h1", nil, nil, ReasonAbsent},
		{"deleted by someone (or not in the cache yet)", "h1", last, nil, ReasonAbsent},
		{"being deleted", "h1", last, &Observed{UID: "u1", Terminating: true, Fields: "f1"}, ReasonTerminating},
		{"first pass of a started manager", "h1", nil, &Observed{UID: "u1", Fields: "f1"}, ReasonUnknown},
		{"spec changed", "h2", last, &Observed{UID: "u1", Fields: "f1"}, ReasonChanged},
		{"spec changed and fields moved", "h2", last, &Observed{UID: "u1", Fields: "f2"}, ReasonChanged},
		{"deleted and created again by someone", "h1", last, &Observed{UID: "u2", Fields: "f1"}, ReasonRecreated},
		{"hand edit took a field", "h1", last, &Observed{UID: "u1", Fields: "f2"}, ReasonFieldsMoved},
		{"hand edit removed every field of ours", "h1", last, &Observed{UID: "u1", Fields: ""}, ReasonFieldsMoved},
		{"terminating wins over a record", "h2", nil, &Observed{Terminating: true}, ReasonTerminating},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(c.desired, c.last, c.obs); got != c.want {
				t.Errorf("Decide = %q, want %q", got, c.want)
			}
		})
	}
}

func TestHash(t *testing.T) {
	a, b := Hash([]byte(`{"spec":{"replicas":1}}`)), Hash([]byte(`{"spec":{"replicas":2}}`))
	if a == b {
		t.Fatalf("different configurations hash alike: %s", a)
	}
	if a != Hash([]byte(`{"spec":{"replicas":1}}`)) {
		t.Fatal("Hash is not deterministic")
	}
	if len(a) != 32 {
		t.Fatalf("Hash length %d, want 32 hex digits", len(a))
	}
}

func entry(manager string, op metav1.ManagedFieldsOperationType, sub, fields string) metav1.ManagedFieldsEntry {
	e := metav1.ManagedFieldsEntry{Manager: manager, Operation: op, Subresource: sub, FieldsType: "FieldsV1"}
	if fields != "" {
		e.FieldsV1 = metav1.NewFieldsV1(fields)
	}
	return e
}

func TestFieldsOf(t *testing.T) {
	const ours = `{"f:spec":{"f:replicas":{}}}`
	cases := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    string
	}{
		{"none", nil, ""},
		{"ours among others", []metav1.ManagedFieldsEntry{
			entry("kube-controller-manager", metav1.ManagedFieldsOperationUpdate, "status", `{"f:status":{}}`),
			entry("rag-operator", metav1.ManagedFieldsOperationApply, "", ours),
			entry("kubectl-edit", metav1.ManagedFieldsOperationUpdate, "", `{"f:spec":{"f:paused":{}}}`),
		}, Hash([]byte(ours))},
		{"our update, not an apply", []metav1.ManagedFieldsEntry{
			entry("rag-operator", metav1.ManagedFieldsOperationUpdate, "", ours),
		}, ""},
		{"our apply of a subresource", []metav1.ManagedFieldsEntry{
			entry("rag-operator", metav1.ManagedFieldsOperationApply, "status", ours),
		}, ""},
		{"someone else's apply", []metav1.ManagedFieldsEntry{
			entry("argocd-controller", metav1.ManagedFieldsOperationApply, "", ours),
		}, ""},
		{"our entry without fields", []metav1.ManagedFieldsEntry{
			entry("rag-operator", metav1.ManagedFieldsOperationApply, "", ""),
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := FieldsOf(c.entries, "rag-operator"); got != c.want {
				t.Errorf("FieldsOf = %q, want %q", got, c.want)
			}
		})
	}
	// A hand edit that takes one field changes the fingerprint.
	if FieldsOf([]metav1.ManagedFieldsEntry{entry("m", metav1.ManagedFieldsOperationApply, "", `{"f:spec":{"f:replicas":{},"f:template":{}}}`)}, "m") ==
		FieldsOf([]metav1.ManagedFieldsEntry{entry("m", metav1.ManagedFieldsOperationApply, "", `{"f:spec":{"f:template":{}}}`)}, "m") {
		t.Error("a field set with one field less has the same fingerprint")
	}
}

func TestOwnApplyEntry(t *testing.T) {
	ours := entry("rag-operator", metav1.ManagedFieldsOperationApply, "", `{"f:spec":{}}`)
	got := OwnApplyEntry([]metav1.ManagedFieldsEntry{
		entry("kube-controller-manager", metav1.ManagedFieldsOperationUpdate, "status", `{"f:status":{}}`), ours,
	}, "rag-operator")
	if len(got) != 1 || got[0].Manager != "rag-operator" {
		t.Fatalf("OwnApplyEntry = %+v, want only the operator's entry", got)
	}
	if FieldsOf(got, "rag-operator") != FieldsOf([]metav1.ManagedFieldsEntry{ours}, "rag-operator") {
		t.Error("trimming changed the operator's fingerprint")
	}
	if got := OwnApplyEntry([]metav1.ManagedFieldsEntry{entry("kubectl", metav1.ManagedFieldsOperationUpdate, "", `{}`)}, "rag-operator"); got != nil {
		t.Fatalf("OwnApplyEntry without our entry = %+v, want nil (so an update never sends an empty list)", got)
	}
}

func TestMemory(t *testing.T) {
	var m Memory
	docs := types.NamespacedName{Namespace: "search", Name: "docs"}
	other := types.NamespacedName{Namespace: "search", Name: "other"}
	stable := Key{Kind: "Deployment", Name: "docs-stable"}
	if m.Get(docs, stable) != nil {
		t.Fatal("empty memory returned a record")
	}
	m.Set(docs, stable, Record{Hash: "h", UID: "u", Fields: "f"})
	m.Set(docs, Key{Kind: "Service", Name: "docs"}, Record{Hash: "s"})
	m.Set(other, stable, Record{Hash: "o"})
	if r := m.Get(docs, stable); r == nil || r.Hash != "h" {
		t.Fatalf("Get = %+v, want hash h", r)
	}
	m.Forget(docs, stable)
	if m.Get(docs, stable) != nil || m.Len() != 2 {
		t.Fatalf("after Forget: %d records, want 2", m.Len())
	}
	m.ForgetOwner(docs)
	if m.Len() != 1 || m.Get(other, stable) == nil {
		t.Fatalf("ForgetOwner dropped another owner's records (%d left)", m.Len())
	}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := types.NamespacedName{Namespace: "ns", Name: string(rune('a' + i))}
			for range 100 {
				m.Set(o, stable, Record{Hash: "x"})
				_ = m.Get(o, stable)
			}
			m.ForgetOwner(o)
		}()
	}
	wg.Wait()
	if m.Len() != 1 {
		t.Fatalf("after concurrent use: %d records, want 1", m.Len())
	}
}
