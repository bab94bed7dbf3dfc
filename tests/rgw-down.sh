#!/bin/bash
# rgw-down.sh: stop the daemons tests/rgw-up.sh started in $CEPH_DIR, found by
# their pid files, and delete $CEPH_DIR.
#
#   tests/rgw-down.sh              stop radosgw, the OSD and the monitor
#   tests/rgw-down.sh --rgw-only   stop radosgw only (tests of a server that
#                                  dies); `tests/rgw-up.sh --rgw-only` restarts it
#
# Environment:
#   CEPH_DIR   cluster directory (/tmp/imgfs-rgw)
#   GRACEFUL=1 send SIGTERM and wait up to 5 s before SIGKILL (default: SIGKILL
#              at once; the cluster is disposable)
#   KEEP=1     keep $CEPH_DIR (its logs) after stopping
set -uo pipefail

CEPH_DIR=$(realpath -m "${CEPH_DIR:-/tmp/imgfs-rgw}")
GRACEFUL=${GRACEFUL:-0}
KEEP=${KEEP:-0}
DAEMONS="client.rgw.a osd.0 mon.a"
if [ "${1:-}" = --rgw-only ]; then
	DAEMONS=client.rgw.a
	KEEP=1
elif [ $# -ne 0 ]; then
	echo "usage: rgw-down.sh [--rgw-only]" >&2
	exit 2
fi

# Running means present and not a zombie waiting to be reaped.
running() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# The pid is ours only while it still names a Ceph daemon using our config.
is_ours() {
	grep -qE '^(radosgw|ceph-osd|ceph-mon)$' "/proc/$1/comm" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$CEPH_DIR/ceph.conf"
}

stop_pid() {
	local pid=$1 i
	if [ "$GRACEFUL" = 1 ]; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			running "$pid" || return 0
			sleep 0.1
		done
	fi
	kill -KILL "$pid" 2>/dev/null
	for ((i = 0; i < 500; i++)); do
		running "$pid" || return 0
		sleep 0.02
	done
	echo "rgw-down: pid $pid did not die" >&2
	return 1
}

# A radosgw killed with SIGKILL leaves its watches on the control objects, and
# every later metadata change (bucket create/delete, policy) waits ~30 s for
# it to answer. Blocklisting its address makes the OSD drop them at once.
drop_dead_watchers() {
	local conf=$CEPH_DIR/ceph.conf addr i
	for i in 0 1 2 3 4 5 6 7; do
		timeout 20 rados -c "$conf" -p default.rgw.control \
			listwatchers "notify.$i" 2>/dev/null
		echo # its output lacks the final newline
	done | sed -n 's/^watcher=\([^ ]*\) .*/\1/p' | sort -u | while read -r addr; do
		timeout 20 ceph -c "$conf" --connect-timeout 10 osd blocklist add "$addr" >/dev/null 2>&1
	done
}

status=0
for name in $DAEMONS; do
	pidfile=$CEPH_DIR/run/$name.pid
	[ -s "$pidfile" ] || continue
	pid=$(cat "$pidfile")
	if [[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid"; then
		stop_pid "$pid" || status=1
	fi
	rm -f "$pidfile"
done
if [ "$DAEMONS" = client.rgw.a ] && [ -f "$CEPH_DIR/ceph.conf" ]; then
	drop_dead_watchers
fi
if [ "$KEEP" != 1 ] && [ -d "$CEPH_DIR" ]; then
	rm -rf "$CEPH_DIR" || status=1
fi
exit "$status"
