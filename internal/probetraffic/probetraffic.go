// Package probetraffic keeps synthetic requests going to the ready pods of a
// canary and of its stable track while the canary is analysed, so a service
// with few clients still gets conclusive verdicts. They are real requests,
// sent to the pods' API port, and count in the pods' metrics like any other.
package probetraffic

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ragops/rag-operator/internal/probeclient"
)

// Plan is what one service's probe traffic should be.
type Plan struct {
	// Revision is the canary analysed; a plan for another revision starts a
	// new session.
	Revision string
	// PerTrack is how many requests each track gets per Interval.
	PerTrack int
	Interval time.Duration
	// Targets are the API base URLs of each track's ready pods, by track.
	Targets map[string][]string
	// Texts are the probe texts, one per request, in turn.
	Texts []string
}

// Observer learns what became of each slice of a track's requests.
type Observer func(key, track string, stats probeclient.Stats)

// Runner runs one session per service. Start it with the manager; Ensure and
// Stop come from reconciles. A session never outlives Stop, the manager, or
// its plan's revision.
type Runner struct {
	Traffic probeclient.Traffic
	Observe Observer

	mu       sync.Mutex
	root     context.Context
	sessions map[string]*session
	wg       sync.WaitGroup
}

type session struct {
	mu     sync.Mutex
	plan   Plan
	cancel context.CancelFunc
}

// slice is the longest stretch sent to one set of targets: the targets are
// taken again for every slice, so a pod that stops being ready soon stops
// getting requests.
const slice = 5 * time.Second

// Start runs sessions until ctx ends, then stops them and waits for their
// requests to end. It implements controller-runtime's Runnable.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	r.root = ctx
	for key, s := range r.sessions {
		r.run(key, s)
	}
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	for key, s := range r.sessions {
		if s.cancel != nil {
			s.cancel()
		}
		delete(r.sessions, key)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// NeedLeaderElection: only the leader sends probe traffic.
func (r *Runner) NeedLeaderElection() bool { return true }

// Ensure makes the session of key follow p: started when there is none,
// restarted for another revision, updated (targets, rate, texts) otherwise.
func (r *Runner) Ensure(key string, p Plan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions == nil {
		r.sessions = map[string]*session{}
	}
	if s, ok := r.sessions[key]; ok {
		s.mu.Lock()
		same := s.plan.Revision == p.Revision
		if same {
			s.plan = p
		}
		s.mu.Unlock()
		if same {
			return
		}
		if s.cancel != nil {
			s.cancel()
		}
	}
	s := &session{plan: p}
	r.sessions[key] = s
	if r.root != nil {
		r.run(key, s)
	}
}

// Stop ends the session of key, if any.
func (r *Runner) Stop(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sessions[key]; ok {
		if s.cancel != nil {
			s.cancel()
		}
		delete(r.sessions, key)
	}
}

// Running lists the keys with a session, sorted.
func (r *Runner) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.sessions {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// run starts s's loop; r.mu is held.
func (r *Runner) run(key string, s *session) {
	ctx, cancel := context.WithCancel(r.root)
	s.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for round := 0; ctx.Err() == nil; round++ {
			s.mu.Lock()
			p := s.plan
			s.mu.Unlock()
			r.round(ctx, key, p, round)
		}
	}()
}

// round sends one slice of each track's requests, at once, to the targets as
// they are now.
func (r *Runner) round(ctx context.Context, key string, p Plan, round int) {
	window, n := Slice(p.PerTrack, p.Interval, round)
	start := time.Now()
	var wg sync.WaitGroup
	for track, targets := range p.Targets {
		if len(targets) == 0 || n == 0 {
			continue
		}
		// Start each slice at another pod, so every pod gets its share.
		rotated := append(slices.Clone(targets[round%len(targets):]), targets[:round%len(targets)]...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := r.Traffic.Send(ctx, rotated, n, window, p.Texts)
			if r.Observe != nil && ctx.Err() == nil {
				r.Observe(key, track, st)
			}
		}()
	}
	wg.Wait()
	// Send returns once its last request is answered, before the window
	// ends: the next slice starts on time, not early.
	t := time.NewTimer(time.Until(start.Add(window)))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Slice is the window and the request count of slice number round of an
// interval: the interval is cut into slices of at most 5s, the requests spread
// over them so that each interval gets exactly perTrack in all.
func Slice(perTrack int, interval time.Duration, round int) (time.Duration, int) {
	if perTrack <= 0 || interval <= 0 {
		return max(interval, time.Second), 0
	}
	k := max(int((interval+slice-1)/slice), 1) // slices per interval
	i := round % k
	// Requests of slice i: its share of perTrack, rounded so they sum up.
	n := (perTrack*(i+1))/k - (perTrack*i)/k
	return interval / time.Duration(k), n
}
