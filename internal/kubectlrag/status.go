package kubectlrag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

type statusOptions struct {
	*options
	watch   bool
	timeout time.Duration
	output  string
}

func newStatusCommand(o *options) *cobra.Command {
	so := &statusOptions{options: o}
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a RAGService's rollout; with --watch, wait for it to finish",
		Long: `Show the tracks, the canary step and weights, the last analysis and the
conditions of a RAGService. Each revision runs in a Deployment of its own
(<name>-<revision>); its track (stable, canary, or retiring after a promotion
until spec.rollout.scaleDownDelay has passed) is the one the RAGService's
status gives it.

With -o json or -o yaml it prints the same as data: the outcome the exit code
gives and why, the step (numbered from 1), each revision's Deployment, track
and pods, and the RAGService's status; with --watch, one document per change.

Exit codes: 0 Healthy at the current generation; 1 RolledBack, Degraded or
Stalled; 2 --timeout reached while watching; 3 still in progress (without
--watch); 4 usage or API errors.`,
		Example: `  # Wait in CI for a rollout to finish, at most 15 minutes
  kubectl rag status docs -n search --watch --timeout 15m

  # The phase and the canary's analysis, for a script
  kubectl rag status docs -n search -o json | jq '.status.phase, .status.analysis'`,
		Args: exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return so.run(cmd.Context(), args[0])
		},
	}
	cmd.Flags().BoolVarP(&so.watch, "watch", "w", false, "print a new view on each change until Healthy, RolledBack, Degraded or Stalled")
	cmd.Flags().DurationVar(&so.timeout, "timeout", 0, "with --watch, give up after this long and exit 2 (0: no limit)")
	addOutputFlag(cmd, &so.output)
	return cmd
}

func (o *statusOptions) run(ctx context.Context, name string) error {
	if o.timeout < 0 {
		return withCode(ExitError, "--timeout must not be negative")
	}
	if err := checkOutput(o.output); err != nil {
		return err
	}
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	if o.watch && o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	svc, err := getService(ctx, c, ns, name)
	if err != nil {
		if ctx.Err() != nil {
			return o.timedOut(ns, name)
		}
		return err
	}
	var last []byte
	show := func(svc *ragv1.RAGService) error {
		var buf bytes.Buffer
		now := time.Now()
		tracks := Tracks(svc, readDeployments(ctx, c, svc), now)
		if o.output != "" {
			if err := printObject(&buf, o.output, NewStatusView(svc, tracks)); err != nil {
				return err
			}
		} else if err := RenderStatus(&buf, svc, tracks, now); err != nil {
			return err
		}
		if bytes.Equal(buf.Bytes(), last) {
			return nil
		}
		if last != nil && o.output == "" {
			fmt.Fprintln(o.streams.Out)
		}
		last = buf.Bytes()
		_, err := o.streams.Out.Write(last)
		return err
	}
	if err := show(svc); err != nil {
		return err
	}
	if !o.watch {
		return verdict(svc, false)
	}
	for {
		if out, _ := Evaluate(svc); out != InProgress {
			return verdict(svc, true)
		}
		next, err := o.watchOnce(ctx, c, svc, show)
		switch {
		case ctx.Err() != nil:
			return o.timedOut(ns, name)
		case errors.Is(err, errDeleted):
			return fmt.Errorf("ragservice %s/%s: %w", ns, name, err)
		case err != nil:
			return err
		}
		svc = next
	}
}

// watchOnce follows the object from svc's resourceVersion until it becomes
// terminal or the watch ends (the server closes watches now and then); it returns
// the newest object it saw.
func (o *statusOptions) watchOnce(ctx context.Context, c client.WithWatch, svc *ragv1.RAGService, show func(*ragv1.RAGService) error) (*ragv1.RAGService, error) {
	w, err := c.Watch(ctx, &ragv1.RAGServiceList{},
		client.InNamespace(svc.Namespace),
		client.MatchingFields{"metadata.name": svc.Name},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: svc.ResourceVersion, AllowWatchBookmarks: true}})
	if err != nil {
		if ctx.Err() != nil {
			return svc, nil
		}
		return nil, fmt.Errorf("watch ragservice %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return svc, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				// Re-read: the object may have changed while no watch ran.
				return getService(ctx, c, svc.Namespace, svc.Name)
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				next, isSvc := ev.Object.(*ragv1.RAGService)
				if !isSvc {
					continue
				}
				svc = next
				if err := show(svc); err != nil {
					return nil, err
				}
				if out, _ := Evaluate(svc); out != InProgress {
					return svc, nil
				}
			case watch.Deleted:
				return nil, errDeleted
			case watch.Error:
				// Usually "resource version too old": start over from a fresh read.
				return getService(ctx, c, svc.Namespace, svc.Name)
			}
		}
	}
}

func (o *statusOptions) timedOut(ns, name string) error {
	return withCode(ExitTimeout, "timed out after %s waiting for ragservice %s/%s to become Healthy", o.timeout, ns, name)
}

// verdict turns the outcome into the exit code contract.
func verdict(svc *ragv1.RAGService, watched bool) error {
	out, why := Evaluate(svc)
	switch out {
	case Succeeded:
		return nil
	case Failed:
		return withCode(ExitFailed, "ragservice %s/%s: %s", svc.Namespace, svc.Name, why)
	default:
		if watched {
			return withCode(ExitTimeout, "ragservice %s/%s: %s", svc.Namespace, svc.Name, why)
		}
		return withCode(ExitProgressing, "ragservice %s/%s is in progress: %s", svc.Namespace, svc.Name, why)
	}
}

// previousTrackLabel selected the pods of <name>-stable and <name>-canary,
// the Deployments of the layout before one Deployment per revision.
const previousTrackLabel = "rag.ragops.io/track"

// readDeployments lists the service's Deployments. A user who may read
// RAGServices but not Deployments still gets the rest of the view: nil then.
func readDeployments(ctx context.Context, c client.Client, svc *ragv1.RAGService) []RevisionDeployment {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace(svc.Namespace),
		client.MatchingLabels{ragv1.LabelInstance: svc.Name, ragv1.LabelName: ragv1.NameEmbedServer}); err != nil {
		return nil
	}
	out := []RevisionDeployment{}
	for _, d := range list.Items {
		if !ownedBy(&d, svc) {
			continue
		}
		var want int32 = 1
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		rev := d.Spec.Template.Labels[ragv1.LabelRevision]
		if rev == "" {
			rev = d.Labels[ragv1.LabelRevision]
		}
		previous := d.Spec.Selector != nil && d.Spec.Selector.MatchLabels[previousTrackLabel] != ""
		out = append(out, RevisionDeployment{Name: d.Name, Revision: rev, Replicas: want, Ready: d.Status.ReadyReplicas, Previous: previous})
	}
	return out
}

// ownedBy is true when obj has an owner reference to svc (this object, not an
// earlier one of the same name).
func ownedBy(obj metav1.Object, svc *ragv1.RAGService) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == svc.UID {
			return true
		}
	}
	return false
}
