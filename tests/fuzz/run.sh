#!/bin/sh
# Build and run every libFuzzer target tests/fuzz/fuzz_NAME.c for a bounded
# time on its committed seed corpus tests/fuzz/corpus/NAME/; fail on any crash,
# sanitizer report or leak.
#
# A target names the core sources it needs in a comment line
#     fuzz-sources: core/base/a.c core/io/b.c
# (without it, every core/*/*.c is linked). Adding a target = its .c file plus a
# corpus directory.
#
# Usage: tests/fuzz/run.sh [NAME...]     (default: every target)
# Env:   FUZZ_SECONDS  time per target (default 30)
#        FUZZ_CC       compiler (default clang, Debian's clang + libclang-rt)
#        BUILD         build directory root (default build)
set -eu

cd "$(dirname "$0")/../.."
SECONDS_PER=${FUZZ_SECONDS:-30}
CC=${FUZZ_CC:-clang}
OUT=${BUILD:-build}/fuzz
PKGS=$(sed -n 's/^PKGS := //p' Makefile)

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2
	exit 1
fi

WARN="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wwrite-strings -Wformat=2 -Wno-unused-parameter"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -pthread $WARN -I. -Icore \
$(pkg-config --cflags $PKGS 2>/dev/null)"
LIBS="$(pkg-config --libs $PKGS 2>/dev/null) -lpthread -lm"

# The core sources target $1 needs, from its fuzz-sources line.
sources_of() {
	srcs=$(sed -n 's/.*fuzz-sources:[[:space:]]*\([^*]*\).*/\1/p' "$1")
	if [ -z "$srcs" ]; then
		srcs=$(ls core/*/*.c)
	fi
	echo $srcs
}

# Compile one core source with the fuzzing instrumentation.
build_obj() {
	obj=$OUT/obj/${1%.c}.o
	mkdir -p "$(dirname "$obj")"
	if [ ! -f "$obj" ] || [ "$1" -nt "$obj" ] ||
	   [ -n "$(find core -name '*.h' -newer "$obj")" ]; then
		$CC $CFLAGS $SAN -fsanitize=fuzzer-no-link -c -o "$obj" "$1"
	fi
	echo "$obj"
}

build_target() {
	name=$1
	objs=
	for src in $(sources_of "tests/fuzz/fuzz_$name.c"); do
		obj=$(build_obj "$src") || return 1
		objs="$objs $obj"
	done
	$CC $CFLAGS $SAN -fsanitize=fuzzer -o "$OUT/fuzz_$name" \
		"tests/fuzz/fuzz_$name.c" $objs $LIBS
}

run_target() {
	name=$1
	corpus=tests/fuzz/corpus/$name
	work=$OUT/work/$name
	if [ ! -d "$corpus" ]; then
		echo "fuzz: $name has no seed corpus $corpus" >&2
		return 1
	fi
	mkdir -p "$work" "$OUT/artifacts"
	echo "== fuzz_$name: ${SECONDS_PER}s on $corpus"
	# New inputs go to the scratch dir first named; the seeds stay as committed.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	"$OUT/fuzz_$name" -max_total_time="$SECONDS_PER" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$OUT/artifacts/$name-" "$work" "$corpus"
}

mkdir -p "$OUT"
if [ $# -gt 0 ]; then
	names=$*
else
	names=$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_\(.*\)\.c$|\1|' | tr '\n' ' ')
fi

failed=
for name in $names; do
	if ! build_target "$name"; then
		echo "fuzz: building fuzz_$name failed" >&2
		failed="$failed $name"
	elif ! run_target "$name"; then
		echo "fuzz: fuzz_$name failed; inputs in $OUT/artifacts/" >&2
		failed="$failed $name"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed" >&2
	exit 1
fi
echo "fuzz: all targets ran clean: $names"
