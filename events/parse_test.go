package events

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// header and coe are a valid TSEM header and COE for hand-made lines.
const (
	testTask   = "094e29687d185cf4eaa48ddebfcda205465ad78df543e361621ea0acf2d4f986"
	testHeader = `{"event": {"context": "1", "number": "7", "process": "bash", "type": "%TYPE%", "ttd": "2", "p_ttd": "1", "task_id": "` + testTask + `", "p_task_id": "` + testTask + `", "ts": "99"}, `
	testCOE    = `"COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x1ffffffffff"}, `
)

// line builds a description of typ with the given payload object body.
func line(typ, payload string) string {
	return strings.Replace(testHeader, "%TYPE%", typ, 1) + testCOE + `"` + typ + `": {` + payload + `}}`
}

const fileObject = `"file": {"flags": "32768", "inode": {"uid": "0", "gid": "0", "mode": "0100644", "s_magic": "0xef53", "s_id": "sda3", "s_uuid": "e896110b42b24dbca89c7caa36961685"}, "path": {"dev": {"major": "8", "minor": "3"}, "type": "root", "pathname": "PATH"}, "digest": "` + testTask + `"}`

func fileOpen(pathname string) string {
	return line("file_open", strings.Replace(fileObject, "PATH", pathname, 1))
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		err    error
		field  string
		offset int // -1: do not check
		detail string
	}{
		{name: "empty", line: "", err: ErrSyntax, offset: 0},
		{name: "not an object", line: `["event"]`, err: ErrSyntax, offset: 0},
		{name: "truncated", line: fileOpen("/etc/hosts")[:200], err: ErrSyntax, offset: -1},
		{name: "trailing data", line: fileOpen("/etc/hosts") + "x", err: ErrSyntax, offset: len(fileOpen("/etc/hosts"))},
		{name: "number value", line: strings.Replace(fileOpen("/a"), `"flags": "32768"`, `"flags": 32768`, 1), err: ErrSyntax, offset: -1},
		{name: "bad escape", line: fileOpen(`/a\q`), err: ErrSyntax, offset: -1},
		{name: "unknown type", line: line("file_frobnicate", ""), err: ErrUnknownType, field: "event.type", offset: 69, detail: `"file_frobnicate"`},
		{name: "missing field", line: strings.Replace(fileOpen("/a"), `"s_id": "sda3", `, "", 1), err: ErrMissingField, field: "file_open.file.inode.s_id", offset: -1},
		{name: "missing payload", line: strings.Replace(testHeader, "%TYPE%", "capable", 1) + strings.TrimSuffix(testCOE, ", ") + "}", err: ErrMissingField, field: "capable", offset: 0},
		{name: "missing COE", line: strings.Replace(testHeader, "%TYPE%", "capable", 1) + `"capable": {"cap": "1", "opts": "0"}}`, err: ErrMissingField, field: "COE", offset: 0},
		{name: "bad hex", line: strings.Replace(fileOpen("/a"), `"digest": "094e`, `"digest": "zz4e`, 1), err: ErrBadHex, field: "file_open.file.digest", offset: -1},
		{name: "short hex", line: strings.Replace(fileOpen("/a"), `"s_uuid": "e896`, `"s_uuid": "e8`, 1), err: ErrBadHex, field: "file_open.file.inode.s_uuid", offset: -1},
		{name: "non-numeric", line: strings.Replace(fileOpen("/a"), `"flags": "32768"`, `"flags": "12ab"`, 1), err: ErrBadNumber, field: "file_open.file.flags", offset: -1, detail: `"12ab"`},
		{name: "bad octal", line: strings.Replace(fileOpen("/a"), `"mode": "0100644"`, `"mode": "0100648"`, 1), err: ErrBadNumber, field: "file_open.file.inode.mode", offset: -1},
		{name: "u32 overflow", line: strings.Replace(fileOpen("/a"), `"flags": "32768"`, `"flags": "4294967296"`, 1), err: ErrBadNumber, field: "file_open.file.flags", offset: -1},
		{name: "negative unsigned", line: strings.Replace(fileOpen("/a"), `"flags": "32768"`, `"flags": "-1"`, 1), err: ErrBadNumber, field: "file_open.file.flags", offset: -1},
		{name: "unknown field", line: strings.Replace(fileOpen("/a"), `"flags": "32768"`, `"flags": "32768", "color": "red"`, 1), err: ErrUnknownField, field: "file_open.file.color", offset: -1},
		{name: "repeated field", line: strings.Replace(fileOpen("/a"), `"flags": "32768"`, `"flags": "32768", "flags": "1"`, 1), err: ErrUnknownField, field: "file_open.file.flags", offset: -1, detail: "repeated"},
		{name: "object for string", line: strings.Replace(fileOpen("/a"), `"flags": "32768"`, `"flags": {}`, 1), err: ErrSyntax, field: "file_open.file.flags", offset: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse([]byte(tc.line))
			if err == nil {
				t.Fatalf("Parse = %+v, nil; want error %v", e, tc.err)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Parse error = %v; want %v", err, tc.err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %T is not a *ParseError", err)
			}
			if pe.Field != tc.field {
				t.Errorf("Field = %q; want %q (%v)", pe.Field, tc.field, err)
			}
			if tc.offset >= 0 && pe.Offset != tc.offset {
				t.Errorf("Offset = %d; want %d (%v)", pe.Offset, tc.offset, err)
			}
			if pe.Offset < 0 || pe.Offset > len(tc.line) {
				t.Errorf("Offset = %d outside the line", pe.Offset)
			}
			if tc.detail != "" && !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not say %q", err, tc.detail)
			}
		})
	}
}

// TestParseLenient checks pathnames as TSEM really prints them: raw control
// characters and bytes that are not UTF-8 are kept byte-exact, standard
// escapes are decoded, and AppendTSEM escapes them so Parse gets the same
// bytes back.
func TestParseLenient(t *testing.T) {
	tests := []struct {
		name     string
		json     string // as it appears between the quotes
		pathname string // the bytes wanted
	}{
		{name: "plain", json: "/etc/hosts", pathname: "/etc/hosts"},
		{name: "raw tab", json: "/tmp/a\tb", pathname: "/tmp/a\tb"},
		{name: "raw control", json: "/tmp/\x01\x1f", pathname: "/tmp/\x01\x1f"},
		{name: "latin-1 byte", json: "/tmp/caf\xe9", pathname: "/tmp/caf\xe9"},
		{name: "truncated utf-8", json: "/tmp/\xe2\x82", pathname: "/tmp/\xe2\x82"},
		{name: "utf-8", json: "/tmp/€ü", pathname: "/tmp/€ü"},
		{name: "escapes", json: `/a\"b\\c\/d\n\t\r\b\f`, pathname: "/a\"b\\c/d\n\t\r\b\f"},
		{name: "unicode escape", json: `/\u00e9\u20ac`, pathname: "/é€"},
		{name: "surrogate pair", json: `/\ud83d\ude00`, pathname: "/😀"},
		{name: "raw byte escape", json: `/\udce9\udcff`, pathname: "/\xe9\xff"},
		{name: "lone high surrogate", json: `/\ud83d`, pathname: "/\uFFFD"},
		{name: "DEL", json: "/\x7f", pathname: "/\x7f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse([]byte(fileOpen(tc.json)))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			got := e.Payload.(*FileEvent).File.Path.Pathname
			if got != tc.pathname {
				t.Fatalf("pathname = %q; want %q", got, tc.pathname)
			}
			enc := e.AppendTSEM(nil)
			for _, c := range enc {
				if c < 0x20 {
					t.Fatalf("AppendTSEM wrote raw control byte %#x: %q", c, enc)
				}
			}
			if !validUTF8(enc) {
				t.Fatalf("AppendTSEM wrote invalid UTF-8: %q", enc)
			}
			e2, err := Parse(enc)
			if err != nil {
				t.Fatalf("Parse(AppendTSEM) = %v", err)
			}
			if !reflect.DeepEqual(e, e2) {
				t.Errorf("Parse(AppendTSEM(e)) = %+v; want %+v", e2, e)
			}
		})
	}
}

func validUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		neg  bool
		v    uint64
		fail bool
	}{
		{in: "0", v: 0},
		{in: "00", v: 0},
		{in: "42", v: 42},
		{in: "0100755", v: 0o100755},
		{in: "0x1ffffffffff", v: 0x1ffffffffff},
		{in: "0XEF53", v: 0xef53},
		{in: "-5", neg: true, v: 5},
		{in: "+5", v: 5},
		{in: "18446744073709551615", v: 1<<64 - 1},
		{in: "18446744073709551616", fail: true},
		{in: "0x10000000000000000", fail: true},
		{in: "", fail: true},
		{in: "-", fail: true},
		{in: "0x", fail: true},
		{in: "08", fail: true},
		{in: "1e3", fail: true},
		{in: " 1", fail: true},
	}
	for _, tc := range tests {
		neg, v, ok := parseNumber([]byte(tc.in))
		if ok == tc.fail || (ok && (neg != tc.neg || v != tc.v)) {
			t.Errorf("parseNumber(%q) = %v, %d, %v; want %v, %d, %v", tc.in, neg, v, ok, tc.neg, tc.v, !tc.fail)
		}
	}
}

// TestGeneric checks that events without a typed layout keep every member,
// in order, and that unknown names are rejected by name.
// payloadCase is the type and payload members of a hand-made description
// (see line).
type payloadCase struct{ typ, payload string }

// genericCases are descriptions of types events keeps member for member.
func genericCases() []payloadCase {
	return []payloadCase{
		{"syslog", `"type": "3"`},
		{"settime", `"ts": {"seconds": "1", "nsecs": "2"}, "tz": {"minuteswest": "-60", "dsttime": "0"}`},
		{"kernel_module_request", "\"kmod_name\": \"net-pf-\t\xff\""},
		{"task_alloc", ``},
		{"bpf_map", `"map": {"map_type": "2"}, "fmode": "3"`},
	}
}

func TestGeneric(t *testing.T) {
	for _, tc := range genericCases() {
		t.Run(tc.typ, func(t *testing.T) {
			l := line(tc.typ, tc.payload)
			e, err := Parse([]byte(l))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if _, ok := e.Payload.(*Generic); !ok {
				t.Fatalf("payload %T; want *Generic", e.Payload)
			}
			enc := e.AppendTSEM(nil)
			if want := bytes.ReplaceAll([]byte(l), []byte("\t"), []byte(`\t`)); !bytes.Equal(enc, bytes.ReplaceAll(want, []byte("\xff"), []byte(`\udcff`))) {
				t.Errorf("AppendTSEM =\n%s\nwant\n%s", enc, l)
			}
			e2, err := Parse(enc)
			if err != nil || !reflect.DeepEqual(e, e2) {
				t.Errorf("Parse(AppendTSEM(e)) = %+v, %v; want %+v", e2, err, e)
			}
		})
	}
	_, err := Parse([]byte(line("no_such_event", "")))
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), `"no_such_event"`) {
		t.Errorf("Parse(no_such_event) error = %v; want ErrUnknownType naming it", err)
	}
}

// typedLayoutCases are one hand-made description of each typed layout that
// the reference data lacks.
func typedLayoutCases() []payloadCase {
	sock := `{"family": "2", "type": "1", "protocol": "6", "owner": "` + testTask + `"}`
	inode := `{"uid": "0", "gid": "0", "mode": "040755", "s_magic": "0x1021994", "s_id": "tmpfs", "s_uuid": "00000000000000000000000000000000"}`
	path := `{"type": "root", "pathname": "/x"}`
	dentry := `{"inode": ` + inode + `, "path": ` + path + `}`
	cred := `{"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x0", "securebits": "0"}`
	return []payloadCase{
		{"file_receive", strings.Replace(fileObject, "PATH", "/r", 1)},
		{"file_lock", strings.Replace(fileObject, "PATH", "/r", 1) + `, "cmd": "7"`},
		{"bprm_committed_creds", strings.Replace(fileObject, "PATH", "/bin/sh", 1)},
		{"mmap_file", `"prot": "4", "flags": "34"`},
		{"sb_statfs", `"dentry": ` + dentry},
		{"inode_killpriv", `"dentry": ` + dentry},
		{"inode_create", `"dir": ` + inode + `, "dentry": {"path": ` + path + `}, "mode": "0100644"`},
		{"inode_unlink", `"dir": ` + inode + `, "dentry": ` + dentry},
		{"inode_symlink", `"dir": ` + inode + `, "dentry": {"path": ` + path + `}, "old_name": "/y"`},
		{"inode_link", `"old_dentry": ` + dentry + `, "dir": ` + inode + `, "new_dentry": {"path": ` + path + `}`},
		{"inode_rename", `"old_dir": ` + inode + `, "old_dentry": ` + dentry + `, "new_dir": ` + inode + `, "new_dentry": {"path": ` + path + `}`},
		{"inode_setattr", `"dentry": ` + dentry + `, "attr": {"valid": "1", "mode": "0644", "uid": "0", "gid": "0", "size": "0"}`},
		{"inode_setxattr", `"dentry": ` + dentry + `, "name": "user.x", "value": "dmFsdWU=", "flags": "0"`},
		{"inode_getxattr", `"dentry": ` + dentry + `, "name": "user.x"`},
		{"sb_mount", `"path": {"dev": {"major": "0", "minor": "0"}, "type": "root", "pathname": "/mnt"}, "flags": "4096"`},
		{"sb_umount", `"mnt": ` + dentry + `, "flags": "-2"`},
		{"sb_remount", `"sb": {"dentry": ` + dentry + `, "fstype": "ext4", "s_flags": "1"}`},
		{"sb_pivotroot", `"old_path": ` + path + `, "new_path": ` + path},
		{"move_mount", `"from_path": ` + path + `, "to_path": ` + path},
		{"socket_bind", `"sock": ` + sock + `, "addr": {"af_inet": {"port": "20480", "address": "16777343"}}`},
		{"socket_accept", `"sock": ` + sock + `, "addr": {"af_inet6": {"port": "20480", "address": "00000000000000000000000000000001"}}`},
		{"socket_connect", `"sock": ` + sock + `, "addr": {"af_other": {"address": "` + testTask + `"}}`},
		{"socket_sendmsg", `"sock": ` + sock + `, "addr": {"af_inet": {"port": "13568", "addrress": "134744072"}}`},
		{"socket_recvmsg", `"sock": ` + sock},
		{"unix_may_send", `"sock": ` + sock + `, "other": ` + sock},
		{"socket_socketpair", `"socka": ` + sock + `, "sockb": ` + sock},
		{"socket_getpeername", `"sock": ` + sock},
		{"socket_listen", `"sock": ` + sock + `, "backlog": "128"`},
		{"socket_shutdown", `"sock": ` + sock + `, "how": "2"`},
		{"socket_setsockopt", `"sock": ` + sock + `, "level": "1", "optname": "2"`},
		{"task_getsid", `"task": "` + testTask + `"`},
		{"task_setnice", `"task": "` + testTask + `", "nice": "-5"`},
		{"task_setioprio", `"task": "` + testTask + `", "ioprio": "4"`},
		{"task_prlimit", `"cred": ` + cred + `, "tcred": ` + cred + `, "flags": "1"`},
		{"task_setrlimit", `"task": "` + testTask + `", "new_rlim": {"resource": "7", "current": "1024", "max": "4096"}`},
		{"ptrace_access_check", `"child": "` + testTask + `", "mode": "2"`},
		{"ptrace_traceme", `"source": "` + testTask + `"`},
		{"capget", `"target": "` + testTask + `", "effective": "0x1ff", "inheritable": "0x0", "permitted": "0x1ff"`},
		{"capset", `"effective": "0x1ff", "inheritable": "0x0", "permitted": "0x1ff"`},
		{"key_permission", `"key_ref": {"possessed": "1", "uid": "0", "gid": "0", "flags": "0"}, "cred": ` + cred + `, "perm": "1"`},
	}
}

// TestTypedLayouts parses one hand-made description of each typed layout
// that the reference data lacks, checks it is typed, and round-trips it.
func TestTypedLayouts(t *testing.T) {
	for _, tc := range typedLayoutCases() {
		t.Run(tc.typ, func(t *testing.T) {
			l := line(tc.typ, tc.payload)
			e, err := Parse([]byte(l))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if _, ok := e.Payload.(*Generic); ok {
				t.Fatalf("%s parsed as generic", tc.typ)
			}
			if enc := e.AppendTSEM(nil); string(enc) != l {
				t.Errorf("AppendTSEM =\n%s\nwant\n%s", enc, l)
			}
		})
	}
}
