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

// newAnnotateCommand sets a one-shot annotation; the operator acts on it once,
// removes it and records an event. The value is the time of the request, so two
// requests are two distinct writes.
func newAnnotateCommand(o *options, verb, annotation, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			patch, err := json.Marshal(map[string]any{
				"metadata": map[string]any{"annotations": map[string]string{
					annotation: time.Now().UTC().Format(time.RFC3339),
				}},
			})
			if err != nil {
				return fmt.Errorf("build patch: %w", err)
			}
			svc := &ragv1.RAGService{}
			svc.Namespace, svc.Name = ns, args[0]
			if err := c.Patch(cmd.Context(), svc, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
				return fmt.Errorf("%s ragservice %s/%s: %w", verb, ns, args[0], err)
			}
			fmt.Fprintf(o.streams.Out, "ragservice %s/%s: %s requested\n", ns, args[0], verb)
			if svc.Status.CanaryRevision == "" && verb != "retry" {
				fmt.Fprintf(o.streams.Out, "note: no canary is running now; the operator ignores the request unless one starts\n")
			}
			return nil
		},
	}
}

// newPauseCommand sets spec.rollout.paused. It is a spec field, not an
// annotation, so GitOps tools see the hold and can own it.
func newPauseCommand(o *options, verb string, paused bool, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			patch, err := json.Marshal(map[string]any{
				"spec": map[string]any{"rollout": map[string]any{"paused": paused}},
			})
			if err != nil {
				return fmt.Errorf("build patch: %w", err)
			}
			svc := &ragv1.RAGService{}
			svc.Namespace, svc.Name = ns, args[0]
			if err := c.Patch(cmd.Context(), svc, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
				return fmt.Errorf("%s ragservice %s/%s: %w", verb, ns, args[0], err)
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
