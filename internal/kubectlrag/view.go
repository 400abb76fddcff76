package kubectlrag

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// RenderStatus writes the human view of a RAGService. It is pure: now makes the
// ages, tracks come from the caller (Tracks).
func RenderStatus(w io.Writer, svc *ragv1.RAGService, tracks []Track, now time.Time) error {
	st := &svc.Status
	spec := &svc.Spec
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	field := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", name, fmt.Sprintf(format, args...))
	}

	field("Name", "%s", svc.Name)
	field("Namespace", "%s", svc.Namespace)
	phase := string(st.Phase)
	if phase == "" {
		phase = "<none>"
	}
	outcome, why := Evaluate(svc)
	field("Phase", "%s", phase)
	if outcome != Succeeded {
		field("Message", "%s", why)
	}
	field("Generation", "%d (observed %d)", svc.Generation, st.ObservedGeneration)
	strategy := spec.Rollout.Strategy
	if strategy == "" {
		strategy = ragv1.StrategyCanary
	}
	field("Strategy", "%s", strategy)
	desired := int32(1)
	if spec.Replicas != nil {
		desired = *spec.Replicas
	}
	field("Replicas", "%d desired, %d current, %d ready", desired, st.Replicas, st.ReadyReplicas)
	if spec.Rollout.Paused {
		field("Paused", "yes (spec.rollout.paused; resume with: kubectl rag resume %s)", svc.Name)
	}
	if st.CanaryRevision != "" {
		field("Step", "%s", describeStep(spec.Rollout.Steps, st.CurrentStep, st.StepStartTime, now))
		field("Weight", "%d%% desired, %d%% effective", st.CanaryWeight, st.EffectiveWeight)
	}
	if b := budgetLine(svc); b != "" {
		field("Budget", "%s", b)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}

	if len(tracks) > 0 {
		fmt.Fprintln(w, "Tracks:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TRACK\tREVISION\tDEPLOYMENT\tPODS")
		for _, t := range tracks {
			pods := "-"
			if t.Deployment != "" {
				pods = fmt.Sprintf("%d/%d ready", t.Ready, t.Replicas)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s", t.Name, orNone(t.Revision), orDash(t.Deployment), pods)
			if t.Note != "" {
				fmt.Fprintf(tw, "\t%s", t.Note)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write tracks: %w", err)
		}
	}

	if a := st.Analysis; a != nil {
		limit := int32(1)
		if an := spec.Rollout.Analysis; an != nil && an.FailureLimit != nil {
			limit = *an.FailureLimit
		}
		p99 := "-"
		if a.LatencyP99 != nil {
			p99 = a.LatencyP99.Duration.String()
		}
		fmt.Fprintf(w, "Analysis:    %s %s ago (revision %s): %d requests, error rate %s, shed rate %s, failure rate %s, p99 %s, failures %d (tolerated %d)\n",
			a.Verdict, age(a.Time, now), orNone(a.Revision), a.Requests, orDash(a.ErrorRate), orDash(a.ShedRate), orDash(a.FailureRate), p99, a.Failures, limit)
		if b := a.Baseline; b != nil {
			bp99 := "-"
			if b.LatencyP99 != nil {
				bp99 = b.LatencyP99.Duration.String()
			}
			fmt.Fprintf(w, "  stable:    %d requests, failure rate %s, p99 %s\n", b.Requests, orDash(b.FailureRate), bp99)
		}
		if a.Message != "" {
			fmt.Fprintf(w, "             %s\n", a.Message)
		}
	}
	renderSpace(w, svc, now)
	renderSpaceWatch(w, svc, now)
	if rb := st.Rollback; rb != nil {
		fmt.Fprintf(w, "Rollback:    revision %s, %s, %s ago", rb.Revision, rb.Reason, age(rb.Time, now))
		if rb.Message != "" {
			fmt.Fprintf(w, ": %s", rb.Message)
		}
		fmt.Fprintln(w)
	}

	if h := st.LastHandled; h != nil && h.Result != "" {
		fmt.Fprintf(w, "Last command: %s\n", h.Result)
	}

	if len(st.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
		for _, c := range st.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(c.LastTransitionTime, now), oneLine(c.Message))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write conditions: %w", err)
		}
	}
	return nil
}

// renderSpace says which vector space stable serves, what the last check of a
// canary's space found, and what a cutover waits for.
func renderSpace(w io.Writer, svc *ragv1.RAGService, now time.Time) {
	st := &svc.Status
	es := st.EmbeddingSpace
	if es == nil {
		return
	}
	fmt.Fprintf(w, "Space:       %s (stable)\n", spaceName(es.Name))
	if es.Revision != "" && es.Verdict != "" {
		fmt.Fprintf(w, "Space check: %s for revision %s", es.Verdict, es.Revision)
		if es.Time != nil {
			fmt.Fprintf(w, ", %s ago", age(*es.Time, now))
		}
		if es.Probes > 0 {
			fmt.Fprintf(w, ": %d probes, dimensions %d -> %d, min cosine %s, mean cosine %s, neighbour overlap %s",
				es.Probes, es.StableDimensions, es.CanaryDimensions, orDash(es.MinCosine), orDash(es.MeanCosine), orDash(es.NeighborOverlap))
		}
		if es.Attempts > 0 && es.Verdict == ragv1.SpacePending {
			fmt.Fprintf(w, " (%d failed probe attempts)", es.Attempts)
		}
		fmt.Fprintln(w)
		if es.Message != "" {
			fmt.Fprintf(w, "             %s\n", oneLine(es.Message))
		}
	}
	c := st.CanaryRevision
	if c == "" || es.Revision != c || es.CanarySpace == es.Name {
		return
	}
	preview := svc.Name + "-" + TrackCanary // the Service of the canary's revision
	if c == st.StableRevision {
		fmt.Fprintf(w, "Cutover:     clients moved to space %s (revision %s); stable is taking its template, then both tracks serve it\n", spaceName(es.CanarySpace), c)
		return
	}
	fmt.Fprintf(w, "Cutover:     space %s -> %s with revision %s, previewed on Service %s while clients stay on stable;\n", spaceName(es.Name), spaceName(es.CanarySpace), c, preview)
	fmt.Fprintf(w, "             re-index against %s, then: kubectl rag promote %s\n", preview, svc.Name)
}

func spaceName(s string) string {
	if s == "" {
		return `"" (unnamed)`
	}
	return s
}

// describeStep says which canary step runs, as "2/4: pause 1m (30s elapsed)".
func describeStep(steps []ragv1.RolloutStep, current int32, start *metav1.Time, now time.Time) string {
	if len(steps) == 0 {
		return "1/1: setWeight 100"
	}
	if current < 0 || int(current) >= len(steps) {
		return fmt.Sprintf("%d/%d: done", len(steps), len(steps))
	}
	s := steps[current]
	var what string
	switch {
	case s.SetWeight != nil:
		what = fmt.Sprintf("setWeight %d", *s.SetWeight)
	case s.Pause != nil && s.Pause.Duration != nil:
		what = "pause " + s.Pause.Duration.Duration.String()
	case s.Pause != nil:
		what = "pause until promoted (kubectl rag promote)"
	}
	out := fmt.Sprintf("%d/%d: %s", current+1, len(steps), what)
	if start != nil {
		out += fmt.Sprintf(" (%s elapsed)", age(*start, now))
	}
	return out
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// budgetLine describes the service's upstream budget and each pod's share as
// the operator handed it out (status.budget); empty when none is declared.
// The pods' own view is GET /budget on their admin port.
func budgetLine(svc *ragv1.RAGService) string {
	up := svc.Spec.Embedding.Upstream
	b := svc.Status.Budget
	if b == nil {
		if up.RequestsPerMinute == 0 && up.TokensPerMinute == 0 {
			return ""
		}
		return fmt.Sprintf("%s for the service, not handed out yet", perMinute(up.RequestsPerMinute, up.TokensPerMinute))
	}
	return fmt.Sprintf("%s for the service; %s per pod (divided by %d pods, %d told)",
		perMinute(b.RequestsPerMinute, b.TokensPerMinute), perMinute(b.PerPod.RequestsPerMinute, b.PerPod.TokensPerMinute), b.Pods, b.PodsTold)
}

func perMinute(calls, tokens int64) string {
	var parts []string
	if calls > 0 {
		parts = append(parts, fmt.Sprintf("%d calls/min", calls))
	}
	if tokens > 0 {
		parts = append(parts, fmt.Sprintf("%d tokens/min", tokens))
	}
	if len(parts) == 0 {
		return "no limit"
	}
	return strings.Join(parts, ", ")
}
