#!/usr/bin/env bash
# Installs the tools the test suite uses beyond Go and gcc, on Debian, when they
# are missing: make, git, python3 and tar (the real workloads whose temporary
# files test/e2e models across runs), promtool (checks the /metrics exposition;
# taken out of Debian's prometheus package without installing or starting a
# Prometheus server), then qemu and Debian's cloud kernel for the VM tests
# (test/vm/ci-deps.sh), and the container runtimes the container tests drive
# (test/ctrtest): podman, runc, docker.io and busybox-static (the test images'
# shell). Installing them starts no service: the tests start dockerd themselves.
# Safe to run twice. Without root it only says what is missing: the tests that
# need a missing tool skip with the reason (and fail under CI=true).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ $(id -u) != 0 ]]; then
	for t in make git python3 tar promtool qemu-system-x86_64 podman runc dockerd busybox; do
		command -v "$t" >/dev/null || echo "deps: $t missing (run as root to install it)"
	done
	exit 0
fi

missing=()
for t in make git python3 tar; do
	command -v "$t" >/dev/null || missing+=("$t")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
	echo "deps: make, git, python3, tar present"
fi

if command -v promtool >/dev/null; then
	echo "deps: promtool present: $(promtool --version 2>&1 | head -n1)"
else
	echo "deps: installing promtool from Debian's prometheus package"
	apt-cache show prometheus >/dev/null 2>&1 || apt-get update -qq
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download -qq prometheus && dpkg-deb -x prometheus_*.deb root)
	install -m 0755 "$tmp/root/usr/bin/promtool" /usr/local/bin/promtool
fi

# Container runtimes from Debian (no registry is used: the tests import
# images they build from this machine's files).
missing=()
for pair in podman:podman runc:runc dockerd:docker.io; do
	command -v "${pair%%:*}" >/dev/null || [[ -x /usr/sbin/${pair%%:*} ]] || missing+=("${pair#*:}")
done
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]} from Debian"
	apt-cache show podman >/dev/null 2>&1 || apt-get update -qq
	# A package's maintainer script must not start dockerd or containerd.
	policy=/usr/sbin/policy-rc.d
	own_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	if [[ -n $own_policy ]]; then rm -f "$policy"; fi
else
	echo "deps: container runtimes present: $(podman --version), runc, dockerd, busybox-static"
fi

bash "$here/vm/ci-deps.sh"
