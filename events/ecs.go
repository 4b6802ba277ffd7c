package events

import (
	"net/netip"
	"strconv"
	"time"
)

// Encoder appends one event description as one line (without a newline)
// in some output format. coefficient is the event's coefficient; an
// encoder that has no place for it ignores it, and an all-zero coefficient
// means "not computed". The coefficient has the namespace's hash length.
type Encoder interface {
	Encode(dst []byte, e *Event, coefficient Digest) []byte
}

var (
	_ Encoder = TSEM{}
	_ Encoder = ECS{}
)

// TSEM encodes TSEM JSON lines (Event.AppendTSEM).
type TSEM struct{}

// Encode implements Encoder.
func (TSEM) Encode(dst []byte, e *Event, _ Digest) []byte { return e.AppendTSEM(dst) }

// ECSVersion is the Elastic Common Schema version ECS output declares.
const ECSVersion = "8.11.0"

// ECS encodes Elastic Common Schema documents of ECSVersion: the fields ECS
// has (event.*, process.*, user.*, group.*, file.*, source.*,
// destination.*, network.*) in ECS form, with real ports and addresses, and
// everything else TSEM describes under vigil.* in TSEM's own encoding.
// Every field written outside vigil.* exists in that ECS version
// (testdata/ecs-<version>-fields.txt lists them): the COE's uid, euid, gid
// and egid are user.id, user.effective.id, group.id and
// user.effective.group.id.
type ECS struct {
	// Boot is the wall-clock time the kernel booted; TSEM's ts counts
	// nanoseconds from it. When zero, @timestamp counts from the Unix
	// epoch instead (vigil.ts always holds the raw value).
	Boot time.Time
}

// Encode implements Encoder.
func (x ECS) Encode(dst []byte, e *Event, coefficient Digest) []byte {
	return AppendECS(dst, e, coefficient, x.Boot)
}

// AppendECS appends e as one ECS JSON document; see ECS.
func AppendECS(dst []byte, e *Event, coefficient Digest, boot time.Time) []byte {
	h := &e.Header
	w := writer{b: dst}
	w.b = append(w.b, '{')

	ts := time.Unix(0, 0).Add(time.Duration(h.TS))
	if !boot.IsZero() {
		ts = boot.Add(time.Duration(h.TS))
	}
	w.key("@timestamp")
	w.b = append(w.b, '"')
	w.b = ts.UTC().AppendFormat(w.b, "2006-01-02T15:04:05.000000000Z")
	w.b = append(w.b, '"')

	w.open("ecs")
	w.str("version", ECSVersion)
	w.close()

	cat := ecsCategory(h.Type)
	w.open("event")
	w.str("kind", "event")
	w.strs("category", cat.category)
	w.strs("type", cat.types)
	w.str("action", h.Type)
	w.str("outcome", "unknown")
	if coefficient.Len() != 0 && !coefficient.IsZero() {
		w.hex("hash", coefficient.Bytes())
	}
	w.num("sequence", h.Number)
	w.close()

	w.open("process")
	if h.HasPid {
		w.num("pid", uint64(h.Pid))
	}
	w.str("name", h.Process)
	w.hex("entity_id", h.TaskID.Bytes())
	w.open("parent")
	w.hex("entity_id", h.PTaskID.Bytes())
	w.close()
	w.open("thread")
	w.open("capabilities")
	w.capabilities("effective", e.COE.CapEff)
	w.close()
	w.close()
	w.close()

	// The COE's real and effective ids. ECS has no group.effective: the
	// effective gid is the effective user's group.
	w.open("user")
	w.dec("id", e.COE.UID)
	w.open("effective")
	w.dec("id", e.COE.EUID)
	w.open("group")
	w.dec("id", e.COE.EGID)
	w.close()
	w.close()
	w.close()
	w.open("group")
	w.dec("id", e.COE.GID)
	w.close()

	ecsFile(&w, e)
	ecsNetwork(&w, e)

	w.open("vigil")
	w.u("context", h.Context)
	w.u("ttd", h.TTD)
	w.u("p_ttd", h.PTTD)
	w.u("ts", h.TS)
	w.open("COE")
	w.coe(&e.COE)
	w.close()
	w.open(h.Type)
	if e.Payload != nil {
		w.b = e.Payload.appendTSEM(w.b, h.Type)
	}
	w.close()
	w.close()

	w.b = append(w.b, '}')
	return w.b
}

// num writes a JSON number.
func (w *writer) num(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

// dec writes a decimal keyword.
func (w *writer) dec(k string, v uint32) { w.u(k, uint64(v)) }

func (w *writer) strs(k string, vs []string) {
	w.key(k)
	w.b = append(w.b, '[')
	for i, v := range vs {
		if i > 0 {
			w.b = append(w.b, ',', ' ')
		}
		w.b = appendString(w.b, v)
	}
	w.b = append(w.b, ']')
}

// capabilityNames are the Linux capability names by bit number.
var capabilityNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapabilityName returns the name of capability bit n ("CAP_SYS_ADMIN"),
// or "CAP_<n>" for a bit newer than this table.
func CapabilityName(n int) string {
	if n >= 0 && n < len(capabilityNames) {
		return capabilityNames[n]
	}
	return "CAP_" + strconv.Itoa(n)
}

func (w *writer) capabilities(k string, set uint64) {
	w.key(k)
	w.b = append(w.b, '[')
	first := true
	for n := 0; n < 64; n++ {
		if set&(1<<n) == 0 {
			continue
		}
		if !first {
			w.b = append(w.b, ',', ' ')
		}
		first = false
		w.b = appendString(w.b, CapabilityName(n))
	}
	w.b = append(w.b, ']')
}

type ecsCat struct{ category, types []string }

var (
	catFileAccess   = ecsCat{[]string{"file"}, []string{"access"}}
	catFileInfo     = ecsCat{[]string{"file"}, []string{"info"}}
	catFileCreation = ecsCat{[]string{"file"}, []string{"creation"}}
	catFileDeletion = ecsCat{[]string{"file"}, []string{"deletion"}}
	catFileChange   = ecsCat{[]string{"file"}, []string{"change"}}
	catProcStart    = ecsCat{[]string{"process"}, []string{"start"}}
	catProcChange   = ecsCat{[]string{"process"}, []string{"change"}}
	catProcInfo     = ecsCat{[]string{"process"}, []string{"info"}}
	catProcAccess   = ecsCat{[]string{"process"}, []string{"access"}}
	catNetStart     = ecsCat{[]string{"network"}, []string{"start"}}
	catNetConn      = ecsCat{[]string{"network"}, []string{"connection", "start"}}
	catNetInfo      = ecsCat{[]string{"network"}, []string{"info"}}
	catNetAccess    = ecsCat{[]string{"network"}, []string{"access"}}
	catNetEnd       = ecsCat{[]string{"network"}, []string{"end"}}
	catNetProtocol  = ecsCat{[]string{"network"}, []string{"protocol"}}
	catHostAccess   = ecsCat{[]string{"host"}, []string{"access"}}
	catHostChange   = ecsCat{[]string{"host"}, []string{"change"}}
	catDriverStart  = ecsCat{[]string{"driver"}, []string{"start"}}
	catIAMCreation  = ecsCat{[]string{"iam"}, []string{"creation"}}
	catIAMInfo      = ecsCat{[]string{"iam"}, []string{"info"}}
)

// ecsCategory returns the ECS categorisation of a TSEM event (the
// catalogue's, Kind.ECS): only values ECS allows, in allowed
// category/type pairs.
func ecsCategory(typ string) ecsCat {
	if k, ok := KindOf(typ); ok {
		return k.ecs
	}
	return catHostAccess
}

// fileOf returns the file-like object of a payload for file.*.
func fileOf(p Payload) (path *Path, inode *Inode, digest *Digest) {
	switch p := p.(type) {
	case *FileEvent:
		return &p.File.Path, &p.File.Inode, &p.File.Digest
	case *FileCmd:
		return &p.File.Path, &p.File.Inode, &p.File.Digest
	case *MmapFile:
		if p.HasFile {
			return &p.File.Path, &p.File.Inode, &p.File.Digest
		}
	case *InodeGetattr:
		return dentryFile(&p.Path)
	case *DentryEvent:
		return dentryFile(&p.Dentry)
	case *InodeCreate:
		return &p.Dentry.Path, nil, nil
	case *InodeMknod:
		return &p.Dentry.Path, nil, nil
	case *InodeRemove:
		return dentryFile(&p.Dentry)
	case *InodeSymlink:
		return &p.Dentry.Path, nil, nil
	case *InodeSetattr:
		return dentryFile(&p.Dentry)
	case *InodeXattr:
		return dentryFile(&p.Dentry)
	case *InodeLink:
		return &p.NewDentry.Path, nil, nil
	case *InodeRename:
		return dentryFile(&p.OldDentry)
	case *SbMount:
		return &p.Path, nil, nil
	case *SbUmount:
		return dentryFile(&p.Mnt)
	}
	return nil, nil, nil
}

func dentryFile(d *Dentry) (*Path, *Inode, *Digest) {
	if d.HasInode {
		return &d.Path, &d.Inode, nil
	}
	return &d.Path, nil, nil
}

func ecsFile(w *writer, e *Event) {
	path, inode, digest := fileOf(e.Payload)
	if path == nil {
		return
	}
	w.open("file")
	w.str("path", path.Pathname)
	if digest != nil {
		w.open("hash")
		// ECS names the field by algorithm: the namespace's hash.
		alg, _ := digest.Hash()
		w.hex(alg.String(), digest.Bytes())
		w.close()
	}
	if inode != nil {
		w.dec("uid", inode.UID)
		w.dec("gid", inode.GID)
		w.key("mode")
		w.b = append(w.b, '"', '0')
		w.b = strconv.AppendUint(w.b, uint64(inode.Mode&0o7777), 8)
		w.b = append(w.b, '"')
		switch inode.Mode & 0o170000 {
		case 0o100000:
			w.str("type", "file")
		case 0o040000:
			w.str("type", "dir")
		case 0o120000:
			w.str("type", "symlink")
		}
	}
	if path.HasDev {
		w.key("device")
		w.b = append(w.b, '"')
		w.b = strconv.AppendUint(w.b, uint64(path.Dev.Major), 10)
		w.b = append(w.b, ':')
		w.b = strconv.AppendUint(w.b, uint64(path.Dev.Minor), 10)
		w.b = append(w.b, '"')
	}
	w.close()
}

// NetPort converts a TSEM port (the network-order field printed as a host
// integer) to the real port number.
func NetPort(tsemPort uint32) uint16 {
	p := uint16(tsemPort)
	return p>>8 | p<<8
}

// NetIPv4 converts a TSEM IPv4 address (the network-order field printed as
// a little-endian host integer) to the address.
func NetIPv4(tsemAddr uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(tsemAddr), byte(tsemAddr >> 8), byte(tsemAddr >> 16), byte(tsemAddr >> 24)})
}

func ecsNetwork(w *writer, e *Event) {
	var (
		sock *Sock
		addr *SockAddr
		side string
	)
	switch p := e.Payload.(type) {
	case *SocketAddr:
		sock, addr = &p.Sock, &p.Addr
		side = "destination"
		if e.Header.Type != "socket_connect" {
			side = "source"
		}
	case *SocketMsg:
		sock = &p.Sock
		if p.HasAddr {
			addr = &p.Addr
		}
		side = "destination"
		if e.Header.Type == "socket_recvmsg" {
			side = "source"
		}
	case *SocketCreate:
		sock = &Sock{Family: p.Family, Type: p.Type, Protocol: p.Protocol}
	case *SockPair:
		sock = &p.A
	case *SockEvent:
		sock = &p.Sock
	case *SockValue:
		sock = &p.Sock
	case *SocketSetsockopt:
		sock = &p.Sock
	default:
		return
	}
	if addr != nil {
		var ip netip.Addr
		switch addr.Kind {
		case AddrInet:
			ip = NetIPv4(addr.Address)
		case AddrInet6:
			ip = netip.AddrFrom16(addr.Addr6)
		}
		if ip.IsValid() {
			w.open(side)
			w.key("ip")
			w.b = append(w.b, '"')
			w.b = ip.AppendTo(w.b)
			w.b = append(w.b, '"')
			w.num("port", uint64(NetPort(addr.Port)))
			w.close()
		}
	}
	transport := ""
	switch sock.Protocol {
	case 6:
		transport = "tcp"
	case 17:
		transport = "udp"
	case 1:
		transport = "icmp"
	case 58:
		transport = "ipv6-icmp"
	case 0:
		if sock.Family == AFInet || sock.Family == AFInet6 {
			switch sock.Type {
			case 1:
				transport = "tcp"
			case 2:
				transport = "udp"
			}
		}
	}
	netType := ""
	switch sock.Family {
	case AFInet:
		netType = "ipv4"
	case AFInet6:
		netType = "ipv6"
	}
	if transport == "" && netType == "" {
		return
	}
	w.open("network")
	if transport != "" {
		w.str("transport", transport)
	}
	if netType != "" {
		w.str("type", netType)
	}
	w.close()
}
