package rollout

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/testsupport/deploysim"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The simulator drives Decide and Summarize tick by tick against a fake
// Deployment controller (pods become ready after a seeded number of ticks; one
// Deployment per revision, each scaled as deploysim.Next decides, with the
// maxSurge and maxUnavailable the controller configures) and prints what a reviewer needs to follow a
// rollout. Its output is compared with
// testdata/<scenario>.golden; `go test ./internal/rollout -run Golden -update`
// rewrites them.

const tick = 10 * time.Second

var epoch = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

type simPod struct {
	rev     string
	readyAt int // tick at which it becomes ready; -1 never
}

// simDeploy is one revision's Deployment.
type simDeploy struct {
	exists   bool
	replicas int32
	revision string
	pods     []*simPod
}

func (d *simDeploy) ready(now int, rev string) int32 {
	n := int32(0)
	for _, p := range d.pods {
		if p.readyAt >= 0 && now >= p.readyAt && (rev == "" || p.rev == rev) {
			n++
		}
	}
	return n
}

func (d *simDeploy) count(rev string) int32 {
	n := int32(0)
	for _, p := range d.pods {
		if p.rev == rev {
			n++
		}
	}
	return n
}

type sim struct {
	t   *testing.T
	sc  scenario
	rng *rand.Rand
	now int
	out strings.Builder
	// deploys are the Deployments by revision, as the controller owns them.
	deploys map[string]*simDeploy

	replicas int32
	desired  string
	declared string // spec.embedding.space
	rollout  v1alpha1.RolloutSpec
	selects  Selection // what the shared Service selects, as last applied
	// appliedStable and appliedCanary are the revisions the Services select
	// as last applied.
	appliedStable, appliedCanary string
	// What the controller stores: the rollout memory, the conditions and the
	// phase, and the command annotations present (tokens; never removed).
	memory      v1alpha1.RolloutStatus
	conditions  []metav1.Condition
	phase       v1alpha1.Phase
	annotations map[string]string

	lastReady  string
	lastReason string
	reached    bool
	reachedFor int32
}

// scenario is a seeded sequence of events.
type scenario struct {
	name     string
	seed     int64
	ticks    int
	replicas int32
	rollout  v1alpha1.RolloutSpec
	// broken revisions never become ready.
	broken map[string]bool
	// events at a tick, applied before the controller runs.
	at map[int]func(s *sim)
	// verdict returns the analysis result at a tick, or nil for no data yet.
	verdict func(s *sim, rev string) *v1alpha1.AnalysisStatus
	// killAt: the manager dies at these ticks after writing the status and
	// before applying the Deployments.
	killAt map[int]bool
	// lostAt: the manager dies at these ticks before writing anything.
	lostAt map[int]bool
	// spaceOf is the vector space a revision really embeds in (default "s0"):
	// the space check compares it, and no tick may serve two through the
	// shared Service.
	spaceOf map[string]string
	// noSpaceCheck turns spec.rollout.spaceCheck off.
	noSpaceCheck bool
	// probeFails: the space check's probes fail (timeouts) at these ticks.
	probeFails func(tick int) bool
}

// space is the vector space rev really embeds in.
func (s *sim) space(rev string) string {
	if sp, ok := s.sc.spaceOf[rev]; ok {
		return sp
	}
	return "s0"
}

// spaceCheck is what the controller's probes find: the numbers of identical
// vectors when the two revisions share a space, of unrelated ones otherwise.
func (s *sim) spaceCheck(canary string) *v1alpha1.EmbeddingSpaceStatus {
	if s.sc.probeFails != nil && s.sc.probeFails(s.now) {
		return &v1alpha1.EmbeddingSpaceStatus{Verdict: v1alpha1.SpacePending, Message: "probe http://pod:8080: context deadline exceeded"}
	}
	if s.space(canary) == s.space(s.memory.StableRevision) {
		return &v1alpha1.EmbeddingSpaceStatus{Verdict: v1alpha1.SpaceCompatible, MinCosine: "1.0000", MeanCosine: "1.0000", NeighborOverlap: "1.0000",
			StableDimensions: 384, CanaryDimensions: 384, Probes: 64, Message: "min cosine 1.0000 >= 0.999, neighbour overlap 1.0000 >= 0.9 over 64 probes"}
	}
	return &v1alpha1.EmbeddingSpaceStatus{Verdict: v1alpha1.SpaceChanged, StableDimensions: 384, CanaryDimensions: 256, Probes: 64,
		Message: "dimensions 384 -> 256"}
}

func (s *sim) logf(format string, args ...any) {
	fmt.Fprintf(&s.out, "t=%-5s "+format+"\n", append([]any{(time.Duration(s.now) * tick).String()}, args...)...)
}

func (s *sim) readyDelay(rev string) int {
	if s.sc.broken[rev] {
		return -1
	}
	return s.now + 1 + s.rng.Intn(3)
}

// reconcileDeploy is the fake Deployment controller: every move deploysim.Next
// allows now; pods created now become ready in later ticks.
func (s *sim) reconcileDeploy(d *simDeploy) {
	if !d.exists {
		return
	}
	for {
		view := make([]deploysim.Pod, len(d.pods))
		for i, p := range d.pods {
			view[i] = deploysim.Pod{Revision: p.rev, Ready: p.readyAt >= 0 && s.now >= p.readyAt}
		}
		a := deploysim.Next(deploysim.Strategy{MaxSurge: MaxSurge(d.replicas), MaxUnavailable: MaxUnavailable}, d.replicas, d.revision, view)
		switch {
		case a.Create:
			d.pods = append(d.pods, &simPod{rev: d.revision, readyAt: s.readyDelay(d.revision)})
		case a.Delete >= 0:
			d.pods = append(d.pods[:a.Delete], d.pods[a.Delete+1:]...)
		default:
			return
		}
	}
}

// deploy is the Deployment of rev (one that does not exist when none does).
func (s *sim) deploy(rev string) *simDeploy {
	if d := s.deploys[rev]; d != nil && rev != "" {
		return d
	}
	return &simDeploy{revision: rev}
}

// revisions are the revisions that have a Deployment, sorted.
func (s *sim) revisions() []string {
	out := make([]string, 0, len(s.deploys))
	for rev := range s.deploys {
		out = append(out, rev)
	}
	sort.Strings(out)
	return out
}

func (s *sim) track(d *simDeploy) Track {
	if !d.exists {
		return Track{}
	}
	cur := d.count(d.revision)
	ready := d.ready(s.now, d.revision)
	return Track{
		Revision: d.revision, Exists: true, Replicas: d.replicas,
		ReadyReplicas: ready, UpdatedReplicas: cur, AvailableReplicas: ready,
		RolledOut: cur == d.replicas && ready == d.replicas && int32(len(d.pods)) == cur,
	}
}

func (s *sim) observe() {
	parts := []string{}
	for _, rev := range s.revisions() {
		d := s.deploys[rev]
		role := ""
		switch rev {
		case s.memory.StableRevision:
			role = " stable"
		case s.memory.CanaryRevision:
			role = " canary"
		}
		parts = append(parts, fmt.Sprintf("%s%s %d/%d ready (%d pods)", rev, role, d.ready(s.now, ""), d.replicas, len(d.pods)))
	}
	st := strings.Join(parts, ", ")
	if st == "" {
		st = "none"
	}
	if st != s.lastReady {
		s.logf("pods: %s", st)
		s.lastReady = st
	}
	s.checkServing()
}

// checkServing asserts what clients get from the shared Service as it stands:
// called when pods change and again right after the operator applied its
// selection, before the Deployment controller reacts.
func (s *sim) checkServing() {
	// The pods behind the shared Service: the selected revisions' ready ones
	// (all revisions when it selects both tracks).
	capacity := int32(0)
	served := map[string]bool{}
	for _, rev := range s.revisions() {
		if !s.selected(rev) {
			continue
		}
		d := s.deploys[rev]
		capacity += d.ready(s.now, "")
		for _, p := range d.pods {
			if p.readyAt >= 0 && s.now >= p.readyAt {
				served[s.space(p.rev)] = true
			}
		}
	}
	// No client ever gets vectors of two spaces.
	if len(served) > 1 {
		s.t.Errorf("%s t=%s: the shared Service serves %d vector spaces (selects %s)", s.sc.name, time.Duration(s.now)*tick, len(served), s.selects)
		s.logf("SPACE VIOLATION: %d spaces behind the Service", len(served))
	}
	// Capacity: the ready pods behind the shared Service never fall below
	// the size once it was reached.
	if s.replicas > s.reachedFor {
		s.reached = false // a scale-up is not reached until its pods are ready
	}
	if capacity >= s.replicas {
		s.reached, s.reachedFor = true, s.replicas
	} else if s.reached {
		s.t.Errorf("%s t=%s: ready capacity %d below replicas %d", s.sc.name, time.Duration(s.now)*tick, capacity, s.replicas)
		s.logf("CAPACITY VIOLATION: %d ready < %d", capacity, s.replicas)
	}
	// Never two revisions called stable, never a shared Service without a
	// revision to select.
	if s.memory.StableRevision != "" && s.memory.StableRevision == s.memory.CanaryRevision {
		s.t.Errorf("%s t=%s: revision %s is both stable and canary", s.sc.name, time.Duration(s.now)*tick, s.memory.StableRevision)
	}
}

// selected says whether the shared Service, as last applied, selects rev's
// pods.
func (s *sim) selected(rev string) bool {
	switch s.selects {
	case SelectStable:
		return rev == s.appliedStable
	case SelectCanary:
		return rev == s.appliedCanary
	}
	return true
}

func (s *sim) step() {
	if f := s.sc.at[s.now]; f != nil {
		f(s)
	}
	for _, rev := range s.revisions() {
		s.reconcileDeploy(s.deploys[rev])
	}
	s.observe()

	nowT := epoch.Add(time.Duration(s.now) * tick)
	// As the controller does: a space change the strategy cannot ship is a
	// problem for a person, and the rollout goes on with what runs.
	desired := s.desired
	problem := SpaceChangeProblem(s.rollout.Strategy, s.declared, s.memory)
	if problem != nil {
		desired = ""
	}
	stable, canary, retiring := s.tracks()
	in := Input{
		Now: nowT, Replicas: s.replicas, Rollout: s.rollout, DesiredRevision: desired,
		Memory: s.memory, Stable: stable, Canary: canary, Retiring: retiring, Tokens: Tokens(s.annotations),
		Space: SpaceInput{Declared: s.declared, Check: !s.sc.noSpaceCheck},
	}
	if SpaceCheckDue(in) {
		v := s.spaceCheck(in.Memory.CanaryRevision)
		v.Time = ptrTime(nowT)
		v.Revision = in.Memory.CanaryRevision
		in.SpaceVerdict = v
		s.logf("space check of %s: %s (%s)", v.Revision, v.Verdict, v.Message)
	}
	if AnalysisDue(in) && s.sc.verdict != nil {
		if v := s.sc.verdict(s, in.Memory.CanaryRevision); v != nil {
			v.Time = metav1.NewTime(nowT)
			v.Revision = in.Memory.CanaryRevision
			in.Verdict = v
			s.logf("analysis of %s: %s (%s)", v.Revision, v.Verdict, v.Message)
		}
	}
	plan := Decide(in)
	checkPlan(s.t, s.sc.name, in, plan)

	if s.sc.lostAt[s.now] {
		s.logf("manager killed before writing status: pass lost")
		return
	}
	// The controller persists the decision (with the tokens it handled)
	// first, then applies the Deployments and writes the summary; a restart
	// reads the memory back from JSON as the API server stores it. (A
	// decision that leaves the memory as it was needs no write first: it is
	// the same either way here.) A first revision is acted on first and
	// written once, at the end of the pass: killed in between, the next pass
	// finds a stable Deployment and no memory, and adopts it.
	actFirst := plan.Transition == TransitionInitialize && s.memory.StableRevision == ""
	persist := func() {
		if h := plan.Memory.LastHandled; h != nil && (s.memory.LastHandled == nil || *h != *s.memory.LastHandled) {
			s.logf("handled: %s", h.Result)
		}
		s.memory = roundTrip(s.t, plan.Memory)
	}
	if !actFirst {
		persist()
		if s.sc.killAt[s.now] {
			s.logf("manager killed after writing the decision, before applying Deployments")
			return
		}
	}
	var applied strings.Builder
	if plan.Selects != s.selects || plan.StableRevision != s.appliedStable || plan.CanaryRevision != s.appliedCanary {
		// Applied before the Deployments, as the controller does.
		fmt.Fprintf(&applied, "t=%-5s service selects %s (stable %s, canary %s)\n", (time.Duration(s.now) * tick).String(), plan.Selects, orNone(plan.StableRevision), orNone(plan.CanaryRevision))
		s.selects, s.appliedStable, s.appliedCanary = plan.Selects, plan.StableRevision, plan.CanaryRevision
	}
	s.apply(&applied, plan)
	s.checkServing()
	if actFirst {
		if s.sc.killAt[s.now] {
			s.out.WriteString(applied.String())
			s.logf("manager killed after applying the first revision, before writing it")
			return
		}
		persist()
	}

	stable, canary, _ = s.tracks()
	sum := Summarize(Observation{
		Generation: 1, Replicas: s.replicas, Stable: stable, Canary: canary,
		Plan: &plan, Memory: s.memory, Conditions: s.conditions, SpecProblem: problem,
	})
	s.conditions = sum.Conditions
	for _, e := range sum.Events {
		s.logf("event %s %s: %s", e.Type, e.Reason, e.Message)
	}
	if why := fmt.Sprintf("%s %s: %s", plan.Transition, plan.Reason, plan.Message); why != s.lastReason && len(sum.Events) == 0 {
		s.logf("decision: %s", why)
	}
	s.lastReason = fmt.Sprintf("%s %s: %s", plan.Transition, plan.Reason, plan.Message)
	if sum.Phase != s.phase {
		s.logf("phase %s -> %s (%s)", orNone(string(s.phase)), sum.Phase, plan.Reason)
		s.phase = sum.Phase
	}
	s.out.WriteString(applied.String())
}

// addAnnotation sets a command annotation to a fresh token, as kubectl rag
// would; the annotation stays, as in Git.
func (s *sim) addAnnotation(c Command, note string) {
	s.setToken(c, fmt.Sprintf("t%d", s.now), note)
}

// setToken sets a command annotation's token, as a GitOps sync would.
func (s *sim) setToken(c Command, token, note string) {
	if s.annotations == nil {
		s.annotations = map[string]string{}
	}
	s.annotations[c.Annotation()] = token
	s.logf("annotation %s=%s set%s", c, token, note)
}

// tracks are what the controller observes: the Deployments of the
// memory's revisions, or, with no memory (lost before it was written), the
// ones AdoptTracks picks.
func (s *sim) tracks() (stable, canary, retiring Track) {
	if s.memory.StableRevision == "" {
		all := []Track{}
		for _, rev := range s.revisions() {
			all = append(all, s.track(s.deploys[rev]))
		}
		stable, canary = AdoptTracks(all)
		return stable, canary, Track{}
	}
	if r := s.memory.Retiring; r != nil {
		retiring = s.track(s.deploy(r.Revision))
	}
	return s.track(s.deploy(s.memory.StableRevision)), s.track(s.deploy(s.memory.CanaryRevision)), retiring
}

// apply is the controller's apply: the plan's revisions at their sizes,
// every other revision's Deployment deleted (its pods go with it).
func (s *sim) apply(log *strings.Builder, plan Plan) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(log, "t=%-5s "+format+"\n", append([]any{(time.Duration(s.now) * tick).String()}, args...)...)
	}
	want := map[string]int32{}
	if plan.StableRevision != "" {
		want[plan.StableRevision] = plan.StableReplicas
	}
	if plan.CanaryRevision != "" {
		want[plan.CanaryRevision] = plan.CanaryReplicas
	}
	if plan.RetiringRevision != "" {
		want[plan.RetiringRevision] = plan.RetiringReplicas
	}
	for _, rev := range s.revisions() {
		if _, ok := want[rev]; !ok {
			logf("deleted Deployment %s (%d pods)", rev, len(s.deploys[rev].pods))
			delete(s.deploys, rev)
		}
	}
	revs := make([]string, 0, len(want))
	for rev := range want {
		revs = append(revs, rev)
	}
	sort.Strings(revs)
	for _, rev := range revs {
		replicas := want[rev]
		d := s.deploys[rev]
		if d == nil {
			d = &simDeploy{exists: true, revision: rev}
			s.deploys[rev] = d
			logf("created Deployment %s x%d", rev, replicas)
			d.replicas = replicas
			continue
		}
		if d.replicas != replicas {
			logf("scaled %s %d -> %d", rev, d.replicas, replicas)
			d.replicas = replicas
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func roundTrip(t *testing.T, st v1alpha1.RolloutStatus) v1alpha1.RolloutStatus {
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("marshal status: %v", err)
	}
	var out v1alpha1.RolloutStatus
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal status: %v", err)
	}
	return out
}

// checkPlan asserts what must hold for every plan, whatever the scenario.
func checkPlan(t *testing.T, name string, in Input, p Plan) {
	t.Helper()
	if rolling := p.Memory.Retiring != nil && p.Memory.Retiring.Since == nil; !rolling && p.StableReplicas != max(in.Replicas, 0) {
		t.Errorf("%s: stable replicas %d, want %d (the canary must never change stable's size)", name, p.StableReplicas, in.Replicas)
	}
	if p.CanaryRevision == "" && p.CanaryReplicas != 0 {
		t.Errorf("%s: canary replicas %d without a canary revision", name, p.CanaryReplicas)
	}
	if p.CanaryReplicas > in.Replicas {
		t.Errorf("%s: canary replicas %d above replicas %d", name, p.CanaryReplicas, in.Replicas)
	}
	if p.Transition == TransitionRollback && p.CanaryReplicas != 0 {
		t.Errorf("%s: rollback left %d canary pods", name, p.CanaryReplicas)
	}
	if p.Transition != TransitionNone && p.Transition != TransitionHold && p.RequeueAfter == 0 && p.CanaryRevision != "" {
		t.Errorf("%s: canary in progress (%s) without a requeue", name, p.Transition)
	}
	if p.RequeueAfter != 0 && p.RequeueAfter < time.Second {
		t.Errorf("%s: requeue %s is a hot loop", name, p.RequeueAfter)
	}
}

func run(t *testing.T, sc scenario) string {
	s := &sim{
		t: t, sc: sc, rng: rand.New(rand.NewSource(sc.seed)),
		deploys:  map[string]*simDeploy{},
		replicas: sc.replicas, desired: "rev-a", rollout: sc.rollout, selects: SelectBoth,
	}
	for s.now = 0; s.now < sc.ticks; s.now++ {
		s.step()
	}
	fmt.Fprintf(&s.out, "final: stable %s x%d, canary %q x%d, deployments %v, phase %s, step %d, rollback %s, space %s\n",
		s.memory.StableRevision, s.deploy(s.memory.StableRevision).replicas, s.memory.CanaryRevision, s.deploy(s.memory.CanaryRevision).replicas,
		s.revisions(), s.phase, s.memory.CurrentStep, rollbackString(s.memory.Rollback), spaceString(s.memory.EmbeddingSpace))
	return s.out.String()
}

// spaceString is the space stable serves: what a rollout ends with, whatever
// the timing of its checks.
func spaceString(es *v1alpha1.EmbeddingSpaceStatus) string {
	if es == nil {
		return "none"
	}
	return orEmpty(es.Name)
}

func ptrTime(t time.Time) *metav1.Time { mt := metav1.NewTime(t); return &mt }

func rollbackString(r *v1alpha1.RollbackStatus) string {
	if r == nil {
		return "none"
	}
	return r.Revision + "/" + r.Reason
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from %s (rerun with -update after checking the change):\n%s", name, path, diffLines(string(want), got))
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// --- scenario helpers ---

func dur(d time.Duration) *metav1.Duration {
	return &metav1.Duration{Duration: d}
}

func weightStep(w int32) v1alpha1.RolloutStep { return v1alpha1.RolloutStep{SetWeight: &w} }
func pauseStep(d time.Duration) v1alpha1.RolloutStep {
	return v1alpha1.RolloutStep{Pause: &v1alpha1.PauseStep{Duration: dur(d)}}
}

func canarySpec() v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		Strategy: v1alpha1.StrategyCanary,
		Steps: []v1alpha1.RolloutStep{
			weightStep(20), pauseStep(30 * time.Second), weightStep(50), pauseStep(30 * time.Second),
		},
		ProgressDeadline: metav1.Duration{Duration: 2 * time.Minute},
	}
}

func withAnalysis(r v1alpha1.RolloutSpec, onNoData v1alpha1.NoDataPolicy) v1alpha1.RolloutSpec {
	r.Analysis = &v1alpha1.AnalysisSpec{
		Provider: v1alpha1.AnalysisBuiltin, Interval: metav1.Duration{Duration: 20 * time.Second},
		MinRequests: ptr.To[int64](20), OnNoData: onNoData, FailureLimit: ptr.To[int32](1),
		MaxErrorRate: "0.01", MaxShedRate: "0.10", MaxLatencyP99: metav1.Duration{Duration: 2 * time.Second},
	}
	return r
}

func verdict(v v1alpha1.Verdict, msg string) *v1alpha1.AnalysisStatus {
	return &v1alpha1.AnalysisStatus{Verdict: v, Message: msg, Requests: 100, ErrorRate: "0.0000", ShedRate: "0.0000"}
}

func passing(s *sim, rev string) *v1alpha1.AnalysisStatus {
	if s.deploy(rev).ready(s.now, rev) == 0 {
		return &v1alpha1.AnalysisStatus{Verdict: v1alpha1.VerdictInconclusive, Message: "no ready canary pods"}
	}
	return verdict(v1alpha1.VerdictPass, "error rate 0.0000 <= 0.01")
}

// failing fails a canary that serves; with no ready canary pod there is no data.
func failing(msg string) func(*sim, string) *v1alpha1.AnalysisStatus {
	return func(s *sim, rev string) *v1alpha1.AnalysisStatus {
		if s.deploy(rev).ready(s.now, rev) == 0 {
			return &v1alpha1.AnalysisStatus{Verdict: v1alpha1.VerdictInconclusive, Message: "no ready canary pods"}
		}
		return verdict(v1alpha1.VerdictFail, msg)
	}
}

func deploy(rev string) func(*sim) {
	return func(s *sim) {
		s.desired = rev
		s.logf("spec: template changed to %s", rev)
	}
}

// declare changes spec.embedding.space (and with it the template, to rev).
func declare(space, rev string) func(*sim) {
	return func(s *sim) {
		s.declared, s.desired = space, rev
		s.logf("spec: embedding.space %s, template changed to %s", orEmpty(space), rev)
	}
}

func shipsRevB(m map[int]func(*sim)) map[int]func(*sim) {
	// Every scenario starts from a healthy stable rev-a and ships rev-b at t=60s.
	if _, ok := m[6]; !ok {
		m[6] = deploy("rev-b")
	}
	return m
}

func scenarios() []scenario {
	onNoData := func(p v1alpha1.NoDataPolicy) scenario {
		return scenario{
			name: "no-data-" + strings.ToLower(string(p)), seed: 11, ticks: 40, replicas: 4,
			rollout: withAnalysis(canarySpec(), p),
			at:      shipsRevB(map[int]func(*sim){}),
			verdict: func(*sim, string) *v1alpha1.AnalysisStatus {
				return &v1alpha1.AnalysisStatus{Verdict: v1alpha1.VerdictInconclusive, Requests: 3, Message: "3 requests < minRequests 20"}
			},
		}
	}
	return []scenario{
		{
			name: "happy-path", seed: 1, ticks: 40, replicas: 5,
			rollout: withAnalysis(canarySpec(), v1alpha1.NoDataPause),
			at:      shipsRevB(map[int]func(*sim){}),
			verdict: passing,
		},
		{
			name: "no-steps-no-analysis", seed: 2, ticks: 20, replicas: 3,
			rollout: v1alpha1.RolloutSpec{Strategy: v1alpha1.StrategyCanary},
			at:      shipsRevB(map[int]func(*sim){}),
		},
		{
			name: "analysis-failure", seed: 3, ticks: 30, replicas: 4,
			rollout: withAnalysis(canarySpec(), v1alpha1.NoDataPause),
			at:      shipsRevB(map[int]func(*sim){}),
			verdict: failing("error rate 0.0800 > 0.01"),
		},
		{
			name: "analysis-failure-no-autorollback", seed: 3, ticks: 30, replicas: 4,
			rollout: func() v1alpha1.RolloutSpec {
				r := withAnalysis(canarySpec(), v1alpha1.NoDataPause)
				r.AutoRollback = new(bool)
				return r
			}(),
			at: shipsRevB(map[int]func(*sim){
				25: func(s *sim) { s.addAnnotation(CommandAbort, "") },
			}),
			verdict: failing("p99 3.2s > 2s"),
		},
		{
			name: "progress-deadline", seed: 4, ticks: 25, replicas: 3,
			rollout: canarySpec(),
			broken:  map[string]bool{"rev-b": true},
			at:      shipsRevB(map[int]func(*sim){}),
		},
		{
			name: "abort", seed: 5, ticks: 20, replicas: 3,
			rollout: canarySpec(),
			at: shipsRevB(map[int]func(*sim){
				10: func(s *sim) { s.addAnnotation(CommandAbort, "") },
			}),
		},
		{
			name: "promote-annotation", seed: 6, ticks: 25, replicas: 3,
			rollout: func() v1alpha1.RolloutSpec {
				r := canarySpec()
				r.Steps = []v1alpha1.RolloutStep{weightStep(34), {Pause: &v1alpha1.PauseStep{}}, weightStep(67)}
				return r
			}(),
			at: shipsRevB(map[int]func(*sim){
				14: func(s *sim) { s.addAnnotation(CommandPromote, "") },
			}),
		},
		{
			// promote moves past the current step; promote-full skips the rest.
			name: "promote-full-annotation", seed: 6, ticks: 25, replicas: 3,
			rollout: func() v1alpha1.RolloutSpec {
				r := canarySpec()
				r.Steps = []v1alpha1.RolloutStep{weightStep(34), {Pause: &v1alpha1.PauseStep{}}, weightStep(67), {Pause: &v1alpha1.PauseStep{}}}
				return r
			}(),
			at: shipsRevB(map[int]func(*sim){
				12: func(s *sim) { s.addAnnotation(CommandPromoteFull, " (skips every step left)") },
			}),
		},
		{
			// A promote kept in Git: re-applied with the same token by a
			// sync, it does nothing, and the next canary does not replay it.
			name: "gitops-token-kept", seed: 6, ticks: 40, replicas: 3,
			rollout: func() v1alpha1.RolloutSpec {
				r := canarySpec()
				r.Steps = []v1alpha1.RolloutStep{weightStep(34), {Pause: &v1alpha1.PauseStep{}}}
				return r
			}(),
			at: shipsRevB(map[int]func(*sim){
				12: func(s *sim) { s.setToken(CommandPromote, "git-1", "") },
				16: func(s *sim) {
					delete(s.annotations, CommandPromote.Annotation())
					s.logf("annotation promote removed (a sync drift)")
				},
				17: func(s *sim) { s.setToken(CommandPromote, "git-1", " again (self-heal)") },
				24: deploy("rev-c"),
				34: func(s *sim) { s.setToken(CommandPromote, "git-1", " again (a re-sync)") },
			}),
		},
		{
			name: "retry-after-rollback", seed: 7, ticks: 50, replicas: 3,
			rollout: withAnalysis(canarySpec(), v1alpha1.NoDataPause),
			at: shipsRevB(map[int]func(*sim){
				20: func(s *sim) { s.addAnnotation(CommandPromote, " (ignored: rolled back)") },
				22: func(s *sim) { s.addAnnotation(CommandRetry, "") },
			}),
			verdict: func(s *sim, rev string) *v1alpha1.AnalysisStatus {
				if s.now < 20 {
					return failing("error rate 0.2000 > 0.01")(s, rev)
				}
				return passing(s, rev)
			},
		},
		{
			name: "spec-edit-mid-rollout", seed: 8, ticks: 40, replicas: 4,
			rollout: canarySpec(),
			at: shipsRevB(map[int]func(*sim){
				12: deploy("rev-c"),
			}),
		},
		{
			name: "fast-rollback", seed: 9, ticks: 20, replicas: 4,
			rollout: canarySpec(),
			at: shipsRevB(map[int]func(*sim){
				11: deploy("rev-a"),
			}),
		},
		{
			name: "manager-restart", seed: 1, ticks: 40, replicas: 5,
			rollout: withAnalysis(canarySpec(), v1alpha1.NoDataPause),
			at:      shipsRevB(map[int]func(*sim){}),
			verdict: passing,
			killAt:  map[int]bool{6: true, 9: true, 13: true, 22: true, 27: true},
			lostAt:  map[int]bool{7: true, 16: true, 24: true},
		},
		{
			name: "hpa-mid-canary", seed: 10, ticks: 40, replicas: 4,
			rollout: func() v1alpha1.RolloutSpec {
				r := canarySpec()
				r.Steps = []v1alpha1.RolloutStep{weightStep(25), pauseStep(90 * time.Second), weightStep(50), pauseStep(30 * time.Second)}
				return r
			}(),
			at: shipsRevB(map[int]func(*sim){
				10: func(s *sim) { s.replicas = 8; s.logf("HPA: replicas 4 -> 8") },
				17: func(s *sim) { s.replicas = 6; s.logf("HPA: replicas 8 -> 6") },
			}),
		},
		{
			name: "paused", seed: 12, ticks: 35, replicas: 3,
			rollout: canarySpec(),
			at: shipsRevB(map[int]func(*sim){
				9:  func(s *sim) { s.rollout.Paused = true; s.logf("spec: paused") },
				20: func(s *sim) { s.rollout.Paused = false; s.logf("spec: unpaused") },
			}),
		},
		{
			name: "paused-before-change", seed: 16, ticks: 30, replicas: 3,
			rollout: canarySpec(),
			at: shipsRevB(map[int]func(*sim){
				4:  func(s *sim) { s.rollout.Paused = true; s.logf("spec: paused") },
				12: func(s *sim) { s.rollout.Paused = false; s.logf("spec: unpaused") },
			}),
		},
		{
			name: "paused-analysis-failure", seed: 13, ticks: 25, replicas: 3,
			rollout: withAnalysis(canarySpec(), v1alpha1.NoDataPause),
			at: shipsRevB(map[int]func(*sim){
				8: func(s *sim) { s.rollout.Paused = true; s.logf("spec: paused") },
			}),
			verdict: failing("shed rate 0.3000 > 0.10"),
		},
		onNoData(v1alpha1.NoDataPause),
		onNoData(v1alpha1.NoDataFail),
		onNoData(v1alpha1.NoDataContinue),
		{
			// A model change nobody declared: the probes see another space and
			// the canary goes before any client reaches it.
			name: "space-changed", seed: 21, ticks: 25, replicas: 4,
			rollout: withAnalysis(canarySpec(), v1alpha1.NoDataPause),
			at:      shipsRevB(map[int]func(*sim){}),
			verdict: passing,
			spaceOf: map[string]string{"rev-b": "s1"},
		},
		{
			name: "space-changed-no-autorollback", seed: 22, ticks: 25, replicas: 4,
			rollout: func() v1alpha1.RolloutSpec {
				r := canarySpec()
				r.AutoRollback = new(bool)
				return r
			}(),
			at: shipsRevB(map[int]func(*sim){
				12: func(s *sim) { s.addAnnotation(CommandPromote, " (refused: another space)") },
				16: func(s *sim) { s.addAnnotation(CommandAbort, "") },
			}),
			spaceOf: map[string]string{"rev-b": "s1"},
		},
		{
			// The canary's pods are ready but never answer the probes: the
			// check fails closed at the progress deadline.
			name: "space-probes-unanswered", seed: 23, ticks: 25, replicas: 3,
			rollout:    canarySpec(),
			at:         shipsRevB(map[int]func(*sim){}),
			probeFails: func(int) bool { return true },
		},
		{
			name: "space-probes-flaky", seed: 24, ticks: 30, replicas: 3,
			rollout:    canarySpec(),
			at:         shipsRevB(map[int]func(*sim){}),
			probeFails: func(tick int) bool { return tick < 11 },
		},
		{
			name: "space-check-disabled", seed: 25, ticks: 25, replicas: 3,
			rollout:      canarySpec(),
			at:           shipsRevB(map[int]func(*sim){}),
			noSpaceCheck: true,
		},
		{
			// A declared change of space: a preview on the canary Service,
			// clients on stable, then all of them at once on promote.
			name: "cutover", seed: 26, ticks: 40, replicas: 4,
			rollout: withAnalysis(canarySpec(), v1alpha1.NoDataPause),
			at: map[int]func(*sim){
				6:  declare("v2", "rev-b"),
				8:  func(s *sim) { s.addAnnotation(CommandPromote, " (too early: preview not ready)") },
				16: func(s *sim) { s.addAnnotation(CommandPromote, "") },
			},
			verdict: passing,
			spaceOf: map[string]string{"rev-b": "s1"},
		},
		{
			name: "cutover-abort", seed: 27, ticks: 25, replicas: 3,
			rollout: canarySpec(),
			at: map[int]func(*sim){
				6:  declare("v2", "rev-b"),
				14: func(s *sim) { s.addAnnotation(CommandAbort, "") },
			},
			spaceOf: map[string]string{"rev-b": "s1"},
		},
		{
			name: "cutover-manager-restart", seed: 26, ticks: 40, replicas: 4,
			rollout: canarySpec(),
			at: map[int]func(*sim){
				6:  declare("v2", "rev-b"),
				16: func(s *sim) { s.addAnnotation(CommandPromote, "") },
			},
			spaceOf: map[string]string{"rev-b": "s1"},
			killAt:  map[int]bool{6: true, 9: true, 17: true, 19: true, 22: true},
			lostAt:  map[int]bool{7: true, 18: true, 23: true},
		},
		{
			name: "rolling-update-space-change", seed: 28, ticks: 20, replicas: 3,
			rollout: v1alpha1.RolloutSpec{Strategy: v1alpha1.StrategyRollingUpdate},
			at: map[int]func(*sim){
				6:  declare("v2", "rev-b"),
				12: declare("", "rev-c"),
			},
			spaceOf: map[string]string{"rev-b": "s1"},
		},
		{
			name: "rolling-update", seed: 14, ticks: 15, replicas: 3,
			rollout: v1alpha1.RolloutSpec{Strategy: v1alpha1.StrategyRollingUpdate},
			at:      shipsRevB(map[int]func(*sim){}),
		},
		{
			name: "replicas-only-change", seed: 15, ticks: 15, replicas: 3,
			rollout: canarySpec(),
			at: map[int]func(*sim){
				6: func(s *sim) { s.replicas = 5; s.logf("spec: replicas 3 -> 5 (template unchanged)") },
			},
		},
	}
}

func TestGoldenSimulations(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			golden(t, sc.name, run(t, sc))
		})
	}
}

// A manager killed at any point ends where an uninterrupted one does.
func TestRestartEndsLikeUninterrupted(t *testing.T) {
	for _, sc := range scenarios() {
		if sc.killAt != nil || sc.lostAt != nil {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			// Longer than the golden run, so a delayed rollout settles too.
			sc.ticks += 12
			clean := finalLine(run(t, sc))
			for k := 0; k < sc.ticks-12; k++ { // a kill at every tick
				killed := sc
				killed.killAt = map[int]bool{k: true}
				killed.lostAt = map[int]bool{k + 1: true}
				if got := finalLine(run(t, killed)); got != clean {
					t.Errorf("killed at t=%s: %s, uninterrupted: %s", time.Duration(k)*tick, got, clean)
				}
			}
		})
	}
}

func finalLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}
