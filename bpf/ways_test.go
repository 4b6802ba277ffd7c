package bpf

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every way a task can open a file, signal or connect must reach the
// capture, on both backends, and what opens no file (O_PATH) must not:
// TSEM's file_open never sees it. The 32-bit cases use int $0x80 from this
// 64-bit test binary, which the syscalls:* tracepoints skip; they need a
// kernel that runs 32-bit syscalls (the VM's does).

func TestTracepointOpenWays(t *testing.T) { testOpenWays(t, BackendTracepoint) }
func TestLSMOpenWays(t *testing.T)        { testOpenWays(t, BackendLSM) }

// has32 reports whether this kernel runs 32-bit syscalls (int $0x80), by
// a getpid through it in a helper outside any namespace; else the reason.
func has32(t *testing.T, bin string) (bool, string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), envHelper+"=open-via", envVia+"=int80-getpid")
	out, err := cmd.CombinedOutput()
	if err == nil && strings.TrimSpace(string(out)) == "ok" {
		return true, ""
	}
	return false, "int $0x80 does not work on this kernel (32-bit emulation off, e.g. ia32_emulation=off), " +
		"so no task can step around the capture through it: " + strings.TrimSpace(firstLine(string(out))) + " " + errName(err)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func testOpenWays(t *testing.T, b Backend) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	ok32, why32 := has32(t, bin)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	tests := []struct {
		via  string
		want RecordType // 0: no record of the file
		is32 bool
	}{
		{via: "openat", want: RecFileOpen},
		{via: "creat", want: RecFileOpen},
		{via: "open_by_handle_at", want: RecFileOpen},
		{via: "o_path"},
		{via: "int80-open", want: RecFileOpen, is32: true},
		{via: "int80-openat", want: RecFileOpen, is32: true},
		{via: "int80-creat", want: RecFileOpen, is32: true},
		{via: "int80-kill", want: RecTaskKill, is32: true},
		{via: "int80-connect", want: RecSocketConnect, is32: true},
	}
	col := collect(t, c)
	for _, tc := range tests {
		t.Run(tc.via, func(t *testing.T) {
			if tc.is32 && !ok32 {
				t.Skip(why32)
			}
			target := filepath.Join(dir, "file-"+tc.via)
			writeFile(t, target, "vigil "+tc.via+"\n")
			ns := nextNS()
			run := runEnrolled(t, c, ns, workload{next: "open-via", bin: bin, env: []string{
				envVia + "=" + tc.via, envFiles + "=" + target, envAddr + "=" + ln.Addr().String()}})
			if run.out != "ok\n" {
				t.Fatalf("helper %s: %q; want ok", tc.via, run.out)
			}
			if !col.until(exitedMain(run.pid)) {
				t.Fatalf("no task_exit record of pid %d", run.pid)
			}
			recs := recordsOf(col.snapshot(), ns)
			var got []Record
			for _, r := range recs {
				if int(r.Head().TGID) != run.pid {
					continue
				}
				switch r := r.(type) {
				case *FileOpen:
					if r.File.Path.Name == target {
						got = append(got, r)
					}
				case *TaskKill:
					if int(r.Target.PID) == run.pid && r.Sig == 0 {
						got = append(got, r)
					}
				case *SocketAddr:
					if r.Type == RecSocketConnect && r.Addr.Family == 2 && r.Addr.Addr4 == 0x0100007f {
						got = append(got, r)
					}
				}
			}
			switch {
			case tc.want == 0 && len(got) != 0:
				t.Errorf("%s: %d records of %s (first %s); want none, as TSEM's file_open", tc.via, len(got), target, got[0].Head().Type)
			case tc.want != 0 && len(got) == 0:
				t.Errorf("%s: no %s record among the %d records of pid %d", tc.via, tc.want, len(recs), run.pid)
			case tc.want != 0 && got[0].Head().Type != tc.want:
				t.Errorf("%s: record %s; want %s", tc.via, got[0].Head().Type, tc.want)
			}
		})
	}
}

func TestTracepointExecScript(t *testing.T) { testExecScript(t, BackendTracepoint) }
func TestLSMExecScript(t *testing.T)        { testExecScript(t, BackendLSM) }

// testExecScript execs a "#!" script whose interpreter is the helper: the
// script's open (exec flags, by the task before the exec) must be
// reported with its file, and the exec itself names the interpreter.
func testExecScript(t *testing.T, b Backend) {
	c := openCapture(t, b)
	if !c.ScriptFiles() {
		t.Errorf("%s backend cannot find script files (no ____fput address): scripts are named by path only", b)
	}
	dir, bin := sharedDir(t)
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!"+bin+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	raw := keepRaw(c)
	col := collect(t, c)
	ns := nextNS()
	run := runEnrolled(t, c, ns, workload{next: "open", bin: bin, env: []string{envExec + "=" + script}})
	if !col.until(exitedMain(run.pid)) {
		t.Fatalf("no task_exit record of pid %d", run.pid)
	}
	recs := recordsOf(col.finish(t), ns)
	var ex *Exec
	for _, r := range recs {
		if e, ok := r.(*Exec); ok && int(e.TGID) == run.pid {
			ex = e
		}
	}
	if ex == nil {
		t.Fatalf("no exec record of pid %d among %d records", run.pid, len(recs))
	}
	if ex.File.Path.Name != bin {
		t.Errorf("exec file %q; want the interpreter %q", ex.File.Path.Name, bin)
	}
	if b == BackendTracepoint {
		raw.save(t, ns, b)
	}
	var open *File
	var ttd uint64
	for _, r := range recs {
		if int(r.Head().TGID) != run.pid {
			continue
		}
		switch r := r.(type) {
		case *ExecScript:
			if b == BackendTracepoint && r.File.Path.Name == script {
				open, ttd = &r.File, r.TTD
			}
		case *FileOpen:
			if b == BackendLSM && r.File.Path.Name == script && r.File.Flags&0x20 != 0 {
				open, ttd = &r.File, r.TTD
			}
		}
	}
	if open == nil {
		t.Fatalf("no exec open of the script %s among %d records", script, len(recs))
	}
	if ttd != ex.PrevTTD {
		t.Errorf("script open by TTD %d; want the task before the exec, %d", ttd, ex.PrevTTD)
	}
	var st os.FileInfo
	st, err := os.Stat(script)
	if err != nil {
		t.Fatal(err)
	}
	if !open.Present || open.Inode.Size != uint64(st.Size()) || open.Inode.Mode&0o777 != 0o755 || open.Flags&0x20 == 0 {
		t.Errorf("script file %+v; want present, size %d, mode 0755, exec flags", *open, st.Size())
	}
}
