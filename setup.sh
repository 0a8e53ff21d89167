#!/usr/bin/env bash
# Install what ktlskit needs on a Debian machine (run as root): QEMU, the
# kernel build tools, udev and sshd for the guests, and a Python venv in
# .venv with ktlskit installed in editable mode. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

DEBS=(qemu-system-x86 flex bison bc libelf-dev libssl-dev ccache cpio udev
      openssh-server ethtool iproute2 rsync patch perl make gcc xz-utils python3-venv)

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
