#!/usr/bin/env bash
# Vigil's main job, end to end, as an operator would do it (make demo, as root):
# start the host agent, start a container, watch it get its own modeling
# namespace, let it learn, seal it, make it step outside its model and find
# that in the forensics, scrape the metrics, stop the agent and verify its
# measured log.
#
# The container is a real one where a runtime is present (podman, else
# docker with its daemon running; make deps installs them), from an image
# the demo builds out of this machine's static busybox and imports (no
# registry). Where none is, the demo says so and simulates a container: a
# workload in a new container cgroup, as a runtime would make it.
#
# VIGIL names the vigil binary (default bin/vigil). RUNTIME (podman,
# docker or none; default: the first present) picks the container runtime.
# REGISTER (default software) and METRICS_ADDR (default the agent's
# 127.0.0.1:9476) are passed to the agent; everything else is the agent's
# built-in default except the socket, the log and the model directory,
# which live in a fresh directory so that the demo leaves nothing behind.
set -euo pipefail

VIGIL=${VIGIL:-bin/vigil}
REGISTER=${REGISTER:-software}
METRICS_ADDR=${METRICS_ADDR:-127.0.0.1:9476}
RUNTIME=${RUNTIME:-}

bold=$'\033[1m' off=$'\033[0m'
[[ -t 1 ]] || bold='' off=''
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
show() {
	local a out='$'
	for a in "$@"; do
		[[ $a == "$VIGIL" ]] && a=vigil
		[[ $a == *[[:space:]]* ]] && a="\"$a\""
		out+=" $a"
	done
	printf '%s\n' "$out"
	"$@"
}
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (loading eBPF programs): run make demo as root (sudo make demo where you are not)"
[[ -x $VIGIL ]] || die "no vigil binary at $VIGIL (make build)"
VIGIL=$(realpath "$VIGIL")

WORK=$(mktemp -d /tmp/vigil-demo.XXXXXX)
SOCK=$WORK/vigil.sock
LOG=$WORK/measurements.log
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
	CGROOT=/sys/fs/cgroup
else
	CGROOT=/sys/fs/cgroup/unified # hybrid host: cgroup v2 beside v1
fi
ID=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
SLICE=$CGROOT/vigil-demo.slice
CG=$SLICE/docker-$ID.scope
NS=docker-$ID
AGENT_PID='' WORKLOAD_PID=''
IMAGE=localhost/vigil-demo-busybox:latest

# The container runtime: podman (runc, the cgroupfs manager: no systemd
# needed), else docker when its daemon answers; none: simulate.
CTR=()
static_busybox() {
	local out
	[[ -x /bin/busybox ]] || return 1
	out=$(ldd /bin/busybox 2>&1 || true)
	[[ $out == *"not a dynamic executable"* ]]
}
pick_runtime() {
	local runc
	runc=$(command -v runc || true)
	case ${RUNTIME:-auto} in
	auto | podman)
		if command -v podman >/dev/null && [[ -n $runc ]] && static_busybox; then
			RUNTIME=podman
			CTR=(podman --runtime "$runc" --cgroup-manager cgroupfs)
			RUN_ARGS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
			return
		fi
		[[ $RUNTIME == podman ]] && die "RUNTIME=podman: podman, runc or a static /bin/busybox missing (sudo make deps)"
		;;&
	auto | docker)
		if [[ -x /usr/bin/docker ]] && /usr/bin/docker info >/dev/null 2>&1 && static_busybox; then
			RUNTIME=docker
			CTR=(/usr/bin/docker)
			RUN_ARGS=()
			return
		fi
		[[ $RUNTIME == docker ]] && die "RUNTIME=docker: docker with a running daemon, or a static /bin/busybox, missing"
		;;
	none) ;;
	*) die "RUNTIME=$RUNTIME: want podman, docker or none" ;;
	esac
	RUNTIME=none
}
pick_runtime

cleanup() {
	exec 7>&- 2>/dev/null || true
	[[ -n $WORKLOAD_PID ]] && kill "$WORKLOAD_PID" 2>/dev/null || true
	if [[ $RUNTIME != none && -s $WORK/cid ]]; then
		"${CTR[@]}" rm -f "$(cat "$WORK/cid")" >/dev/null 2>&1 || true
	fi
	if [[ $RUNTIME != none ]]; then
		"${CTR[@]}" rmi "$IMAGE" >/dev/null 2>&1 || true
	fi
	[[ -n $AGENT_PID ]] && kill "$AGENT_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	rmdir "$CG" "$SLICE" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ns() { "$VIGIL" ns --socket "$SOCK" "$@"; }
# field NAME prints one field of 'vigil ns show'.
field() { ns show "$NS" | awk -v k="$1:" '$1 == k || $1" "$2 == k { print $NF }'; }
# wait_for DESCRIPTION COMMAND... retries COMMAND for up to 10 seconds.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "timed out waiting for $what"
}
metrics() {
	local host=${METRICS_ADDR%:*} port=${METRICS_ADDR##*:}
	exec 9<>"/dev/tcp/$host/$port"
	printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$METRICS_ADDR" >&9
	sed '1,/^\r$/d' <&9
	exec 9<&-
}

step "1. Start the agent (defaults; socket, log and models in $WORK)"
printf '$ %s\n' "vigil agent --socket $SOCK --log $LOG --register $REGISTER --metrics-addr $METRICS_ADDR --model-dir $WORK/models --model-key image &"
"$VIGIL" agent --socket "$SOCK" --log "$LOG" --register "$REGISTER" --metrics-addr "$METRICS_ADDR" \
	--model-dir "$WORK/models" --model-key image 2>"$WORK/agent.err" &
AGENT_PID=$!
wait_for "the agent's control socket" ns list
grep 'agent running' "$WORK/agent.err" | sed 's/^/  agent: /'

mkfifo "$WORK/commands"
exec 7<>"$WORK/commands" # the workload's command channel, kept open
LOOP='while read -r cmd; do sh -c "$cmd" >/dev/null; done'
if [[ $RUNTIME != none ]]; then
	step "2. Start a container with $RUNTIME (an image of this machine's busybox-static, imported: no registry)"
	root=$WORK/rootfs
	mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
	cp /bin/busybox "$root/bin/busybox"
	for a in sh cat ls echo; do ln -s busybox "$root/bin/$a"; done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	tar -C "$root" -cf "$WORK/rootfs.tar" .
	printf '$ %s\n' "${CTR[0]##*/} import rootfs.tar $IMAGE    # rootfs.tar: /bin/busybox, its applets, /etc/passwd"
	"${CTR[@]}" import "$WORK/rootfs.tar" "$IMAGE" >"$WORK/import.out" 2>&1 || { cat "$WORK/import.out" >&2; die "image import failed"; }
	printf '$ %s\n' "${CTR[0]##*/} run -i --rm --network none $IMAGE sh -c '$LOOP' <commands &"
	(exec 7>&- && exec "${CTR[@]}" run -i --rm --network none --cidfile "$WORK/cid" "${RUN_ARGS[@]}" "$IMAGE" sh -c "$LOOP" <"$WORK/commands") &
	WORKLOAD_PID=$!
	wait_for "the container id" test -s "$WORK/cid"
	NS=$RUNTIME-$(cat "$WORK/cid")
	ID=$(cat "$WORK/cid")
	wait_for "the container's namespace to enrol it" sh -c "[ \"\$('$VIGIL' ns --socket '$SOCK' show '$NS' | awk '\$1 == \"tasks:\" {print \$2}')\" -ge 1 ]"
else
	step "2. No container runtime here (podman, or docker with its daemon; sudo make deps installs them): simulate a container as Docker's cgroups look"
	show mkdir -p "$CG"
	mkfifo "$WORK/gate"
	# Like runc: the workload's first process is in the cgroup before it
	# execs the workload, in a mount namespace of its own, and waits until
	# released.
	unshare -m --propagation private bash -c '
		exec 7>&- # only the demo writes commands: the workload ends at EOF
		echo $$ >"$1/cgroup.procs"
		read -r _ <"$2/gate"
		exec sh -c "$3" <"$2/commands"' demo-workload "$CG" "$WORK" "$LOOP" &
	WORKLOAD_PID=$!
	echo "workload pid $WORKLOAD_PID waits in $CG"
	wait_for "the workload's namespace to enrol it" sh -c "[ \"\$('$VIGIL' ns --socket '$SOCK' show '$NS' | awk '\$1 == \"tasks:\" {print \$2}')\" -ge 1 ]"
	echo go >"$WORK/gate"
fi
show "$VIGIL" ns --socket "$SOCK" list

step "3. Learn: the workload reads /etc/hostname"
echo 'cat /etc/hostname' >&7
wait_for "the learned open of /etc/hostname" sh -c "'$VIGIL' ns --socket '$SOCK' trajectory '$NS' | grep -q '\"pathname\": \"/etc/hostname\"'"
sleep 1
show "$VIGIL" ns --socket "$SOCK" show "$NS"
echo "trajectory (type, process, pathname of each point):"
ns trajectory "$NS" | sed -E 's/.*"process": "([^"]*)", "type": "([^"]*)".*"pathname": "([^"]*)".*/  \2 \1 \3/; s/.*"process": "([^"]*)", "type": "([^"]*)".*/  \2 \1/'

step "4. Seal the model"
show "$VIGIL" ns --socket "$SOCK" seal "${NS:0:19}"

step "5. Step outside the model: the workload reads /etc/passwd"
echo 'cat /etc/passwd' >&7
wait_for "the forensics event" sh -c "'$VIGIL' ns --socket '$SOCK' forensics '$NS' | grep -q '/etc/passwd'"
sleep 1
echo "\$ vigil ns forensics ${NS:0:19}"
ns forensics "$NS" | sed -E 's/.*"process": "([^"]*)", "type": "([^"]*)".*"pathname": "([^"]*)".*/  \2 \1 \3/'
show "$VIGIL" ns --socket "$SOCK" list

step "6. Scrape the metrics"
metrics >"$WORK/metrics.txt"
grep -E "^vigil_(events_total|forensics_events_total|model_points|namespaces|register_extends_total|capture_backend_info)" "$WORK/metrics.txt" | sed "s/$ID/${ID:0:12}…/"
events=$(awk -v ns="namespace=\"$NS\"" 'index($0, "vigil_events_total{") == 1 && index($0, ns) { s += $NF } END { print s + 0 }' "$WORK/metrics.txt")
want=$(field events)
echo "vigil_events_total for the namespace: $events; events by 'vigil ns show': $want"
[[ $events == "$want" ]] || die "metrics and namespace disagree"
measurement=$(field measurement)

step "7. Stop the workload and the agent (SIGTERM), verify the measured log"
exec 7>&-
wait "$WORKLOAD_PID" || true
WORKLOAD_PID=''
kill -TERM "$AGENT_PID"
status=0
wait "$AGENT_PID" || status=$?
AGENT_PID=''
echo "agent exited with status $status"
[[ $status == 0 ]] || { cat "$WORK/agent.err" >&2; die "agent failed"; }
reg=$(grep '^register ' "$WORK/agent.err")
echo "$reg"
show "$VIGIL" verify --log "$LOG" --register "$reg" | tee "$WORK/verify.out"
grep -q "measurement: $measurement" "$WORK/verify.out" || die "the log's measurement of $NS is not the agent's ($measurement)"
echo "the log's measurement of the namespace is the agent's: $measurement"
[[ $RUNTIME != none ]] || rmdir "$CG" "$SLICE"

step "Done: a namespace per container, learned, sealed, forensics found, metrics scraped, log verified."
