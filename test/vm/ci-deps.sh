#!/usr/bin/env bash
# Installs what `make vmtest` needs on a fresh Debian machine and fetches the kernel:
#   - qemu-system-x86 (qemu-system-x86_64 and its firmware), without recommends;
#   - Debian's cloud kernel, resolved through linux-image-cloud-amd64, downloaded with
#     `apt-get download` and unpacked with `dpkg-deb -x` into the harness cache
#     (.cache/vm in the repository, git-ignored). Nothing of the kernel is installed.
# Safe to run twice: each step checks first and says what it does. Run it with bash
# from anywhere, or source it from a script running under `set -euo pipefail`.

vigil_vm_deps() {
	local repo
	repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

	if command -v qemu-system-x86_64 >/dev/null 2>&1; then
		echo "ci-deps: qemu-system-x86_64 present: $(qemu-system-x86_64 --version | head -n1)"
	else
		# A fresh image has empty package lists; fill them only when apt cannot see qemu.
		if ! apt-cache show qemu-system-x86 >/dev/null 2>&1; then
			echo "ci-deps: apt-get update (no package lists)"
			apt-get update
		fi
		echo "ci-deps: apt-get install -y --no-install-recommends qemu-system-x86"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86
	fi

	if ! apt-cache depends linux-image-cloud-amd64 >/dev/null 2>&1; then
		echo "ci-deps: apt-get update (linux-image-cloud-amd64 unknown)"
		apt-get update
	fi

	# The harness resolves, downloads and unpacks the kernel itself; -fetch stops there.
	# It skips the download when the unpacked kernel is already cached. Stale package
	# lists can name a kernel the mirror no longer has: update once and retry.
	echo "ci-deps: fetching the kernel: go run ./test/vm -fetch"
	if ! (cd "$repo" && "${GO:-go}" run ./test/vm -fetch); then
		echo "ci-deps: kernel fetch failed; apt-get update and retry"
		apt-get update
		(cd "$repo" && "${GO:-go}" run ./test/vm -fetch)
	fi
}

vigil_vm_deps
