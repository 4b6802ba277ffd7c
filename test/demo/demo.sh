#!/usr/bin/env bash
# Vigil's main job, end to end, as an operator would do it (make demo, as root):
# start the host agent, start a workload in a new container cgroup the way
# a container runtime does, watch it get its own modeling namespace, let it
# learn, seal it, make it step outside its model and find that in the
# forensics, scrape the metrics, stop the agent and verify its measured log.
#
# VIGIL names the vigil binary (default bin/vigil). REGISTER (default
# software) and METRICS_ADDR (default the agent's 127.0.0.1:9476) are passed
# to the agent; everything else is the agent's built-in default except the
# socket and the log, which live in a fresh directory so that the demo
# leaves nothing behind.
set -euo pipefail

VIGIL=${VIGIL:-bin/vigil}
REGISTER=${REGISTER:-software}
METRICS_ADDR=${METRICS_ADDR:-127.0.0.1:9476}

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

cleanup() {
	exec 7>&- 2>/dev/null || true
	[[ -n $WORKLOAD_PID ]] && kill "$WORKLOAD_PID" 2>/dev/null || true
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

step "1. Start the agent (defaults; socket and log in $WORK)"
printf '$ %s\n' "vigil agent --socket $SOCK --log $LOG --register $REGISTER --metrics-addr $METRICS_ADDR &"
"$VIGIL" agent --socket "$SOCK" --log "$LOG" --register "$REGISTER" --metrics-addr "$METRICS_ADDR" 2>"$WORK/agent.err" &
AGENT_PID=$!
wait_for "the agent's control socket" ns list
grep 'agent running' "$WORK/agent.err" | sed 's/^/  agent: /'

step "2. Create a container cgroup as Docker does, start a workload in it"
show mkdir -p "$CG"
mkfifo "$WORK/gate" "$WORK/commands"
exec 7<>"$WORK/commands" # the workload's command channel, kept open
# Like runc: the workload's first process is in the cgroup before it execs
# the workload, and waits until released.
(
	exec 7>&- # only the demo writes commands: the workload ends at EOF
	echo "$BASHPID" >"$CG/cgroup.procs"
	read -r _ <"$WORK/gate"
	exec sh -c 'while read -r cmd; do sh -c "$cmd" >/dev/null; done' <"$WORK/commands"
) &
WORKLOAD_PID=$!
echo "workload pid $WORKLOAD_PID waits in $CG"
wait_for "the workload's namespace to enrol it" sh -c "[ \"\$('$VIGIL' ns --socket '$SOCK' show '$NS' | awk '\$1 == \"tasks:\" {print \$2}')\" -ge 1 ]"
echo go >"$WORK/gate"
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
rmdir "$CG" "$SLICE"

step "Done: a namespace per container, learned, sealed, forensics found, metrics scraped, log verified."
