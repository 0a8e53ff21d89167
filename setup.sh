#!/usr/bin/env bash
# Install what ktlskit needs on a Debian machine (run as root): QEMU, the
# kernel build tools, udev and sshd for the guests, and a Python venv in
# .venv with ktlskit installed in editable mode. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

DEBS=(qemu-system-x86 flex bison bc libelf-dev libssl-dev ccache cpio udev
      openssh-server ethtool iproute2 rsync patch perl make gcc xz-utils python3-venv
      git codespell
      iputils-ping socat)  # the kernel's drivers/net tests use them (ktlskit kselftest --env)

# `ktlskit patches check` builds each patch with clang too (as netdev's CI does). The
# kernel needs LLVM >= 17.0.1 (scripts/min-tool-version.sh); Debian ships versioned
# packages: take the first of these versions apt knows (19: bookworm and trixie have
# it), else the unversioned packages.
pick_llvm() {
	for v in 19 20 21 22 18 17; do
		if apt-cache show "clang-$v" >/dev/null 2>&1; then echo "$v"; return; fi
	done
}
LLVM_VERSION=$(pick_llvm)
if [ -z "$LLVM_VERSION" ]; then
	apt-get update -q   # a fresh machine may have no package lists yet
	LLVM_VERSION=$(pick_llvm)
fi
if [ -n "$LLVM_VERSION" ]; then
	DEBS+=("clang-$LLVM_VERSION" "lld-$LLVM_VERSION" "llvm-$LLVM_VERSION")
else
	DEBS+=(clang lld llvm)
fi

missing=()
for p in "${DEBS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
	echo "setup: creating .venv" >&2
	"$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
echo "setup: done; ktlskit is .venv/bin/ktlskit" >&2
