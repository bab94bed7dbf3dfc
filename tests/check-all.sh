#!/bin/bash
# check-all.sh: the slow checks CI runs besides `make test` (`make check-all`):
#
#   1. make asan     unit and end-to-end tests against an ASan+UBSan build
#                    (build/asan/imgfs; timeouts scaled by 3)
#   2. valgrind      tests/valgrind.sh: memcheck over mount, cp, ls,
#                    thumbnails, links, unmount (plain build/imgfs)
#   3. make fuzz     every libFuzzer target for FUZZ_SECONDS each
#   4. pjdfstest     tests/e2e/pjdfstest_run.py: the POSIX test suite on
#                    uploads/ (plain build/imgfs, about 5 minutes), against
#                    tests/pjdfstest-expected.txt; skipped when pjdfstest is
#                    not built at $PJDFSTEST (/opt/ext/pjdfstest;
#                    tests/ext/build-pjdfstest.sh builds it)
#   5. fsx           tests/e2e/fsx_run.py: xfstests' file system exerciser
#                    on uploads/, four seeded runs (about 2 minutes);
#                    skipped when fsx is not built at $FSX (/opt/ext/fsx;
#                    tests/ext/build-fsx.sh builds it)
#   6. corpus        when IMGFS_CORPUS names a directory of images (public
#                    test suites and fuzzing corpora, see
#                    tests/e2e/corpus_run.py for which and how to get them):
#                    all of them through a mount of the ASan build, counting
#                    thumbnails, EIOs, time and peak RSS
#
# Every stage runs even when an earlier one failed; the summary names the
# failures and the exit status is non-zero if any stage failed. Expect about
# an hour on 2 cores: the ASan e2e run dominates (~40 min), valgrind ~10 min,
# fuzzing 5 targets x FUZZ_SECONDS (default 60 s here), pjdfstest ~5 min,
# fsx ~2 min.
#
# Env: CHECK_STAGES   stages to run (default "asan valgrind fuzz pjdfstest fsx", and
#                     "corpus" when IMGFS_CORPUS is set)
#      IMGFS_CORPUS   directory of images for the corpus stage
#      FUZZ_SECONDS   per fuzz target (default 60)
#      PYTEST_ARGS    passed to the ASan e2e run (e.g. -m "not slow")
set -uo pipefail

cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
STAGES=${CHECK_STAGES:-asan valgrind fuzz pjdfstest fsx${IMGFS_CORPUS:+ corpus}}
export FUZZ_SECONDS=${FUZZ_SECONDS:-60}
failed=()
summary=()

stage() {
	local name=$1 t0=$SECONDS status
	shift
	echo "== check-all: $name" >&2
	"$@"
	status=$?
	summary+=("$(printf '%-9s %-4s %5ss' "$name" "$([ $status -eq 0 ] && echo ok || echo FAIL)" $((SECONDS - t0)))")
	[ $status -eq 0 ] || failed+=("$name")
}

run_asan() {
	# make asan builds into build/asan; the tests must run that daemon.
	IMGFS_BIN=$PWD/build/asan/imgfs IMGFS_BUILD=$PWD/build/asan \
	IMGFS_TIMEOUT_SCALE=${IMGFS_TIMEOUT_SCALE:-3} \
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		$MAKE asan
}

run_corpus() {
	$MAKE BUILD=build/asan \
		CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" all &&
	IMGFS_BIN=$PWD/build/asan/imgfs IMGFS_BUILD=$PWD/build/asan \
	IMGFS_TIMEOUT_SCALE=${IMGFS_TIMEOUT_SCALE:-3} \
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		/usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
		tests/e2e/corpus_run.py
}

run_pjdfstest() {
	$MAKE -j2 all &&
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/pjdfstest_run.py
}

run_fsx() {
	$MAKE -j2 all &&
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/fsx_run.py
}

run_valgrind() {
	$MAKE -j2 all && tests/valgrind.sh
}

for s in $STAGES; do
	case $s in
	asan) stage asan run_asan ;;
	valgrind) stage valgrind run_valgrind ;;
	fuzz) stage fuzz $MAKE fuzz ;;
	pjdfstest) stage pjdfstest run_pjdfstest ;;
	fsx) stage fsx run_fsx ;;
	corpus) stage corpus run_corpus ;;
	*) echo "check-all: unknown stage $s" >&2; failed+=("$s") ;;
	esac
done

echo "== check-all summary" >&2
printf '  %s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
	echo "check-all: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "check-all: all stages passed" >&2
