package controllers

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/embeddingspace"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/rollout"
)

// Reasons of a probe set the operator cannot read.
const (
	ReasonProbesNotFound = "ProbesNotFound"
	ReasonInvalidProbes  = "InvalidProbes"
)

// probeTimeout bounds one space check: both tracks embed every probe in one
// request each.
const probeTimeout = 20 * time.Second

// spaceInput is what the planner needs of spec.embedding.space and
// spec.rollout.spaceCheck.
func spaceInput(svc *ragv1.RAGService) rollout.SpaceInput {
	enabled := svc.Spec.Rollout.SpaceCheck.Enabled
	return rollout.SpaceInput{Declared: svc.Spec.Embedding.Space, Check: enabled == nil || *enabled}
}

// loadProbes reads the probe texts: the ConfigMap key the spec names, or the
// built-in set. A ConfigMap that is missing, lacks the key or holds no usable
// probes is a problem for a person (the service heals when it is fixed: the
// ConfigMap is watched); a failed read is an error.
func (r *RAGServiceReconciler) loadProbes(ctx context.Context, svc *ragv1.RAGService) ([]string, *rollout.Problem, error) {
	src := svc.Spec.Rollout.SpaceCheck.Probes
	if src == nil || src.ConfigMapRef == nil {
		return embeddingspace.BuiltinProbes(), nil, nil
	}
	ref := src.ConfigMapRef
	cm := &corev1.ConfigMap{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: svc.Namespace, Name: ref.Name}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil, &rollout.Problem{Reason: ReasonProbesNotFound, Message: fmt.Sprintf(
			"ConfigMap %q named by spec.rollout.spaceCheck.probes.configMapRef does not exist", ref.Name)}, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading probe ConfigMap %q: %w", ref.Name, err)
	}
	content, ok := cm.Data[ref.Key]
	if !ok {
		return nil, &rollout.Problem{Reason: ReasonProbesNotFound, Message: fmt.Sprintf(
			"ConfigMap %q has no key %q named by spec.rollout.spaceCheck.probes.configMapRef", ref.Name, ref.Key)}, nil
	}
	probes, err := embeddingspace.ParseProbes(content)
	if err != nil {
		return nil, &rollout.Problem{Reason: ReasonInvalidProbes, Message: fmt.Sprintf(
			"ConfigMap %q key %q named by spec.rollout.spaceCheck.probes.configMapRef: %v", ref.Name, ref.Key, err)}, nil
	}
	return probes, nil, nil
}

// checkSpace sends the probes, with the long probes that show truncation, to
// one ready pod of each track and compares the answers. A failed request is a failed attempt (Pending, retried by the
// planner with backoff), never a verdict.
func (r *RAGServiceReconciler) checkSpace(ctx context.Context, s *scope, in rollout.Input, stablePods, canaryPods []corev1.Pod) *ragv1.EmbeddingSpaceStatus {
	rev := in.Memory.CanaryRevision
	stableURL, canaryURL := r.apiURL(stablePods), r.apiURL(canaryPods)
	if stableURL == "" || canaryURL == "" {
		st := embeddingspace.Failed(fmt.Errorf("no ready pod with an IP on each track to probe"), rev, s.now)
		return &st
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	probes := embeddingspace.WithLongProbes(s.probes)
	var stableVecs, canaryVecs [][]float32
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		var statuses []int
		stableVecs, statuses, err = r.probe().EmbedProbes(gctx, stableURL, "", probes, embeddingspace.IsLongProbe)
		countSpaceProbes(s.obj, ragv1.TrackStable, statuses)
		return err
	})
	g.Go(func() (err error) {
		var statuses []int
		canaryVecs, statuses, err = r.probe().EmbedProbes(gctx, canaryURL, "", probes, embeddingspace.IsLongProbe)
		countSpaceProbes(s.obj, ragv1.TrackCanary, statuses)
		return err
	})
	if err := g.Wait(); err != nil {
		st := embeddingspace.Failed(err, rev, s.now)
		return &st
	}
	st := embeddingspace.Check(stableVecs, canaryVecs, s.obj.Spec.Rollout.SpaceCheck, rev, s.now)
	return &st
}

// apiURL is the API base URL of the first of pods (by name) that has an IP.
func (r *RAGServiceReconciler) apiURL(pods []corev1.Pod) string {
	if urls := r.apiURLs(pods); len(urls) > 0 {
		return urls[0]
	}
	return ""
}

// apiURLs are the API base URLs of the pods that have an IP, by pod name.
func (r *RAGServiceReconciler) apiURLs(pods []corev1.Pod) []string {
	port := r.APIPort
	if port == 0 {
		port = podtemplate.HTTPPort
	}
	sorted := append([]corev1.Pod(nil), pods...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var out []string
	for _, p := range sorted {
		if p.Status.PodIP != "" {
			out = append(out, "http://"+net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)))
		}
	}
	return out
}
