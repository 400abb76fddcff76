package provider

import (
	"context"
	"testing"
	"time"
)

func TestWaitDeadline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	withDeadline := func(d time.Time) context.Context {
		ctx, cancel := context.WithDeadline(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	tests := []struct {
		name   string
		ctx    context.Context
		want   time.Time
		wantOK bool
	}{
		{"neither", context.Background(), time.Time{}, false},
		{"request deadline only", withDeadline(now.Add(time.Second)), now.Add(time.Second), true},
		{"queue deadline only", WithQueueDeadline(context.Background(), now.Add(time.Minute)), now.Add(time.Minute), true},
		{"queue deadline first", WithQueueDeadline(withDeadline(now.Add(30*time.Second)), now.Add(5*time.Second)), now.Add(5 * time.Second), true},
		{"request deadline first", WithQueueDeadline(withDeadline(now.Add(time.Second)), now.Add(5*time.Second)), now.Add(time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := WaitDeadline(tt.ctx)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Fatalf("%v %v, want %v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
