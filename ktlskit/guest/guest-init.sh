#!/bin/sh
# Runs as the guest's command under virtme-ng: bring up the NIC that QEMU
# forwards SSH to, start sshd with this boot's keys, and stay up until the
# harness asks the guest to stop. $1 is the per-boot directory on the host,
# visible here through the 9p root.
#
# sshd starts first: its own start-up (loading its libraries under TCG) overlaps
# the rest of the setup on the other vCPU. Nothing can connect before the NIC is
# up, and the harness connects only after "sshd up" below, once everything is set.
set -u
BOOT=$1
MAC=$2
RUN=/run/ktlskit
mkdir -p "$RUN" /run/sshd
chmod 0755 /run/sshd
cp "$BOOT/ssh_host_ed25519_key" "$RUN/" && chmod 0600 "$RUN/ssh_host_ed25519_key"
# Before OpenSSH 9.8 sshd re-executes itself for every connection unless given -r: one more
# program start per SSH command under TCG. From 9.8 on each connection runs sshd-session
# and there is no -r.
NOREXEC=-r
for s in /usr/lib/openssh/sshd-session /usr/libexec/openssh/sshd-session \
	/usr/libexec/sshd-session /usr/lib/ssh/sshd-session; do
	[ -e "$s" ] && NOREXEC=
done
# sshd in the foreground of a background job, logging to our stderr (the
# harness's console log), so an SSH failure is explained there.
/usr/sbin/sshd -D -e $NOREXEC -f "$BOOT/sshd_config" &
SSHD=$!
# ktlskit's call server (ktlskit/guest/served.py): Python and ktlskit's imports once, here,
# instead of in every call the harness makes. It imports (about 7 s under TCG) while the rest
# is set up: started once sshd was up instead, the smoke test answered 2 s later (3 boots
# each way). Its reads over 9p once delayed sshd by 2 s, when the guest compiled stale
# bytecode; the host now writes that first (bytecode.py).
if [ -f "$BOOT/callserver.sh" ]; then
	setsid sh "$BOOT/callserver.sh" </dev/null >"$RUN/callserver.log" 2>&1 &
fi
# Shell builtins where a command would do: every exec costs time under TCG.
for d in /sys/class/net/*; do
	read -r addr <"$d/address"
	if [ "$addr" = "$MAC" ]; then
		IF=${d##*/}
	fi
done
if [ -z "${IF:-}" ]; then
	echo "ktlskit-init: no NIC with MAC $MAC" >/dev/kmsg
	kill $SSHD
	exit 1
fi
ip -batch - <<EOF
link set dev lo up
link set dev $IF up
addr add 10.0.2.15/24 dev $IF
route add default via 10.0.2.2 dev $IF
EOF
# sshd's PAM stack for this guest only (/etc is a tmpfs overlay here): the host's runs motd
# scripts, asks systemd-logind over D-Bus and more on every command. Key authentication
# stays sshd's own; PAM only has to let the session open (read per connection).
if grep -qs '^[^ ]* /etc overlay ' /proc/mounts; then
	printf '%s\n' "auth required pam_permit.so" "account required pam_permit.so" \
		"session required pam_permit.so" "password required pam_deny.so" >/etc/pam.d/sshd
fi
# The host's shell startup files (pyenv and friends) cost seconds per SSH
# command under TCG and print noise: hide them in this guest only.
for f in "$HOME/.bashrc" "$HOME/.profile" "$HOME/.bash_profile" "$HOME/.bash_login"; do
	[ -f "$f" ] && mount --bind /dev/null "$f"
done
mount -t debugfs none /sys/kernel/debug 2>/dev/null
mkdir -p /tmp && mount -t tmpfs -o mode=1777 tmpfs /tmp
# Test knob: a guest that never answers SSH (the harness's hang handling).
if grep -qw ktlskit.init_hang /proc/cmdline; then
	echo "ktlskit-init: hanging on purpose (ktlskit.init_hang)" >/dev/kmsg
	while :; do sleep 3600; done
fi
# Announce sshd once it listens on port 22 (0x0016), not after a fixed sleep.
n=0
until grep -qs ':0016 [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6; do
	if ! kill -0 $SSHD 2>/dev/null || [ $n -ge 400 ]; then
		echo "ktlskit-init: sshd failed to start" >/dev/kmsg
		exit 1
	fi
	n=$((n + 1))
	sleep 0.05
done
echo "ktlskit-init: sshd up on $IF" >/dev/kmsg
# Block until the harness writes to the stop FIFO (no polling under TCG).
mkfifo "$RUN/stop"
read -r _ <"$RUN/stop"
echo "ktlskit-init: stop requested" >/dev/kmsg
kill $SSHD
