#!/bin/bash
# rgw-up.sh: start a throw-away S3 server for imgfs' tests — a one-node Ceph
# cluster (one monitor, one OSD, no manager, no cephx) and a RADOS Gateway —
# bound to 127.0.0.1 only, with every file under $CEPH_DIR.
#
# Needs the Debian packages radosgw, ceph-mon and ceph-osd (`make deps`).
# On success the endpoint URL is the last line on stdout; progress goes to
# stderr. On failure every daemon it started is killed again, the logs are
# kept in $CEPH_DIR/log, and it exits non-zero.
#
#   tests/rgw-up.sh               start a new cluster in $CEPH_DIR (must not exist)
#   tests/rgw-up.sh --rgw-only    start radosgw again in an existing $CEPH_DIR
#                                 (after `tests/rgw-down.sh --rgw-only`)
#
# Environment:
#   CEPH_DIR        cluster directory                    (/tmp/imgfs-rgw)
#   RGW_PORT        S3 HTTP port                         (7480)
#   MON_PORT        monitor port                         (3300)
#   OSD_PORT_MIN    first port the OSD may bind          (6800)
#   OSD_PORT_MAX    last port the OSD may bind           (OSD_PORT_MIN + 19)
#   OBJECTSTORE     memstore (data in RAM) or bluestore (a sparse file)
#                                                        (memstore)
#   MEMSTORE_BYTES  memstore capacity; writes stall silently beyond it
#                                                        (6 GiB)
#   BLUESTORE_BYTES size of bluestore's sparse block file (20 GiB)
#   RGW_DEBUG       radosgw's "debug rgw" level; 1 logs one access line per
#                   request (`"GET /bucket/key HTTP/1.1" 200`)        (1)
#   RGW_UP_TIMEOUT  seconds to wait for each daemon      (90)
#   AK, SK          access and secret key of the S3 user "test"
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CEPH_DIR=$(realpath -m "${CEPH_DIR:-/tmp/imgfs-rgw}")
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-3300}
OSD_PORT_MIN=${OSD_PORT_MIN:-6800}
OSD_PORT_MAX=${OSD_PORT_MAX:-$((OSD_PORT_MIN + 19))}
OBJECTSTORE=${OBJECTSTORE:-memstore}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-$((6 * 1024 * 1024 * 1024))}
BLUESTORE_BYTES=${BLUESTORE_BYTES:-$((20 * 1024 * 1024 * 1024))}
RGW_DEBUG=${RGW_DEBUG:-1}
RGW_UP_TIMEOUT=${RGW_UP_TIMEOUT:-90}
AK=${AK:-IMGFSTESTACCESSKEY00}
SK=${SK:-imgfstestsecretkey000000000000000000000000}

CONF=$CEPH_DIR/ceph.conf
T0=$(date +%s%N)

say() { echo "rgw-up: [$(( ($(date +%s%N) - T0) / 1000000 )) ms] $*" >&2; }
die() { echo "rgw-up: $*" >&2; exit 1; }

# A TCP port is taken when something accepts a connection on it.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until SECONDS WHAT CMD...: run CMD every 0.2 s until it succeeds.
wait_until() {
	local deadline=$(( $(date +%s) + $1 )) what=$2
	shift 2
	until "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${RGW_UP_TIMEOUT}s waiting for $what"
		sleep 0.2
	done
}

rgw_answers() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$RGW_PORT/"; }

check_ports() {
	local p
	for p in "$RGW_PORT" "$MON_PORT"; do
		! port_taken "$p" || die "port $p on 127.0.0.1 is already in use"
	done
	for ((p = OSD_PORT_MIN; p <= OSD_PORT_MAX; p++)); do
		! port_taken "$p" || die "OSD port $p on 127.0.0.1 is already in use"
	done
}

write_conf() {
	local fsid=$1
	cat >"$CONF" <<EOF
# Written by tests/rgw-up.sh: a one-node cluster on loopback, no authentication.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = $OSD_PORT_MIN
ms bind port max = $OSD_PORT_MAX
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
# radosgw counts as a daemon, whose default mon mode "secure" fails with
# auth none (EACCES on every monitor connection).
ms mon client mode = crc
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
pid file = $CEPH_DIR/run/\$name.pid
log file = $CEPH_DIR/log/\$name.log
mon cluster log file = $CEPH_DIR/log/cluster.log
log to stderr = false
err to stderr = true
crash dir = $CEPH_DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
# Without these each pool creation waits about a second for paxos.
paxos propose interval = 0.01
paxos min wait = 0.001
osd objectstore = $OBJECTSTORE

[mon]
mon data = $CEPH_DIR/mon.\$id

[osd]
osd data = $CEPH_DIR/osd.\$id
memstore device bytes = $MEMSTORE_BYTES
bluestore block create = true
bluestore block size = $BLUESTORE_BYTES
bluestore fsck on mount = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $CEPH_DIR/rgw.a
rgw thread pool size = 32
# Virtual-hosted requests (BUCKET.localhost:PORT) resolve to loopback by themselves.
rgw dns name = localhost
# Level 1 logs one access line per request, which tests count.
debug rgw = $RGW_DEBUG
# Free the space of deleted objects within seconds, not hours: a memstore
# that fills up stalls writes.
rgw gc obj min wait = 5
rgw gc processor period = 5
rgw gc processor max time = 5
EOF
}

start_mon() {
	local fsid=$1
	monmaptool --create --clobber --fsid "$fsid" \
		--addv a "[v2:127.0.0.1:$MON_PORT]" "$CEPH_DIR/monmap" >/dev/null
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap"
	ceph-mon -c "$CONF" -i a
	say "monitor started on port $MON_PORT"
}

osd_is_up() { ceph -c "$CONF" --connect-timeout 5 osd dump 2>/dev/null | grep -q '^osd\.0 up'; }

start_osd() {
	local uuid id
	uuid=$(cat /proc/sys/kernel/random/uuid)
	id=$(timeout "$RGW_UP_TIMEOUT" ceph -c "$CONF" --connect-timeout 10 osd new "$uuid")
	[ "$id" = 0 ] || die "expected OSD id 0, got '$id'"
	ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" 2>"$CEPH_DIR/log/osd-mkfs.err"
	ceph-osd -c "$CONF" -i 0 2>>"$CEPH_DIR/log/osd.stderr"
	say "OSD started ($OBJECTSTORE)"
	wait_until "$RGW_UP_TIMEOUT" "the OSD to be up" osd_is_up
	say "OSD up"
}

start_rgw() {
	radosgw -c "$CONF" -n client.rgw.a 2>>"$CEPH_DIR/log/rgw.stderr"
	wait_until "$RGW_UP_TIMEOUT" "radosgw to answer on port $RGW_PORT" rgw_answers
	say "radosgw answering on port $RGW_PORT"
}

create_user() {
	timeout "$RGW_UP_TIMEOUT" radosgw-admin -c "$CONF" user create --uid=test \
		--display-name="imgfs tests" --access-key="$AK" --secret-key="$SK" >/dev/null
	say "S3 user created"
}

on_error() {
	local status=$?
	trap - ERR EXIT
	[ "$status" -ne 0 ] || return 0
	echo "rgw-up: failed; logs kept in $CEPH_DIR/log" >&2
	KEEP=1 CEPH_DIR=$CEPH_DIR "$HERE/rgw-down.sh" ${RGW_ONLY:+--rgw-only} || true
	exit "$status"
}

RGW_ONLY=
if [ "${1:-}" = --rgw-only ]; then
	RGW_ONLY=1
	[ -f "$CONF" ] || die "$CONF not found: no cluster in $CEPH_DIR"
	! port_taken "$RGW_PORT" || die "port $RGW_PORT on 127.0.0.1 is already in use"
	trap on_error EXIT
	start_rgw
	trap - EXIT
	echo "http://127.0.0.1:$RGW_PORT"
	exit 0
fi
[ $# -eq 0 ] || die "usage: rgw-up.sh [--rgw-only]"
case $OBJECTSTORE in memstore | bluestore) ;; *) die "OBJECTSTORE must be memstore or bluestore" ;; esac
[ ! -e "$CEPH_DIR" ] || die "$CEPH_DIR exists; take it down with tests/rgw-down.sh first"
for tool in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool curl; do
	command -v "$tool" >/dev/null || die "$tool not found: run make deps (radosgw ceph-mon ceph-osd)"
done
check_ports

mkdir -p "$CEPH_DIR"/{mon.a,osd.0,rgw.a,run,log,crash}
trap on_error EXIT
FSID=$(cat /proc/sys/kernel/random/uuid)
write_conf "$FSID"
start_mon "$FSID"
start_osd
start_rgw
create_user
trap - EXIT
echo "http://127.0.0.1:$RGW_PORT"
