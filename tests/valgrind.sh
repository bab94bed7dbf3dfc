#!/bin/bash
# valgrind.sh: run the daemon under valgrind's memcheck through a small real
# scenario — mount, cp a few images and a multipart-sized file, ls -lR,
# read files, thumbnails, links, the gallery and .metrics, rename, remove,
# unmount — and fail on any invalid access, use of uninitialised memory or
# definite leak. "Possibly lost" blocks (glib's and libvips' type system and
# thread pools) are not errors; tests/valgrind.supp names the third-party
# reports that are.
#
# Usage: tests/valgrind.sh
# Env:   IMGFS_BIN            daemon to check (default build/imgfs; build it
#                             with the default -O2 -g, not with ASan)
#        IMGFS_TEST_ENDPOINT  a running RGW (keys IMGFS_TEST_ACCESS_KEY /
#                             IMGFS_TEST_SECRET_KEY); otherwise one is
#                             started with tests/rgw-up.sh on free ports and
#                             taken down afterwards
#        VALGRIND_TIMEOUT     seconds for the whole scenario (default 900)
# Exit status: 0 clean, 1 valgrind found errors or the scenario failed.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN=${IMGFS_BIN:-$REPO/build/imgfs}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/imgfs-valgrind.XXXXXX)
LOG=$WORK/valgrind.log
MNT=$WORK/mnt
AK=${IMGFS_TEST_ACCESS_KEY:-IMGFSTESTACCESSKEY00}
SK=${IMGFS_TEST_SECRET_KEY:-imgfstestsecretkey000000000000000000000000}
BUCKET=imgfs-valgrind-$$
TIMEOUT=${VALGRIND_TIMEOUT:-900}
OWN_RGW=
VG_PID=

say() { echo "valgrind.sh: $*" >&2; }

cleanup() {
	set +e
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
	fi
	[ -n "$VG_PID" ] && kill -9 "$VG_PID" 2>/dev/null
	[ -n "$ENDPOINT" ] && s3 delete-bucket >/dev/null 2>&1
	if [ -n "$OWN_RGW" ]; then
		CEPH_DIR=$WORK/ceph "$REPO/tests/rgw-down.sh" >/dev/null 2>&1
	fi
	[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# A few boto3 operations on the bucket: create-bucket, delete-bucket,
# keys, sha256 KEY.
s3() {
	AWS_CA_BUNDLE= "$PY" - "$ENDPOINT" "$AK" "$SK" "$BUCKET" "$@" <<'EOF'
import hashlib, sys, boto3, botocore.config
ep, ak, sk, bucket, op, *args = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
                  region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
if op == "create-bucket":
    s3.create_bucket(Bucket=bucket)
elif op == "delete-bucket":
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for u in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
    s3.delete_bucket(Bucket=bucket)
elif op == "keys":
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            print(o["Key"])
elif op == "sha256":
    print(hashlib.sha256(s3.get_object(Bucket=bucket, Key=args[0])["Body"].read()).hexdigest())
EOF
}

free_base() {
	"$PY" - <<'EOF'
import os, socket
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
    return True
start = 20000 + (os.getpid() * 48) % 10000
for base in range(start, 32000, 24):
    if all(free(p) for p in range(base, base + 24)):
        print(base)
        break
EOF
}

start_rgw() {
	local base
	if [ -n "${IMGFS_TEST_ENDPOINT:-}" ]; then
		ENDPOINT=$IMGFS_TEST_ENDPOINT
		return
	fi
	base=$(free_base)
	OWN_RGW=1
	ENDPOINT=$(CEPH_DIR=$WORK/ceph RGW_PORT=$base MON_PORT=$((base + 1)) \
		OSD_PORT_MIN=$((base + 4)) OSD_PORT_MAX=$((base + 23)) AK=$AK SK=$SK \
		"$REPO/tests/rgw-up.sh" 2>"$WORK/rgw-up.err" | tail -n 1) ||
		{ cat "$WORK/rgw-up.err" >&2; say "cannot start RGW"; exit 1; }
}

# Small images: under valgrind each decode is slow.
pick_images() {
	find /usr/share/backgrounds /usr/share/wallpapers -type f \
		\( -name '*.jpg' -o -name '*.png' -o -name '*.webp' \) -size -400k 2>/dev/null |
		sort | head -n 4
}

wait_mounted() {
	local i
	for ((i = 0; i < 600; i++)); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$VG_PID" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

scenario() {
	local img n=0 big=$WORK/big.bin
	mkdir -p "$MNT/uploads/sub"
	for img in $(pick_images); do
		n=$((n + 1))
		cp "$img" "$MNT/uploads/sub/img$n.${img##*.}"
	done
	[ "$n" -gt 0 ] || { say "no images found (make deps)"; return 1; }
	head -c $((12 * 1024 * 1024)) /dev/urandom >"$big"
	cp "$big" "$MNT/uploads/big.bin"
	[ "$(s3 sha256 uploads/big.bin)" = "$(sha256sum <"$big" | cut -d' ' -f1)" ]
	cmp "$big" "$MNT/uploads/big.bin"
	ls -lR "$MNT" >/dev/null
	for f in "$MNT"/thumbnails/sub/*; do
		cat "$f" >"$WORK/thumb"
		[ -s "$WORK/thumb" ] || { say "empty thumbnail $f"; return 1; }
	done
	cat "$MNT"/.links/uploads/sub/* "$MNT"/.links/thumbnails/sub/* >/dev/null
	cat "$MNT/.links/index.html" "$MNT/.metrics" >/dev/null
	echo "not an image" >"$MNT/uploads/sub/bad.jpg"
	if cat "$MNT/thumbnails/sub/bad.jpg" 2>/dev/null; then
		say "a thumbnail of a non-image"
		return 1
	fi
	mv "$MNT/uploads/big.bin" "$MNT/uploads/sub/moved.bin"
	printf 'patched' | dd of="$MNT/uploads/sub/moved.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
	rm -r "$MNT/uploads/sub"
	mkdir "$MNT/uploads/empty" && rmdir "$MNT/uploads/empty"
	[ -z "$(s3 keys | grep '^uploads/')" ]
}

[ -x "$BIN" ] || { say "$BIN not built (make)"; exit 1; }
command -v valgrind >/dev/null || { say "valgrind not installed (make deps)"; exit 1; }
if nm -an "$BIN" 2>/dev/null | grep -q __asan_init; then
	say "$BIN is built with ASan; valgrind needs a plain build"
	exit 1
fi
mkdir -p "$MNT" "$WORK/cache"
start_rgw
s3 create-bucket
say "RGW at $ENDPOINT, bucket $BUCKET, log $LOG"

# No vectorised orc code paths (valgrind cannot follow the JIT).
env -u AWS_CA_BUNDLE AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK \
	AWS_EC2_METADATA_DISABLED=true VIPS_NOVECTOR=1 G_SLICE=always-malloc \
	valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --error-exitcode=99 --track-origins=yes \
	--num-callers=40 --child-silent-after-fork=yes --fair-sched=yes \
	--suppressions="$REPO/tests/valgrind.supp" --gen-suppressions=all \
	--log-file="$LOG" \
	"$BIN" -f -o "endpoint=$ENDPOINT,region=us-east-1,cache_dir=$WORK/cache,part_size=5M,thumb_concurrency=1,request_timeout=120" \
	"$BUCKET" "$MNT" 2>"$WORK/imgfs.stderr" &
VG_PID=$!

if ! wait_mounted; then
	say "imgfs did not mount under valgrind"
	cat "$WORK/imgfs.stderr" "$LOG" >&2
	exit 1
fi
say "mounted; running the scenario"
failed=
export MNT WORK PY ENDPOINT AK SK BUCKET
export -f scenario pick_images s3 say
if ! timeout "$TIMEOUT" bash -c 'set -euo pipefail; scenario'; then
	say "the scenario failed"
	failed=1
fi
fusermount3 -u "$MNT" || { say "unmount failed"; failed=1; }
status=0
wait "$VG_PID" || status=$?
VG_PID=
if [ "$status" -eq 99 ] || grep -q "ERROR SUMMARY: [1-9]" "$LOG"; then
	say "valgrind found errors (exit $status):"
	sed -n '/^==[0-9]*== \(Invalid\|Conditional\|Use of\|Syscall\|Mismatched\|[0-9,]* bytes in [0-9,]* blocks are definitely\)/,/^==[0-9]*== $/p' "$LOG" >&2
	grep "ERROR SUMMARY" "$LOG" >&2
	KEEP=1
	say "full log kept in $LOG"
	exit 1
fi
if [ "$status" -ne 0 ] || [ -n "$failed" ]; then
	say "imgfs exited $status; stderr:"
	tail -n 30 "$WORK/imgfs.stderr" >&2
	exit 1
fi
grep -E "definitely lost|ERROR SUMMARY" "$LOG" | sed 's/^==[0-9]*== /valgrind.sh: /' >&2
say "clean"
