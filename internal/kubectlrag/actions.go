package kubectlrag

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// newAnnotateCommand sets a command annotation to a fresh token: the time of
// the request, to the nanosecond, so two requests are two tokens. The operator
// acts once per token, records it in status.lastHandled with an event, and
// leaves the annotation as it is.
func newAnnotateCommand(o *options, verb, annotation, short string) *cobra.Command {
	var full bool
	c := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, what := annotation, verb
			if full {
				key, what = ragv1.AnnotationPromoteFull, verb+" --full"
			}
			token := time.Now().UTC().Format(time.RFC3339Nano)
			svc, ns, err := o.mergePatch(cmd, what, args[0], map[string]any{
				"metadata": map[string]any{"annotations": map[string]string{key: token}},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "ragservice %s/%s: %s requested (%s=%s)\n", ns, args[0], what, key, token)
			if svc.Status.CanaryRevision == "" && verb != "retry" && verb != "accept-space" {
				fmt.Fprintf(o.streams.Out, "note: no canary is running now; the operator ignores this token, and it will not act on a later canary\n")
			}
			return nil
		},
	}
	if verb == "promote" {
		c.Flags().BoolVar(&full, "full", false, "skip every remaining step (rag.ragops.io/promote-full) instead of moving past the current one")
	}
	return c
}

// newPauseCommand sets spec.rollout.paused. It is a spec field, not an
// annotation, so GitOps tools see the hold and can own it.
func newPauseCommand(o *options, verb string, paused bool, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, ns, err := o.mergePatch(cmd, verb, args[0], map[string]any{
				"spec": map[string]any{"rollout": map[string]any{"paused": paused}},
			})
			if err != nil {
				return err
			}
			state := "paused"
			if !paused {
				state = "resumed"
			}
			fmt.Fprintf(o.streams.Out, "ragservice %s/%s: %s\n", ns, args[0], state)
			return nil
		},
	}
}

// mergePatch sends a JSON merge patch to one RAGService and returns it as the
// API server answered.
func (o *options) mergePatch(cmd *cobra.Command, verb, name string, body map[string]any) (*ragv1.RAGService, string, error) {
	c, ns, err := o.client()
	if err != nil {
		return nil, "", err
	}
	patch, err := json.Marshal(body)
	if err != nil {
		return nil, "", fmt.Errorf("build patch: %w", err)
	}
	svc := &ragv1.RAGService{}
	svc.Namespace, svc.Name = ns, name
	if err := c.Patch(cmd.Context(), svc, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
		return nil, "", fmt.Errorf("%s ragservice %s/%s: %w", verb, ns, name, err)
	}
	return svc, ns, nil
}
