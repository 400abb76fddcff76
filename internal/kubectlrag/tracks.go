package kubectlrag

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// Track names: the role status gives a revision. A revision's pods keep
// their Deployment when its role changes (a promotion hands the canary's pods
// over), so the role is read from status, never from a pod or Deployment label.
const (
	TrackStable   = "stable"
	TrackCanary   = "canary"
	TrackRetiring = "retiring"
	// TrackNone is a Deployment of a revision status does not name (a canary
	// being rolled back, or what is left once a handover is done).
	TrackNone = "none"
)

// defaultScaleDownDelay is spec.rollout.scaleDownDelay's default: how long a
// revision keeps its pods after it stopped being stable.
const defaultScaleDownDelay = 30 * time.Second

// Track is one Deployment the service runs, with the role status gives its
// revision.
type Track struct {
	Name       string // stable, canary, retiring or none
	Revision   string
	Deployment string // "" when status names a revision no Deployment runs
	Replicas   int32
	Ready      int32
	// Note says what happens to it next, e.g. "removed in 20s".
	Note string
}

// roles is what status says each revision is.
type roles struct {
	stable, canary, retiring string
	// retiringSince is when the retiring revision stopped being stable; nil
	// when it shrinks as the new one grows (strategy RollingUpdate).
	retiringSince  *time.Time
	scaleDownDelay time.Duration
}

// rolesOf reads the roles from the RAGService's status, and how long a
// retiring revision keeps its pods from its spec.
func rolesOf(svc *ragv1.RAGService) roles {
	st := &svc.Status
	r := roles{stable: st.StableRevision, canary: st.CanaryRevision, scaleDownDelay: defaultScaleDownDelay}
	if st.Retiring != nil {
		r.retiring = st.Retiring.Revision
		if st.Retiring.Since != nil {
			since := st.Retiring.Since.Time
			r.retiringSince = &since
		}
	}
	if d := svc.Spec.Rollout.ScaleDownDelay; d != nil {
		r.scaleDownDelay = max(d.Duration, 0)
	}
	return r
}

// RevisionDeployment is what one of the service's Deployments runs.
type RevisionDeployment struct {
	Name     string
	Revision string // of its pod template
	Replicas int32  // desired
	Ready    int32
	// Previous is a Deployment of the layout before one Deployment per
	// revision (<name>-stable, <name>-canary), which the operator replaces.
	Previous bool
}

// Tracks joins the service's Deployments with the roles status gives their
// revisions: stable, then canary, then retiring, then Deployments of no
// named revision; a named revision with no Deployment still gets a row.
// deployments nil means they could not be read (a user who may read
// RAGServices but not Deployments): the rows then come from status alone. It
// is pure: now dates the retiring revision's removal.
func Tracks(svc *ragv1.RAGService, deployments []RevisionDeployment, now time.Time) []Track {
	return tracksFor(rolesOf(svc), deployments, now)
}

func tracksFor(r roles, deployments []RevisionDeployment, now time.Time) []Track {
	if deployments != nil {
		deployments = slices.Clone(deployments)
		slices.SortFunc(deployments, func(a, b RevisionDeployment) int { return strings.Compare(a.Name, b.Name) })
	}
	var out []Track
	used := make([]bool, len(deployments))
	named := map[string]bool{}
	for _, role := range []struct{ name, rev string }{{TrackStable, r.stable}, {TrackCanary, r.canary}, {TrackRetiring, r.retiring}} {
		if role.rev == "" || named[role.rev] {
			continue
		}
		named[role.rev] = true
		found := false
		for i, d := range deployments {
			if d.Revision != role.rev {
				continue
			}
			used[i], found = true, true
			out = append(out, Track{Name: role.name, Revision: d.Revision, Deployment: d.Name, Replicas: d.Replicas, Ready: d.Ready,
				Note: noteOf(r, role.name, d, deployments, now)})
		}
		if !found {
			t := Track{Name: role.name, Revision: role.rev}
			if deployments != nil {
				t.Note = "no Deployment"
			}
			out = append(out, t)
		}
	}
	for i, d := range deployments {
		if used[i] {
			continue
		}
		note := "not named in status"
		if d.Previous {
			note = "previous layout"
		}
		out = append(out, Track{Name: TrackNone, Revision: d.Revision, Deployment: d.Name, Replicas: d.Replicas, Ready: d.Ready, Note: note})
	}
	return out
}

// noteOf says what comes next for one Deployment of a named revision.
func noteOf(r roles, track string, d RevisionDeployment, all []RevisionDeployment, now time.Time) string {
	if d.Previous {
		// The upgrade: the operator made <name>-<revision> beside it and
		// deletes it once that one has as many ready pods.
		for _, o := range all {
			if !o.Previous && o.Revision == d.Revision {
				return fmt.Sprintf("previous layout, removed once %s has %d ready", o.Name, d.Replicas)
			}
		}
		return "previous layout, to be replaced"
	}
	if track != TrackRetiring {
		return ""
	}
	if r.retiringSince == nil {
		return fmt.Sprintf("scaled down as %s grows", orNone(r.stable))
	}
	left := r.retiringSince.Add(r.scaleDownDelay).Sub(now)
	if left <= 0 {
		return "removal due"
	}
	return "removed in " + duration.HumanDuration(left)
}
