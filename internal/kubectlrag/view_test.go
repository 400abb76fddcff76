package kubectlrag

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

func TestEvaluate(t *testing.T) {
	cond := func(t string, s metav1.ConditionStatus, reason, msg string, gen int64) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen}
	}
	T, F := metav1.ConditionTrue, metav1.ConditionFalse
	ready := []metav1.Condition{cond(ragv1.ConditionReady, T, "Succeeded", "all replicas of the stable revision are ready", 3)}
	stalled := []metav1.Condition{cond(ragv1.ConditionStalled, T, "InvalidSpec", "bad", 0)}
	stalledAt := func(gen int64) []metav1.Condition {
		return []metav1.Condition{cond(ragv1.ConditionStalled, T, "InvalidSpec", "bad", gen)}
	}
	rolledBack := []metav1.Condition{cond(ragv1.ConditionStalled, T, "AnalysisFailed", "x", 2), cond(ragv1.ConditionRolledBack, T, "AnalysisFailed", "x", 2)}
	waiting := []metav1.Condition{cond(ragv1.ConditionReady, F, "WaitingForPromote", "Step 2/3: paused until the promote annotation", 2)}
	cases := []struct {
		name     string
		gen, obs int64
		phase    ragv1.Phase
		conds    []metav1.Condition
		want     Outcome
		why      string
	}{
		{"ready", 3, 3, ragv1.PhaseHealthy, ready, Succeeded, "healthy"},
		{"ready but stale", 4, 3, ragv1.PhaseHealthy, ready, InProgress, "observe generation 4"},
		{"rolled back but stale", 4, 3, ragv1.PhaseRolledBack, rolledBack, InProgress, "observe generation 4"},
		{"rolled back", 2, 2, ragv1.PhaseRolledBack, rolledBack, Failed, "rolled back revision b: AnalysisFailed: error rate 0.5"},
		{"stalled (degraded)", 2, 2, ragv1.PhaseDegraded, stalled, Failed, "stalled: InvalidSpec: bad"},
		{"a phase alone decides nothing", 2, 2, ragv1.PhaseHealthy, waiting, InProgress, "Healthy: Step 2/3"},
		{"stalled on the current spec without a clean pass", 3, 2, ragv1.PhaseHealthy, stalledAt(3), Failed, "stalled: InvalidSpec"},
		{"stalled on an older spec", 3, 2, ragv1.PhaseHealthy, stalledAt(2), InProgress, "observe generation 3"},
		{"waiting for promote", 2, 2, ragv1.PhasePaused, waiting, InProgress, "Paused: Step 2/3: paused until the promote annotation"},
		{"no conditions yet", 1, 1, ragv1.PhasePending, nil, InProgress, "no status yet"},
		{"no status", 1, 0, "", nil, InProgress, "observe generation 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &ragv1.RAGService{}
			svc.Generation = tc.gen
			svc.Status.ObservedGeneration = tc.obs
			svc.Status.Phase = tc.phase
			svc.Status.Conditions = tc.conds
			svc.Status.Rollback = &ragv1.RollbackStatus{Revision: "b", Reason: "AnalysisFailed", Message: "error rate 0.5"}
			got, why := Evaluate(svc)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("Evaluate = %v %q, want %v containing %q", got, why, tc.want, tc.why)
			}
		})
	}
}

func TestDescribeStep(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	start := metav1.NewTime(now.Add(-90 * time.Second))
	steps := []ragv1.RolloutStep{
		{SetWeight: ptr.To[int32](20)},
		{Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
		{Pause: &ragv1.PauseStep{}},
	}
	cases := []struct {
		steps   []ragv1.RolloutStep
		current int32
		start   *metav1.Time
		want    string
	}{
		{steps, 0, nil, "1/3: setWeight 20"},
		{steps, 1, &start, "2/3: pause 1m0s (90s elapsed)"},
		{steps, 2, nil, "3/3: pause until promoted (kubectl rag promote)"},
		{steps, 3, nil, "3/3: done"},
		{nil, 0, nil, "1/1: setWeight 100"},
	}
	for _, tc := range cases {
		if got := describeStep(tc.steps, tc.current, tc.start, now); got != tc.want {
			t.Errorf("describeStep(%d) = %q, want %q", tc.current, got, tc.want)
		}
	}
}

func TestRenderStatusGolden(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	svc := &ragv1.RAGService{
		ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "search", Generation: 4},
		Spec: ragv1.RAGServiceSpec{Replicas: ptr.To[int32](4), Rollout: ragv1.RolloutSpec{
			Steps:    []ragv1.RolloutStep{{SetWeight: ptr.To[int32](25)}, {Pause: &ragv1.PauseStep{}}},
			Analysis: &ragv1.AnalysisSpec{FailureLimit: ptr.To[int32](2)},
		}},
		Status: ragv1.RAGServiceStatus{
			ObservedGeneration: 4, Phase: ragv1.PhaseProgressing, Replicas: 5, ReadyReplicas: 5,
			RolloutStatus: ragv1.RolloutStatus{
				StableRevision: "7c9f5d", CanaryRevision: "5d2a11", CurrentStep: 0, CanaryWeight: 25, EffectiveWeight: 20,
				StepStartTime: ptr.To(ago(2 * time.Minute)),
				Analysis: &ragv1.AnalysisStatus{Time: ago(10 * time.Second), Revision: "5d2a11", Requests: 120,
					ErrorRate: "0.001", ShedRate: "0", LatencyP99: &metav1.Duration{Duration: 80 * time.Millisecond},
					FailureRate: "0.0020", Baseline: &ragv1.BaselineStatus{Requests: 480, FailureRate: "0.0021", LatencyP99: &metav1.Duration{Duration: 75 * time.Millisecond}},
					Verdict: ragv1.VerdictPass, Failures: 1},
				LastHandled: &ragv1.HandledCommands{Promote: "2026-11-27T09:58:00.1Z",
					Result: `promote token "2026-11-27T09:58:00.1Z" ignored: the embedding-space check of revision 5d2a11 has not passed yet`},
			},
			Conditions: []metav1.Condition{
				{Type: "Ready", Status: "False", Reason: "Progressing", Message: "canary at step 1/2", LastTransitionTime: ago(2 * time.Minute)},
			},
		},
	}
	var buf bytes.Buffer
	deps := []RevisionDeployment{{Name: "docs-7c9f5d", Revision: "7c9f5d", Replicas: 4, Ready: 4}, {Name: "docs-5d2a11", Revision: "5d2a11", Replicas: 1, Ready: 1}}
	if err := RenderStatus(&buf, svc, Tracks(svc, deps, now), now); err != nil {
		t.Fatal(err)
	}
	want := `Name:        docs
Namespace:   search
Phase:       Progressing
Message:     Progressing: canary at step 1/2
Generation:  4 (observed 4)
Strategy:    Canary
Replicas:    4 desired, 5 current, 5 ready
Step:        1/2: setWeight 25 (2m elapsed)
Weight:      25% desired, 20% effective
Tracks:
  TRACK   REVISION  DEPLOYMENT   PODS
  stable  7c9f5d    docs-7c9f5d  4/4 ready
  canary  5d2a11    docs-5d2a11  1/1 ready
Analysis:    Pass 10s ago (revision 5d2a11): 120 requests, error rate 0.001, shed rate 0, failure rate 0.0020, p99 80ms, failures 1 (tolerated 2)
  stable:    480 requests, failure rate 0.0021, p99 75ms
Last command: promote token "2026-11-27T09:58:00.1Z" ignored: the embedding-space check of revision 5d2a11 has not passed yet
Conditions:
  TYPE   STATUS  REASON       AGE  MESSAGE
  Ready  False   Progressing  2m   canary at step 1/2
`
	if got := buf.String(); got != want {
		t.Errorf("view differs.\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// Tracks take each revision's role from status and its pods from its
// Deployment: a promotion changes the role of the same Deployment, the
// previous stable revision counts down to its removal, and Deployments of the
// layout before one per revision or of no named revision are shown for what
// they are.
func TestTracks(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	since := now.Add(-10 * time.Second)
	long := now.Add(-time.Minute)
	dep := func(name, rev string, replicas, ready int32) RevisionDeployment {
		return RevisionDeployment{Name: name, Revision: rev, Replicas: replicas, Ready: ready}
	}
	prev := func(name, rev string, replicas, ready int32) RevisionDeployment {
		d := dep(name, rev, replicas, ready)
		d.Previous = true
		return d
	}
	row := func(track, rev, deployment string, replicas, ready int32, note string) Track {
		return Track{Name: track, Revision: rev, Deployment: deployment, Replicas: replicas, Ready: ready, Note: note}
	}
	cases := []struct {
		name string
		r    roles
		deps []RevisionDeployment
		want []Track
	}{
		{"stable alone", roles{stable: "aaa"}, []RevisionDeployment{dep("docs-aaa", "aaa", 4, 4)},
			[]Track{row("stable", "aaa", "docs-aaa", 4, 4, "")}},
		{"a canary", roles{stable: "aaa", canary: "bbb"}, []RevisionDeployment{dep("docs-bbb", "bbb", 1, 0), dep("docs-aaa", "aaa", 4, 4)},
			[]Track{row("stable", "aaa", "docs-aaa", 4, 4, ""), row("canary", "bbb", "docs-bbb", 1, 0, "")}},
		{"handed over: the canary's Deployment is stable, the old one retires", roles{stable: "bbb", retiring: "aaa", retiringSince: &since, scaleDownDelay: 30 * time.Second},
			[]RevisionDeployment{dep("docs-aaa", "aaa", 4, 4), dep("docs-bbb", "bbb", 4, 4)},
			[]Track{row("stable", "bbb", "docs-bbb", 4, 4, ""), row("retiring", "aaa", "docs-aaa", 4, 4, "removed in 20s")}},
		{"the delay is over", roles{stable: "bbb", retiring: "aaa", retiringSince: &long, scaleDownDelay: 30 * time.Second},
			[]RevisionDeployment{dep("docs-aaa", "aaa", 4, 4), dep("docs-bbb", "bbb", 4, 4)},
			[]Track{row("stable", "bbb", "docs-bbb", 4, 4, ""), row("retiring", "aaa", "docs-aaa", 4, 4, "removal due")}},
		{"RollingUpdate: the old revision shrinks", roles{stable: "bbb", retiring: "aaa", scaleDownDelay: 30 * time.Second},
			[]RevisionDeployment{dep("docs-aaa", "aaa", 3, 3), dep("docs-bbb", "bbb", 2, 1)},
			[]Track{row("stable", "bbb", "docs-bbb", 2, 1, ""), row("retiring", "aaa", "docs-aaa", 3, 3, "scaled down as bbb grows")}},
		{"upgrade from <name>-stable and <name>-canary", roles{stable: "aaa", canary: "bbb"},
			[]RevisionDeployment{prev("docs-stable", "aaa", 4, 4), prev("docs-canary", "bbb", 1, 1), dep("docs-aaa", "aaa", 4, 2)},
			[]Track{row("stable", "aaa", "docs-aaa", 4, 2, ""), row("stable", "aaa", "docs-stable", 4, 4, "previous layout, removed once docs-aaa has 4 ready"),
				row("canary", "bbb", "docs-canary", 1, 1, "previous layout, to be replaced")}},
		{"a rolled-back canary's Deployment on its way out", roles{stable: "aaa"},
			[]RevisionDeployment{dep("docs-aaa", "aaa", 4, 4), dep("docs-ccc", "ccc", 1, 1), prev("docs-canary", "ccc", 1, 1)},
			[]Track{row("stable", "aaa", "docs-aaa", 4, 4, ""), row("none", "ccc", "docs-canary", 1, 1, "previous layout"), row("none", "ccc", "docs-ccc", 1, 1, "not named in status")}},
		{"a canary not created yet", roles{stable: "aaa", canary: "bbb"}, []RevisionDeployment{dep("docs-aaa", "aaa", 4, 4)},
			[]Track{row("stable", "aaa", "docs-aaa", 4, 4, ""), row("canary", "bbb", "", 0, 0, "no Deployment")}},
		{"Deployments not readable: status alone", roles{stable: "aaa", canary: "bbb"}, nil,
			[]Track{row("stable", "aaa", "", 0, 0, ""), row("canary", "bbb", "", 0, 0, "")}},
		{"no status yet", roles{}, []RevisionDeployment{dep("docs-aaa", "aaa", 4, 0)},
			[]Track{row("none", "aaa", "docs-aaa", 4, 0, "not named in status")}},
		{"one revision named twice is shown once", roles{stable: "aaa", canary: "aaa"}, []RevisionDeployment{dep("docs-aaa", "aaa", 4, 4)},
			[]Track{row("stable", "aaa", "docs-aaa", 4, 4, "")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := tracksFor(c.r, c.deps, now)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("tracks:\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// A retiring revision's row says when it goes.
func TestRenderStatusRetiring(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	svc := &ragv1.RAGService{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "search"}}
	var buf bytes.Buffer
	tracks := []Track{{Name: "stable", Revision: "bbb", Deployment: "docs-bbb", Replicas: 4, Ready: 4},
		{Name: "retiring", Revision: "aaa", Deployment: "docs-aaa", Replicas: 4, Ready: 4, Note: "removed in 20s"}}
	if err := RenderStatus(&buf, svc, tracks, now); err != nil {
		t.Fatal(err)
	}
	want := "Tracks:\n" +
		"  TRACK     REVISION  DEPLOYMENT  PODS\n" +
		"  stable    bbb       docs-bbb    4/4 ready\n" +
		"  retiring  aaa       docs-aaa    4/4 ready  removed in 20s\n"
	if got := buf.String(); !strings.Contains(got, want) {
		t.Errorf("view:\n%s\nwant it to hold:\n%s", got, want)
	}
}

func TestRenderSpace(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := metav1.NewTime(now.Add(-time.Minute))
	for _, c := range []struct {
		name string
		st   ragv1.RolloutStatus
		want string
	}{
		{"no record", ragv1.RolloutStatus{StableRevision: "a"}, ""},
		{"stable only", ragv1.RolloutStatus{StableRevision: "a", EmbeddingSpace: &ragv1.EmbeddingSpaceStatus{Name: "v1"}}, "Space:       v1 (stable)\n"},
		{"a compatible canary", ragv1.RolloutStatus{StableRevision: "a", CanaryRevision: "b", EmbeddingSpace: &ragv1.EmbeddingSpaceStatus{
			Revision: "b", Verdict: ragv1.SpaceCompatible, Time: &at, Probes: 81, StableDimensions: 384, CanaryDimensions: 384,
			MinCosine: "1.0000", MeanCosine: "1.0000", NeighborOverlap: "1.0000", Message: "min cosine 1.0000 >= 0.999"}},
			"Space:       \"\" (unnamed) (stable)\n" +
				"Space check: Compatible for revision b, 60s ago: 81 probes, dimensions 384 -> 384, min cosine 1.0000, mean cosine 1.0000, neighbour overlap 1.0000\n" +
				"             min cosine 1.0000 >= 0.999\n"},
		{"probes failing", ragv1.RolloutStatus{StableRevision: "a", CanaryRevision: "b", EmbeddingSpace: &ragv1.EmbeddingSpaceStatus{
			Name: "v1", CanarySpace: "v1", Revision: "b", Verdict: ragv1.SpacePending, Attempts: 3, Time: &at, Message: "probe http://10.0.0.7:8080: no answer within 20s"}},
			"Space:       v1 (stable)\n" +
				"Space check: Pending for revision b, 60s ago (3 failed probe attempts)\n" +
				"             probe http://10.0.0.7:8080: no answer within 20s\n"},
		{"a cutover waiting for a person", ragv1.RolloutStatus{StableRevision: "a", CanaryRevision: "b", EmbeddingSpace: &ragv1.EmbeddingSpaceStatus{
			Name: "v1", CanarySpace: "v2", Revision: "b", Verdict: ragv1.SpaceChanged, Time: &at, Probes: 81, StableDimensions: 384, CanaryDimensions: 256,
			Message: "dimensions 384 -> 256"}},
			"Space:       v1 (stable)\n" +
				"Space check: Changed for revision b, 60s ago: 81 probes, dimensions 384 -> 256, min cosine -, mean cosine -, neighbour overlap -\n" +
				"             dimensions 384 -> 256\n" +
				"Cutover:     space v1 -> v2 with revision b, previewed on Service docs-canary while clients stay on stable;\n" +
				"             re-index against docs-canary, then: kubectl rag promote docs\n"},
		{"a cutover being promoted", ragv1.RolloutStatus{StableRevision: "b", CanaryRevision: "b", EmbeddingSpace: &ragv1.EmbeddingSpaceStatus{
			Name: "v1", CanarySpace: "v2", Revision: "b"}},
			"Space:       v1 (stable)\n" +
				"Cutover:     clients moved to space v2 (revision b); stable is taking its template, then both tracks serve it\n"},
	} {
		var buf bytes.Buffer
		renderSpace(&buf, &ragv1.RAGService{ObjectMeta: metav1.ObjectMeta{Name: "docs"}, Status: ragv1.RAGServiceStatus{RolloutStatus: c.st}}, now)
		if got := buf.String(); got != c.want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
}

func TestRenderSpaceWatch(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	fp := &ragv1.SpaceFingerprint{Revision: "a", Time: *ago(5 * time.Hour), Probes: 86, Dimensions: 384}
	off := metav1.Duration{}
	for _, c := range []struct {
		name  string
		check ragv1.SpaceCheckSpec
		sw    *ragv1.SpaceWatchStatus
		want  string
	}{
		{"nothing recorded", ragv1.SpaceCheckSpec{}, nil, ""},
		{"off", ragv1.SpaceCheckSpec{WatchInterval: &off}, &ragv1.SpaceWatchStatus{Fingerprint: fp}, ""},
		{"the same space", ragv1.SpaceCheckSpec{}, &ragv1.SpaceWatchStatus{Fingerprint: fp, Verdict: ragv1.SpaceCompatible, Since: ago(5 * time.Hour),
			Message: "fingerprint recorded from revision a (86 probes, 384 dimensions): no fingerprint of stable's space yet"},
			"Space watch: every 10m, same space (verdict Compatible since 5h ago); fingerprint of revision a recorded 5h ago (86 probes, 384 dimensions)\n" +
				"             fingerprint recorded from revision a (86 probes, 384 dimensions): no fingerprint of stable's space yet\n"},
		{"drifted, traffic stopped", ragv1.SpaceCheckSpec{OnDrift: ragv1.DriftStopTraffic}, &ragv1.SpaceWatchStatus{Fingerprint: fp, Verdict: ragv1.SpaceChanged,
			Since: ago(5 * time.Minute), DriftedSince: ago(5 * time.Minute), Message: "min cosine 0.0100 < 0.999 (probe 3), mean 0.0500 over 86 probes"},
			"Space watch: every 10m, DRIFTED for 5m (verdict Changed since 5m ago); fingerprint of revision a recorded 5h ago (86 probes, 384 dimensions)\n" +
				"             min cosine 0.0100 < 0.999 (probe 3), mean 0.0500 over 86 probes\n" +
				"             onDrift StopTraffic: Service docs selects no pod\n" +
				"             restore the upstream (the next watch clears this), or keep its new space: kubectl rag accept-space docs\n"},
	} {
		var buf bytes.Buffer
		svc := &ragv1.RAGService{ObjectMeta: metav1.ObjectMeta{Name: "docs"}, Status: ragv1.RAGServiceStatus{SpaceWatch: c.sw}}
		svc.Spec.Rollout.SpaceCheck = c.check
		renderSpaceWatch(&buf, svc, now)
		if got := buf.String(); got != c.want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
}

// status shows the service's declared budget and the share each pod was
// told, from status.budget; nothing when no budget is declared.
func TestRenderStatusBudget(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	base := func(up ragv1.UpstreamSpec, b *ragv1.BudgetStatus) *ragv1.RAGService {
		return &ragv1.RAGService{
			ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "search", Generation: 1},
			Spec:       ragv1.RAGServiceSpec{Replicas: ptr.To[int32](4), Embedding: ragv1.EmbeddingSpec{Provider: ragv1.ProviderOpenAI, Upstream: up}},
			Status: ragv1.RAGServiceStatus{ObservedGeneration: 1, Phase: ragv1.PhaseHealthy, Replicas: 4, ReadyReplicas: 4,
				RolloutStatus: ragv1.RolloutStatus{StableRevision: "7c9f5d"}, Budget: b},
		}
	}
	cases := []struct {
		name string
		svc  *ragv1.RAGService
		want string // the Budget line, "" for none
	}{
		{"handed out", base(ragv1.UpstreamSpec{RequestsPerMinute: 6000, TokensPerMinute: 1000000},
			&ragv1.BudgetStatus{RequestsPerMinute: 6000, TokensPerMinute: 1000000, Pods: 5, PerPod: ragv1.BudgetShare{RequestsPerMinute: 1200, TokensPerMinute: 200000}, PodsTold: 4}),
			"Budget:      6000 calls/min, 1000000 tokens/min for the service; 1200 calls/min, 200000 tokens/min per pod (divided by 5 pods, 4 told)\n"},
		{"calls only", base(ragv1.UpstreamSpec{RequestsPerMinute: 6000},
			&ragv1.BudgetStatus{RequestsPerMinute: 6000, Pods: 3, PerPod: ragv1.BudgetShare{RequestsPerMinute: 2000}, PodsTold: 2}),
			"Budget:      6000 calls/min for the service; 2000 calls/min per pod (divided by 3 pods, 2 told)\n"},
		{"declared, not handed out yet", base(ragv1.UpstreamSpec{TokensPerMinute: 500}, nil),
			"Budget:      500 tokens/min for the service, not handed out yet\n"},
		{"none declared", base(ragv1.UpstreamSpec{}, nil), ""},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		if err := RenderStatus(&buf, c.svc, []Track{{Name: "stable", Revision: "7c9f5d", Deployment: "docs-7c9f5d", Replicas: 4, Ready: 4}}, now); err != nil {
			t.Fatal(err)
		}
		var got string
		for _, line := range strings.SplitAfter(buf.String(), "\n") {
			if strings.HasPrefix(line, "Budget:") {
				got = line
			}
		}
		if got != c.want {
			t.Errorf("%s: budget line %q, want %q\nwhole view:\n%s", c.name, got, c.want, buf.String())
		}
	}
}

// The roles come from status (retiring with its since) and the delay from the
// spec, 30s when unset.
func TestRolesOf(t *testing.T) {
	since := metav1.NewTime(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	sinceTime := since.Time
	for _, c := range []struct {
		name string
		svc  ragv1.RAGService
		want roles
	}{
		{"no status", ragv1.RAGService{}, roles{scaleDownDelay: 30 * time.Second}},
		{"a canary", ragv1.RAGService{Status: ragv1.RAGServiceStatus{RolloutStatus: ragv1.RolloutStatus{StableRevision: "aaa", CanaryRevision: "bbb"}}},
			roles{stable: "aaa", canary: "bbb", scaleDownDelay: 30 * time.Second}},
		{"handed over, retiring since, delay from the spec",
			ragv1.RAGService{Spec: ragv1.RAGServiceSpec{Rollout: ragv1.RolloutSpec{ScaleDownDelay: &metav1.Duration{Duration: 2 * time.Minute}}},
				Status: ragv1.RAGServiceStatus{RolloutStatus: ragv1.RolloutStatus{StableRevision: "bbb", Retiring: &ragv1.RetiringRevision{Revision: "aaa", Since: &since}}}},
			roles{stable: "bbb", retiring: "aaa", retiringSince: &sinceTime, scaleDownDelay: 2 * time.Minute}},
		{"RollingUpdate: retiring without since",
			ragv1.RAGService{Status: ragv1.RAGServiceStatus{RolloutStatus: ragv1.RolloutStatus{StableRevision: "bbb", Retiring: &ragv1.RetiringRevision{Revision: "aaa"}}}},
			roles{stable: "bbb", retiring: "aaa", scaleDownDelay: 30 * time.Second}},
		{"a delay of 0s", ragv1.RAGService{Spec: ragv1.RAGServiceSpec{Rollout: ragv1.RolloutSpec{ScaleDownDelay: &metav1.Duration{}}}},
			roles{scaleDownDelay: 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := rolesOf(&c.svc); !reflect.DeepEqual(got, c.want) {
				t.Errorf("rolesOf = %+v, want %+v", got, c.want)
			}
		})
	}
}
