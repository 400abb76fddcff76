package kubectlrag

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// Output formats of -o, as kubectl names them. The empty format is the
// human view.
const (
	OutputJSON = "json"
	OutputYAML = "yaml"
)

// addOutputFlag adds -o/--output to cmd.
func addOutputFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", "", "output format: json or yaml (default: the human view)")
}

// checkOutput refuses a format this plugin does not print.
func checkOutput(format string) error {
	switch format {
	case "", OutputJSON, OutputYAML:
		return nil
	}
	return withCode(ExitError, "unknown output format %q: want json or yaml", format)
}

// printObject writes v as format (json or yaml). YAML documents start with
// "---", so a watch's successive views stay separate documents; JSON ones are
// one indented object each, as kubectl get -w -o json prints them.
func printObject(w io.Writer, format string, v any) error {
	var b []byte
	var err error
	switch format {
	case OutputJSON:
		b, err = json.MarshalIndent(v, "", "    ")
		b = append(b, '\n')
	case OutputYAML:
		b, err = yaml.Marshal(v)
		b = append([]byte("---\n"), b...)
	default:
		return checkOutput(format)
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", format, err)
	}
	_, err = w.Write(b)
	return err
}

// StatusView is what `status -o json|yaml` prints: the verdict the exit code
// gives, the step as the human view numbers it, the pods of each revision
// with its track (from status) and
// the RAGService's status as the operator wrote it.
type StatusView struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	// Outcome is Succeeded (exit 0), Failed (exit 1) or InProgress (exit 3, or 2
	// when --watch timed out); Reason says why.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
	// Step is the canary step in progress, numbered from 1 ("2/4"); empty
	// without a canary.
	Step   string                 `json:"step,omitempty"`
	Tracks []TrackView            `json:"tracks"`
	Status ragv1.RAGServiceStatus `json:"status"`
}

// TrackView is one Deployment of the service and the role status gives its
// revision (stable, canary, retiring or none), or a revision status names
// that no Deployment runs (deployment empty).
type TrackView struct {
	Track      string `json:"track"`
	Revision   string `json:"revision"`
	Deployment string `json:"deployment,omitempty"`
	Replicas   int32  `json:"replicas"`
	Ready      int32  `json:"ready"`
	Note       string `json:"note,omitempty"`
}

// NewStatusView builds the view of svc; tracks as for RenderStatus.
func NewStatusView(svc *ragv1.RAGService, tracks []Track) StatusView {
	out, why := Evaluate(svc)
	v := StatusView{Namespace: svc.Namespace, Name: svc.Name, Generation: svc.Generation, Outcome: out.String(), Reason: why,
		Tracks: []TrackView{}, Status: svc.Status}
	if svc.Status.CanaryRevision != "" {
		v.Step = stepNumber(svc)
	}
	for _, t := range tracks {
		v.Tracks = append(v.Tracks, TrackView{Track: t.Name, Revision: t.Revision, Deployment: t.Deployment, Replicas: t.Replicas, Ready: t.Ready, Note: t.Note})
	}
	return v
}

// stepNumber is the canary's step as "n/total", numbered from 1.
func stepNumber(s *ragv1.RAGService) string {
	n := len(s.Spec.Rollout.Steps)
	if n == 0 {
		n = 1 // the implicit setWeight 100
	}
	return fmt.Sprintf("%d/%d", min(int(s.Status.CurrentStep)+1, n), n)
}

// ListView is what `list -o json|yaml` prints: the RAGServices as `kubectl
// get ragservices -o json` lists them.
type ListView struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Items      []ragv1.RAGService `json:"items"`
}

// NewListView lists items with their kind filled in, as kubectl prints them.
func NewListView(items []ragv1.RAGService) ListView {
	v := ListView{APIVersion: "v1", Kind: "List", Items: make([]ragv1.RAGService, 0, len(items))}
	for _, s := range items {
		s.APIVersion, s.Kind = ragv1.GroupVersion.String(), "RAGService"
		s.ManagedFields = nil // noise for a reader; kubectl get hides it too
		v.Items = append(v.Items, s)
	}
	return v
}

// HistoryView is what `history -o json|yaml` prints.
type HistoryView struct {
	Namespace string             `json:"namespace"`
	Name      string             `json:"name"`
	Revisions []HistoryRowView   `json:"revisions"`
	Events    []HistoryEventView `json:"events"`
}

// HistoryRowView is one revision (HistoryRow) in JSON.
type HistoryRowView struct {
	Revision int64     `json:"revision"`
	Hash     string    `json:"hash"`
	Created  time.Time `json:"created"`
	Space    string    `json:"space"`
	State    string    `json:"state"`
	Message  string    `json:"message,omitempty"`
}

// HistoryEventView is one rollout event, oldest first.
type HistoryEventView struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}

// NewHistoryView is the history of svc as data.
func NewHistoryView(svc *ragv1.RAGService, rows []HistoryRow, events []corev1.Event) HistoryView {
	v := HistoryView{Namespace: svc.Namespace, Name: svc.Name, Revisions: []HistoryRowView{}, Events: []HistoryEventView{}}
	for _, r := range rows {
		v.Revisions = append(v.Revisions, HistoryRowView{Revision: r.Revision, Hash: r.Hash, Created: r.Created.UTC(), Space: r.Space, State: r.State, Message: r.Message})
	}
	for _, e := range sortedEvents(events) {
		v.Events = append(v.Events, HistoryEventView{Time: eventTime(e).UTC(), Type: e.Type, Reason: e.Reason, Message: e.Message})
	}
	return v
}
