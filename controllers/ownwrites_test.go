package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

func TestOwnWrites(t *testing.T) {
	at := func(rv string, phase ragv1.Phase) *ragv1.RAGService {
		return &ragv1.RAGService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "docs", ResourceVersion: rv}, Status: ragv1.RAGServiceStatus{Phase: phase}}
	}
	var o ownWrites
	if got := o.fresher(at("1", ragv1.PhasePending)); got.ResourceVersion != "1" {
		t.Errorf("no write yet: got version %s, want the read 1", got.ResourceVersion)
	}

	// A write replaced version 1 with 2; a second replaced 2 with 3.
	o.wrote("1", at("2", ragv1.PhaseProgressing))
	o.wrote("2", at("3", ragv1.PhasePaused))
	for _, stale := range []string{"1", "2"} {
		got := o.fresher(at(stale, ragv1.PhasePending))
		if got.ResourceVersion != "3" || got.Status.Phase != ragv1.PhasePaused {
			t.Errorf("read of replaced version %s: got %s %s, want the last write (3 Paused)", stale, got.ResourceVersion, got.Status.Phase)
		}
	}
	// What fresher returns is a copy: the pass may change it.
	o.fresher(at("1", ragv1.PhasePending)).Status.Phase = ragv1.PhaseDegraded
	if got := o.fresher(at("1", ragv1.PhasePending)); got.Status.Phase != ragv1.PhasePaused {
		t.Errorf("the remembered write was changed through a returned copy: %s", got.Status.Phase)
	}

	// The cache caught up (or someone else wrote): the read stands and the
	// memory goes, so a later read of an old version is the read again.
	if got := o.fresher(at("3", ragv1.PhasePaused)); got.ResourceVersion != "3" {
		t.Errorf("read of the written version: got %s", got.ResourceVersion)
	}
	if got := o.fresher(at("1", ragv1.PhasePending)); got.ResourceVersion != "1" {
		t.Errorf("after the cache caught up: got %s, want the read 1 (memory dropped)", got.ResourceVersion)
	}

	// A write without a known previous version, then forget.
	o.wrote("", at("5", ragv1.PhaseHealthy))
	if got := o.fresher(at("4", ragv1.PhasePending)); got.ResourceVersion != "4" {
		t.Errorf("a version the write did not name as replaced: got %s, want the read", got.ResourceVersion)
	}
	o.wrote("4", at("5", ragv1.PhaseHealthy))
	o.forget(keyOf("ns", "docs"))
	if got := o.fresher(at("4", ragv1.PhasePending)); got.ResourceVersion != "4" {
		t.Errorf("after forget: got %s, want the read", got.ResourceVersion)
	}
}
