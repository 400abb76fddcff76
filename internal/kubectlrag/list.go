package kubectlrag

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// RenderList writes one line per RAGService.
func RenderList(w io.Writer, items []ragv1.RAGService, allNamespaces bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tREADY\tPHASE\tSTABLE\tCANARY\tSTEP\tWEIGHT\tAGE")
	for i := range items {
		s := &items[i]
		ready := "Unknown"
		if c := meta.FindStatusCondition(s.Status.Conditions, ragv1.ConditionReady); c != nil {
			ready = string(c.Status)
		}
		step, weight := "-", "-"
		if s.Status.CanaryRevision != "" {
			step = stepNumber(s)
			weight = fmt.Sprintf("%d%%", s.Status.EffectiveWeight)
		}
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", s.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, ready, orNone(string(s.Status.Phase)),
			orNone(s.Status.StableRevision), orNone(s.Status.CanaryRevision), step, weight, age(s.CreationTimestamp, now))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write list: %w", err)
	}
	return nil
}

func newListCommand(o *options) *cobra.Command {
	var all bool
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List RAGServices with their rollout state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			var list ragv1.RAGServiceList
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("list ragservices: %w", err)
			}
			if output != "" {
				return printObject(o.streams.Out, output, NewListView(list.Items))
			}
			if len(list.Items) == 0 {
				if all {
					fmt.Fprintln(o.streams.ErrOut, "No RAGServices found.")
				} else {
					fmt.Fprintf(o.streams.ErrOut, "No RAGServices found in namespace %s.\n", ns)
				}
				return nil
			}
			return RenderList(o.streams.Out, list.Items, all, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list RAGServices in all namespaces")
	addOutputFlag(cmd, &output)
	return cmd
}
