#!/bin/bash
# demo.sh (`make demo`): imgfs end to end on this machine, in about a minute.
# Starts a local S3 server (Ceph RGW on 127.0.0.1), creates the bucket
# "photos", mounts it with build/imgfs, copies real photos in with cp, and
# shows the bucket, the thumbnails and the signed links working — then
# unmounts and removes everything it made. Exits non-zero if a step fails.
#
# Environment: IMGFS_BIN (build/imgfs), DEMO_PORT_BASE (first of 24 ports to
# try, 17480), DEMO_KEEP=1 keeps the temporary directory (logs),
# DEMO_KEEP_MOUNTED=1 (`make demo KEEP=1`) leaves the server running and the
# bucket mounted, and prints how to stop them. The gallery's screenshot
# (headless Chromium) is kept in build/demo-gallery.png either way.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
IMGFS_BIN=${IMGFS_BIN:-$REPO/build/imgfs}
PYTHON=/usr/bin/python3
BUCKET=photos
[ -x "$IMGFS_BIN" ] || { echo "demo: $IMGFS_BIN not built: run make" >&2; exit 1; }
WORK=$(mktemp -d /tmp/imgfs-demo.XXXXXX)
MNT=$WORK/mnt
DAEMON_PID=
STEP=0

BOLD= PLAIN=
if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; fi
heading() {
	STEP=$((STEP + 1))
	printf '\n%s==> %d. %s%s\n' "$BOLD" "$STEP" "$*" "$PLAIN"
}
show() { # print a command, then run it
	printf '$ %s\n' "$*"
	"$@"
}
fail() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

cleanup() {
	local status=$?
	trap - EXIT
	set +e
	if [ "$status" -eq 0 ] && [ "${DEMO_KEEP_MOUNTED:-0}" = 1 ]; then
		echo
		echo "demo: all steps passed; left running (KEEP=1). Stop it with:"
		echo "  fusermount3 -u $MNT"
		echo "  CEPH_DIR=$WORK/rgw $REPO/tests/rgw-down.sh && rm -rf $WORK"
		exit 0
	fi
	if grep -qF " $MNT " /proc/self/mountinfo 2>/dev/null; then
		fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"
	fi
	if [ -n "$DAEMON_PID" ]; then
		for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$DAEMON_PID" 2>/dev/null
	fi
	[ -d "$WORK/rgw" ] && CEPH_DIR=$WORK/rgw KEEP=${DEMO_KEEP:-0} "$REPO/tests/rgw-down.sh"
	if [ "$status" -ne 0 ]; then
		echo "demo: failed (exit $status); imgfs log: $WORK/imgfs.log" >&2
		[ -f "$WORK/imgfs.log" ] && tail -n 20 "$WORK/imgfs.log" >&2
	fi
	[ "${DEMO_KEEP:-0}" = 1 ] || [ "$status" -ne 0 ] || rm -rf "$WORK"
	echo
	[ "$status" -eq 0 ] && echo "demo: all steps passed; everything it started is stopped again."
	exit "$status"
}
trap cleanup EXIT

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_block() { # the first base port with 24 free ports after it
	local base=${DEMO_PORT_BASE:-17480} p ok
	for _ in $(seq 1 40); do
		ok=1
		for ((p = base; p < base + 24; p++)); do
			if port_taken "$p"; then ok=0; break; fi
		done
		[ "$ok" = 1 ] && { echo "$base"; return 0; }
		base=$((base + 24))
	done
	return 1
}

s3py() { # run Python with a boto3 client `s3` for the local server
	env -u AWS_CA_BUNDLE "$PYTHON" -c "
import boto3, botocore.config, sys
s3 = boto3.client('s3', endpoint_url='$ENDPOINT', region_name='us-east-1',
    config=botocore.config.Config(s3={'addressing_style': 'path'}))
$1" "${@:2}"
}

heading "Start a local S3 server (Ceph RADOS Gateway on 127.0.0.1)"
BASE=$(free_block) || fail "no 24 free TCP ports found"
ENDPOINT=$(CEPH_DIR=$WORK/rgw RGW_PORT=$BASE MON_PORT=$((BASE + 1)) \
	OSD_PORT_MIN=$((BASE + 4)) OSD_PORT_MAX=$((BASE + 23)) MEMSTORE_BYTES=1073741824 \
	AK=DEMOACCESSKEY0000000 SK=demosecretkey00000000000000000000000000000 \
	"$REPO/tests/rgw-up.sh" 2>"$WORK/rgw-up.log" | tail -n 1) ||
	{ cat "$WORK/rgw-up.log" >&2; fail "tests/rgw-up.sh"; }
echo "S3 endpoint: $ENDPOINT"
export AWS_ACCESS_KEY_ID=DEMOACCESSKEY0000000
export AWS_SECRET_ACCESS_KEY=demosecretkey00000000000000000000000000000
export AWS_REGION=us-east-1

heading "Create the bucket \"$BUCKET\""
s3py "s3.create_bucket(Bucket='$BUCKET'); print('created s3://$BUCKET')"

heading "Mount it: imgfs $BUCKET $MNT"
mkdir -p "$MNT" "$WORK/cache"
printf '$ %s\n' "imgfs -f -o endpoint=$ENDPOINT,cache_dir=$WORK/cache $BUCKET $MNT &"
"$IMGFS_BIN" -f -o "endpoint=$ENDPOINT,region=us-east-1,cache_dir=$WORK/cache" \
	"$BUCKET" "$MNT" >"$WORK/imgfs.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 200); do
	grep -qF " $MNT " /proc/self/mountinfo && break
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "imgfs exited: $(cat "$WORK/imgfs.log")"
	sleep 0.1
done
grep -qF " $MNT " /proc/self/mountinfo || fail "imgfs did not mount within 20 s"
show ls -la "$MNT"

heading "Copy 10 real photos into uploads/ with cp"
mapfile -t ALL < <(find /usr/share/backgrounds/gnome /usr/share/wallpapers -type f \
	\( -name '*.jpg' -o -name '*.png' -o -name '*.webp' \) ! -name 'screenshot*' | sort)
PHOTOS=()
for i in $(seq 0 9); do # ten spread over the set: JPEG, PNG and WebP
	[ "${#ALL[@]}" -ge 10 ] && PHOTOS+=("${ALL[$((i * ${#ALL[@]} / 10))]}")
done
[ "${#PHOTOS[@]}" -eq 10 ] || fail "need 10 photos (gnome-backgrounds, plasma-workspace-wallpapers): make deps"
NAMES=()
for f in "${PHOTOS[@]}"; do
	case $f in
	/usr/share/wallpapers/*) name=$(echo "${f#/usr/share/wallpapers/}" | cut -d/ -f1)-$(basename "$f") ;;
	*) name=$(basename "$f") ;;
	esac
	NAMES+=("$name")
	show cp "$f" "$MNT/uploads/$name"
done

heading "ls -l uploads/"
show ls -l "$MNT/uploads/"

heading "The bucket, seen directly through the S3 API (boto3)"
s3py "
for o in s3.list_objects_v2(Bucket='$BUCKET', Prefix='uploads/')['Contents']:
    h = s3.head_object(Bucket='$BUCKET', Key=o['Key'])
    print(f\"s3://$BUCKET/{o['Key']:48} {o['Size']:>10} bytes  {h['ContentType']}\")
"
FIRST=${NAMES[0]}
ORIG_SHA=$(sha256sum <"${PHOTOS[0]}" | cut -d' ' -f1)
BUCKET_SHA=$(s3py "
import hashlib
print(hashlib.sha256(s3.get_object(Bucket='$BUCKET', Key='uploads/$FIRST')['Body'].read()).hexdigest())")
echo "sha256 of ${PHOTOS[0]}: $ORIG_SHA"
echo "sha256 of s3://$BUCKET/uploads/$FIRST: $BUCKET_SHA"
[ "$ORIG_SHA" = "$BUCKET_SHA" ] || fail "the object differs from the file copied in"

heading "ls -l thumbnails/ (listing generates nothing)"
show ls -l "$MNT/thumbnails/"

heading "A thumbnail is made on first read"
THUMB=$(ls "$MNT/thumbnails/" | grep -F -- "${FIRST%.*}" | head -n 1)
[ -n "$THUMB" ] || fail "no thumbnail listed for $FIRST"
show vipsheader "$MNT/uploads/$FIRST"
show vipsheader "$MNT/thumbnails/$THUMB"
show ls -l "$MNT/thumbnails/$THUMB"

heading "Signed links: cat .links/..., then download with curl"
printf '$ cat %s\n' "$MNT/.links/uploads/$FIRST"
URL=$(cat "$MNT/.links/uploads/$FIRST")
echo "$URL"
printf '$ curl -fsS -o %s "%s"\n' "$WORK/original.download" "$URL"
curl -fsS -o "$WORK/original.download" "$URL"
GOT=$(sha256sum <"$WORK/original.download" | cut -d' ' -f1)
echo "sha256 of the download: $GOT"
[ "$GOT" = "$ORIG_SHA" ] || fail "the original's link served different bytes"
echo "the original's link serves the original (sha256 equal)"

printf '$ cat %s\n' "$MNT/.links/thumbnails/$THUMB"
TURL=$(cat "$MNT/.links/thumbnails/$THUMB")
echo "$TURL"
printf '$ curl -fsS -o %s "%s"\n' "$WORK/thumb.download" "$TURL"
curl -fsS -o "$WORK/thumb.download" "$TURL"
TSHA=$(sha256sum <"$MNT/thumbnails/$THUMB" | cut -d' ' -f1)
GOT=$(sha256sum <"$WORK/thumb.download" | cut -d' ' -f1)
echo "sha256 of thumbnails/$THUMB: $TSHA"
echo "sha256 of the download:       $GOT"
[ "$GOT" = "$TSHA" ] || fail "the thumbnail's link served different bytes"
echo "the thumbnail's link serves the thumbnail (sha256 equal)"

heading "The gallery page"
# A page never waits for thumbnails: one not made yet is a placeholder
# while the scheduler makes it, so read again until none is left.
for _ in $(seq 1 300); do
	PAGE=$(cat "$MNT/.links/index.html")
	case $PAGE in *"thumbnail being made"*) sleep 0.2 ;; *) break ;; esac
done
[ -n "$PAGE" ] || fail ".links/index.html is empty"
echo "$(printf '%s' "$PAGE" | wc -c) bytes, $(printf '%s' "$PAGE" | grep -o '<img' | wc -l) signed thumbnails, each linking to its signed original"
SHOT=$REPO/build/demo-gallery.png
mkdir -p "$REPO/build" "$WORK/chromium"
cp "$MNT/.links/index.html" "$WORK/gallery.html"
printf '$ chromium --headless --screenshot=%s file://%s\n' "$SHOT" "$WORK/gallery.html"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$WORK/chromium" --hide-scrollbars --window-size=1280,900 \
	--virtual-time-budget=5000 --screenshot="$SHOT" "file://$WORK/gallery.html" \
	>"$WORK/chromium.log" 2>&1 || fail "chromium: $(tail -n 3 "$WORK/chromium.log")"
[ -s "$SHOT" ] || fail "no screenshot"
echo "gallery screenshot: $SHOT"

heading "Mount the same bucket by hand"
cat <<EOT
The server and its keys stay as the demo made them; in another shell:
  export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
  export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
  mkdir -p ~/photos
  $IMGFS_BIN -o endpoint=$ENDPOINT,region=us-east-1 $BUCKET ~/photos
  xdg-open ~/photos/.links/index.html
  fusermount3 -u ~/photos
(make demo KEEP=1 leaves the server running and $MNT mounted to try this.)
EOT
if [ "${DEMO_KEEP_MOUNTED:-0}" = 1 ]; then
	echo "still mounted at $MNT (imgfs pid $DAEMON_PID); open $MNT/.links/index.html"
	exit 0
fi

heading "Unmount and stop the server"
show fusermount3 -u "$MNT"
wait "$DAEMON_PID" || fail "imgfs exited with status $? after unmount"
DAEMON_PID=
