#!/bin/bash
# build-fsx.sh: build fsx, the file system exerciser of xfstests, alone
# (without configuring xfstests, which wants the XFS headers), for
# tests/e2e/fsx_run.py.
#
#   tests/ext/build-fsx.sh XFSTESTS_CHECKOUT [OUT]   (OUT: /opt/ext/fsx)
#
# XFSTESTS_CHECKOUT is a clone of git://git.kernel.org/pub/scm/fs/xfs/xfstests-dev.git
# (or a mirror). The config.h written here names the headers Debian 12 has;
# fallocate, copy_file_range and the clone/dedupe ioctls are compiled in, and
# fsx turns off at start whatever the file system refuses.
set -euo pipefail

src=${1:?usage: build-fsx.sh XFSTESTS_CHECKOUT [OUT]}
out=${2:-/opt/ext/fsx}
cfg=$(mktemp -d)
trap 'rm -rf "$cfg"' EXIT
for h in SYS_TYPES_H SYS_STAT_H SYS_STATVFS_H SYS_TIME_H SYS_IOCTL_H \
	SYS_WAIT_H MALLOC_H DIRENT_H STDLIB_H UNISTD_H ERRNO_H STRING_H \
	SYS_FCNTL_H TIME_H WAIT_H LINUX_FALLOC_H COPY_FILE_RANGE ERR_H; do
	echo "#define HAVE_$h 1"
done > "$cfg/config.h"
mkdir -p "$(dirname "$out")"
gcc -O2 -D_GNU_SOURCE -I"$cfg" -I"$src/src" -I"$src/include" \
	-include assert.h -include getopt.h -include sys/param.h \
	-include linux/falloc.h -include linux/fs.h \
	-o "$out" "$src/ltp/fsx.c"
echo "built $out"
