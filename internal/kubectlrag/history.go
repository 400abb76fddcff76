package kubectlrag

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/podtemplate"
)

// HistoryRow is one revision of a RAGService and what became of it.
type HistoryRow struct {
	Revision int64
	Hash     string
	Created  time.Time
	// Space is the vector space the revision declares (its --space), "" for
	// the unnamed one.
	Space string
	// State is Stable, Canary, RolledBack, or the reason of the last event that
	// names the revision, or Superseded.
	State   string
	Message string
}

// revisionSpace reads the space a revision's pod template declares.
func revisionSpace(r appsv1.ControllerRevision) string {
	tpl, err := podtemplate.Decode(r.Data.Raw)
	if err != nil || tpl.Spec == nil {
		return ""
	}
	prefix := "--" + contract.FlagSpace + "="
	for _, c := range tpl.Spec.Containers {
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, prefix); ok {
				return v
			}
		}
	}
	return ""
}

// BuildHistory joins the service's ControllerRevisions with its status and
// events. Pure: the caller lists the objects.
func BuildHistory(svc *ragv1.RAGService, revs []appsv1.ControllerRevision, events []corev1.Event) []HistoryRow {
	events = sortedEvents(events)
	rows := make([]HistoryRow, 0, len(revs))
	for _, r := range revs {
		hash := r.Labels[ragv1.LabelRevision]
		if hash == "" {
			hash = strings.TrimPrefix(r.Name, svc.Name+"-")
		}
		row := HistoryRow{Revision: r.Revision, Hash: hash, Created: r.CreationTimestamp.Time, Space: revisionSpace(r)}
		st := &svc.Status
		switch {
		case hash == st.CanaryRevision:
			row.State = "Canary"
			row.Message = fmt.Sprintf("step %s, weight %d%% (effective %d%%)", stepNumber(svc), st.CanaryWeight, st.EffectiveWeight)
		case hash == st.StableRevision:
			row.State = "Stable"
		case st.Rollback != nil && hash == st.Rollback.Revision:
			row.State = "RolledBack"
			row.Message = st.Rollback.Reason
			if st.Rollback.Message != "" {
				row.Message += ": " + st.Rollback.Message
			}
		default:
			row.State = "Superseded"
			// The newest event that names this revision says how it ended.
			for i := len(events) - 1; i >= 0; i-- {
				if strings.Contains(events[i].Message, hash) {
					row.State, row.Message = events[i].Reason, events[i].Message
					break
				}
			}
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b HistoryRow) int {
		return cmp.Or(cmp.Compare(a.Revision, b.Revision), a.Created.Compare(b.Created))
	})
	return rows
}

// RenderHistory writes the revisions and then the events, oldest first.
func RenderHistory(w io.Writer, rows []HistoryRow, events []corev1.Event, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tHASH\tAGE\tSPACE\tSTATE\tMESSAGE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Revision, r.Hash, age(metav1.NewTime(r.Created), now), orDash(r.Space), r.State, oneLine(r.Message))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	events = sortedEvents(events)
	if len(events) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nEvents:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  AGE\tTYPE\tREASON\tMESSAGE")
	for _, e := range events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", age(metav1.NewTime(eventTime(e)), now), e.Type, e.Reason, oneLine(e.Message))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	return nil
}

// eventTime is when an event last happened, for core/v1 and events.k8s.io/v1 writers.
func eventTime(e corev1.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func sortedEvents(events []corev1.Event) []corev1.Event {
	out := slices.Clone(events)
	slices.SortStableFunc(out, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	return out
}

func newHistoryCommand(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List a RAGService's revisions with their results and the rollout events",
		Args:  exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			svc, err := getService(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			var revList appsv1.ControllerRevisionList
			if err := c.List(ctx, &revList, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: svc.Name}); err != nil {
				return fmt.Errorf("list revisions of %s/%s: %w", ns, svc.Name, err)
			}
			var revs []appsv1.ControllerRevision
			for _, r := range revList.Items {
				if ownedBy(&r, svc) {
					revs = append(revs, r)
				}
			}
			var evList corev1.EventList
			if err := c.List(ctx, &evList, client.InNamespace(ns), client.MatchingFields{
				"involvedObject.kind": "RAGService",
				"involvedObject.name": svc.Name,
			}); err != nil {
				return fmt.Errorf("list events of %s/%s: %w", ns, svc.Name, err)
			}
			var events []corev1.Event
			for _, e := range evList.Items {
				if e.InvolvedObject.UID == "" || e.InvolvedObject.UID == svc.UID {
					events = append(events, e)
				}
			}
			rows := BuildHistory(svc, revs, events)
			if output != "" {
				return printObject(o.streams.Out, output, NewHistoryView(svc, rows, events))
			}
			return RenderHistory(o.streams.Out, rows, events, time.Now())
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}
