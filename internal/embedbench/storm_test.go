package embedbench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkUploadStorm: 150 clients upload a 3.9 MB body each at the same
// moment to an embedding server with its default limits (--max-body-bytes 4 MiB,
// --max-pending-bytes 64 MiB) in front of a float-answering upstream: the
// server's RSS growth over idle, the answers by status (each must be 200, 413
// or a shed 429), and whether it still serves afterwards. Once with
// Content-Length, once chunked.
func BenchmarkUploadStorm(b *testing.B) {
	const (
		clients = 150
		size    = 3_900_000
	)
	dir := b.TempDir()
	upBin, esBin := build(b, dir, "../../hack/fakeupstream"), build(b, dir, "../../cmd/embedserver")
	for i := 0; i < b.N; i++ {
		upAddr := freeAddr(b)
		up := start(b, "fakeupstream", exec.Command(upBin, "--addr", upAddr, "--latency", upstreamBase.String(),
			"--dims", fmt.Sprint(matrixDims), "--encoding", "float"), "http://"+upAddr+"/stats")

		// Eight texts of words, about 3.9 MB in all: documents, not a flood of inputs.
		words := strings.Fields("retrieval augmented generation embeds every document chunk into a vector so that a query finds the nearest passages")
		var sb strings.Builder
		for j := 0; sb.Len() < size/8-64; j++ {
			sb.WriteString(words[j%len(words)])
			sb.WriteByte(' ')
		}
		text := sb.String()
		body := `{"input":["` + strings.Join([]string{text, text, text, text, text, text, text, text}, `","`) + `"]}`

		for _, chunked := range []bool{false, true} {
			// A fresh server each time: idle is idle, not what the last storm left.
			addr, admin := freeAddr(b), freeAddr(b)
			es := start(b, "embedserver", exec.Command(esBin, "--addr", addr, "--admin-addr", admin, "--provider", "openai",
				"--model", "fake-embedding", "--upstream-url", "http://"+upAddr+"/v1", "--log-level", "error"), "http://"+admin+"/readyz")
			pid := es.cmd.Process.Pid
			for range 5 { // warm: the pools and the connection to the upstream
				oneRequest(b, addr, `{"input":"warm"}`, false)
			}
			resetPeakRSS(pid)
			idle := rss(pid)
			counts := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			startAt := make(chan struct{})
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-startAt
					status := oneRequest(b, addr, body, chunked)
					mu.Lock()
					counts[status]++
					mu.Unlock()
				}()
			}
			t0 := time.Now()
			close(startAt)
			wg.Wait()
			elapsed := time.Since(t0)
			peak := peakRSS(pid)
			after := oneRequest(b, addr, `{"input":"still serving?"}`, false)
			others := 0
			for s, n := range counts {
				if s != 200 && s != 413 && s != 429 {
					others += n
				}
			}
			mode := "Content-Length"
			if chunked {
				mode = "chunked"
			}
			fmt.Printf("\n== upload storm (%s): %d clients x %.1f MB at once, default limits, float upstream (load average %s) ==\n",
				mode, clients, float64(len(body))/1e6, loadavg())
			fmt.Printf("   answers by status %v in %v (-1: no answer); other than 200/413/429: %d\n", counts, elapsed.Round(time.Millisecond), others)
			fmt.Printf("   RSS idle %.1f MiB, peak %.1f MiB: growth %.1f MiB (target < 128); a request afterwards: %d\n",
				mib(idle), mib(peak), mib(peak-idle), after)
			b.ReportMetric(mib(peak-idle), "rss-growth-MiB/"+mode)
			es.stop()
		}
		up.stop()
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// oneRequest posts body on its own connection and returns the status (-1: none).
func oneRequest(b *testing.B, addr, body string, chunked bool) int {
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // no length known: net/http sends it chunked
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/embeddings", r)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// rss is a process's resident set (VmRSS) in bytes.
func rss(pid int) int64 { return statusKB(pid, "VmRSS:") << 10 }

// resetPeakRSS resets VmHWM to the current RSS (Linux clear_refs 5).
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func statusKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kb int64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
			return kb
		}
	}
	return 0
}
