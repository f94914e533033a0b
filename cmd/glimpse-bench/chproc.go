package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// chServers are the ClickHouse server processes whose CPU a run charges to
// the events it stores.
type chServers struct {
	pids []int
	// all: the DSN's port led to no process here (another user's, or in a
	// container), so every clickhouse-server on this machine is counted.
	all bool
}

// findClickHouse returns the process listening on the DSN's port, so that
// other servers on the machine (a shared test server, a local cluster)
// are not charged to the run; failing that, every clickhouse-server here.
func findClickHouse(addr string) chServers {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return chServers{all: true}
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return chServers{all: true}
	}
	if pid := listener(port); pid > 0 {
		return chServers{pids: []int{pid}}
	}
	return chServers{all: true}
}

func (s chServers) String() string {
	if s.all {
		return "every clickhouse-server on this machine (none found listening on the DSN's port)"
	}
	return fmt.Sprintf("the server on the DSN's port (pid %d)", s.pids[0])
}

// cpu sums the servers' CPU seconds.
func (s chServers) cpu() float64 {
	if !s.all {
		var sum float64
		for _, pid := range s.pids {
			sum += cpuSeconds(pid)
		}
		return sum
	}
	ents, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(comm), "clickhouse-serv") {
			sum += cpuSeconds(pid)
		}
	}
	return sum
}

// listener returns the pid of the process holding a TCP socket listening
// on port, or 0: the socket's inode from /proc/net/tcp{,6}, then the
// process whose file descriptors hold that inode.
func listener(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}
