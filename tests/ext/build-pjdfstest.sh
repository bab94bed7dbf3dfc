#!/bin/bash
# build-pjdfstest.sh: build pjdfstest, the POSIX file system test suite, in
# place, for tests/e2e/pjdfstest_run.py (which runs its tests/ from there).
#
#   tests/ext/build-pjdfstest.sh PJDFSTEST_CHECKOUT
#
# PJDFSTEST_CHECKOUT is a clone of https://github.com/pjd/pjdfstest; point
# PJDFSTEST at it, or clone it to /opt/ext/pjdfstest.
set -euo pipefail

src=${1:?usage: build-pjdfstest.sh PJDFSTEST_CHECKOUT}
cd "$src"
autoreconf -ifs
./configure
make pjdfstest
echo "built $src/pjdfstest"
