package fakeupstream

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Post(url+"/v1/embeddings", "application/json", strings.NewReader(`{"input":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestScriptRatesAndCounters(t *testing.T) {
	up := New(Config{Script: []int{429, 500, 200}, RetryAfter: 1500 * time.Millisecond})
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer up.Close()
	r := post(t, ts.URL)
	if r.StatusCode != 429 || r.Header.Get("Retry-After") != "1.5" || r.Header.Get("Retry-After-Ms") != "1500" {
		t.Fatalf("first call: %d %v", r.StatusCode, r.Header)
	}
	if r := post(t, ts.URL); r.StatusCode != 500 {
		t.Fatalf("second call: %d", r.StatusCode)
	}
	for i := 0; i < 3; i++ {
		if r := post(t, ts.URL); r.StatusCode != 200 {
			t.Fatalf("call %d: %d", i+3, r.StatusCode)
		}
	}
	st := up.Stats()
	if st.Calls != 5 || st.Inputs != 10 || st.LargestCall != 2 || st.ByStatus[200] != 3 || st.ByStatus[429] != 1 {
		t.Fatalf("stats %+v", st)
	}

	up.SetConfig(Config{ErrorRate: 0.5})
	up.ResetStats()
	for i := 0; i < 200; i++ {
		post(t, ts.URL)
	}
	if n := up.Stats().ByStatus[500]; n < 60 || n > 140 {
		t.Fatalf("%d/200 errors at rate 0.5", n)
	}
}

func TestHangReleasedByClose(t *testing.T) {
	up := New(Config{HangRate: 1})
	ts := httptest.NewServer(up)
	defer ts.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(ts.URL+"/v1/embeddings", "application/json", strings.NewReader(`{"input":"x"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	for up.Stats().Hung == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a hanging call answered")
	case <-time.After(50 * time.Millisecond):
	}
	up.Close()
	<-done
}
