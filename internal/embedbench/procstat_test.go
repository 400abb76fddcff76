package embedbench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// usage is what the kernel's scheduler accounted to a process's threads
// (/proc/PID/task/*/schedstat): time on a CPU, time runnable but waiting for
// one (run-queue wait), and how many times a thread was put on a CPU
// (wake-ups and preemptions: on a virtual machine each costs far more than
// on bare metal). A process's threads that ended before the sample are not
// counted; the servers here keep theirs.
type usage struct {
	cpu, runWait time.Duration
	slices       int64
}

func (u usage) sub(v usage) usage {
	return usage{cpu: u.cpu - v.cpu, runWait: u.runWait - v.runWait, slices: u.slices - v.slices}
}

func (u usage) add(v usage) usage {
	return usage{cpu: u.cpu + v.cpu, runWait: u.runWait + v.runWait, slices: u.slices + v.slices}
}

// perReq divides each figure by n requests: µs of CPU, µs of run-queue wait,
// and slices.
func (u usage) perReq(n int) (cpuUS, waitUS, slices float64) {
	if n == 0 {
		return 0, 0, 0
	}
	f := float64(n)
	return float64(u.cpu.Microseconds()) / f, float64(u.runWait.Microseconds()) / f, float64(u.slices) / f
}

// procUsage sums the schedstat of every thread of pid ("self" for this
// process).
func procUsage(pid string) usage {
	var u usage
	tasks, _ := filepath.Glob("/proc/" + pid + "/task/*/schedstat")
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(data))
		if len(f) < 3 {
			continue
		}
		run, _ := strconv.ParseInt(f[0], 10, 64)
		wait, _ := strconv.ParseInt(f[1], 10, 64)
		n, _ := strconv.ParseInt(f[2], 10, 64)
		u.cpu += time.Duration(run)
		u.runWait += time.Duration(wait)
		u.slices += n
	}
	return u
}

// treeUsage is procUsage of pid and its children (nginx's workers).
func treeUsage(pid int) usage {
	u := procUsage(strconv.Itoa(pid))
	for _, child := range children(pid) {
		u = u.add(procUsage(strconv.Itoa(child)))
	}
	return u
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
