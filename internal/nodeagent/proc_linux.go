package nodeagent

import "syscall"

// sysProcAttr puts each container in its own process group (so a signal reaches
// whatever it forks) and kills it if the agent dies, so no server outlives the
// agent that owns its address.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(pid int, sig syscall.Signal) error { return syscall.Kill(-pid, sig) }
