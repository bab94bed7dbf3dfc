# imgfs — build, test, demo, install.
# `make demo` and `make test` work on a fresh Debian 12 machine as root:
# both install what they need first (make deps).

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
CC ?= cc
PYTHON ?= /usr/bin/python3

PKGS := fuse3 libcurl openssl vips sqlite3 inih expat json-c libmagic zlib \
	libseccomp libwebpmux
DEB_BUILD := build-essential pkg-config fuse3 libfuse3-dev libcurl4-openssl-dev \
	libssl-dev libvips-dev libsqlite3-dev libinih-dev libexpat1-dev \
	libjson-c-dev libmagic-dev zlib1g-dev libseccomp-dev libwebp-dev
DEB_TEST := radosgw ceph-mon ceph-osd python3-pytest python3-boto3 \
	python3-pil python3-prometheus-client gnome-backgrounds \
	plasma-workspace-wallpapers rsync file curl sqlite3 procps psmisc \
	chromium libvips-tools clang libclang-rt-14-dev valgrind \
	ca-certificates openssl python3-yaml systemd rsyslog s3fs rclone git \
	strace
DEB_BENCH :=

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wwrite-strings -Wformat=2 -Wno-unused-parameter
CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 -pthread $(WARN) $(WERROR) -I. -Icore \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
override LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

CORE_SRC := $(sort $(wildcard core/*/*.c))
FS_SRC := $(sort $(wildcard fs/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
FS_OBJ := $(FS_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps deps-demo deps-bench test unit e2e demo asan tsan valgrind bench bench-pool fuzz \
	install uninstall clean check-all format

all: $(BUILD)/imgfs $(UNIT_BIN)

$(BUILD)/%.o: %.c $(wildcard core/*/*.h fs/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libimgfs.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/imgfs: $(FS_OBJ) $(BUILD)/libimgfs.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libimgfs.a $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libimgfs.a $(LDFLAGS) $(LDLIBS)

# What the demo needs: Debian packages only (no npm).
deps-demo:
	@tests/deps.sh $(DEB_BUILD) $(DEB_TEST)

deps: deps-demo
	@command -v npm >/dev/null || tests/deps.sh nodejs npm
	@[ -d tests/node/node_modules ] || npm ci --prefix tests/node --no-audit --no-fund

deps-bench:
	@tests/deps.sh $(DEB_BUILD) $(DEB_TEST) $(DEB_BENCH)
	@command -v npm >/dev/null || tests/deps.sh nodejs npm
	@[ -d tests/node/node_modules/sharp ] || npm ci --prefix tests/node --no-audit --no-fund

unit: all
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

e2e: all
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

test: deps
	$(MAKE) WERROR=-Werror all
	$(MAKE) unit
	$(MAKE) e2e

# The same tests against an ASan+UBSan build.
asan: deps
	$(MAKE) BUILD=build/asan WERROR=-Werror IMGFS_BIN=build/asan/imgfs \
		IMGFS_BUILD=build/asan IMGFS_TIMEOUT_SCALE=3 \
		CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" unit e2e

# The concurrency tests (races, open files, the model, eager thumbnails in
# worker processes) against a
# ThreadSanitizer build; tests/tsan.supp silences only libvips', GLib's and
# the image libraries' hand-overs between libvips' threads.
TSAN_TESTS ?= tests/e2e/test_races.py tests/e2e/test_disk.py tests/e2e/test_model.py \
	tests/e2e/test_thumbs_eager.py
tsan: deps
	$(MAKE) BUILD=build/tsan WERROR=-Werror \
		CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=thread" \
		LDFLAGS="-fsanitize=thread" all
	IMGFS_BIN=build/tsan/imgfs IMGFS_BUILD=build/tsan IMGFS_TIMEOUT_SCALE=5 \
		TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=0" \
		$(PYTHON) -m pytest -q -p no:cacheprovider $(TSAN_TESTS) $(PYTEST_ARGS)

# KEEP=1 leaves the server running and the bucket mounted afterwards.
demo: deps-demo all
	DEMO_KEEP_MOUNTED=$(KEEP) tests/demo.sh

bench: deps-bench all bench-pool
	$(PYTHON) tests/bench/bench.py

# Thumbnail throughput of the sandboxed worker pool against decoding in
# the daemon's own process, on 40 of Debian's wallpapers, 2 threads.
BENCH_IMAGES = $(shell find /usr/share/wallpapers /usr/share/backgrounds -type f \
	\( -name '*.jpg' -o -name '*.png' \) 2>/dev/null | sort | head -40)
bench-pool: all
	$(BUILD)/tools/thumbbench -j 2 -r 3 $(BENCH_IMAGES)

install: $(BUILD)/imgfs
	install -D -m 755 $(BUILD)/imgfs $(DESTDIR)$(PREFIX)/bin/imgfs
	install -D -m 644 docs/imgfs.1 $(DESTDIR)$(PREFIX)/share/man/man1/imgfs.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/imgfs $(DESTDIR)$(PREFIX)/share/man/man1/imgfs.1

format:
	clang-format -i core/*/*.[ch] fs/*.[ch] tests/unit/*.[ch]

clean:
	rm -rf $(BUILD)

# Small programs the tests drive (tests/tools/NAME.c -> build/tools/NAME).
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
all: $(TOOL_BIN)
$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libimgfs.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libimgfs.a $(LDFLAGS) $(LDLIBS)

# libFuzzer targets, each run for a bounded time on its committed corpus.
fuzz:
	tests/fuzz/run.sh

# The slow checks: ASan+UBSan end-to-end, valgrind, fuzzing, pjdfstest
# (about an hour).
check-all: deps all
	tests/check-all.sh
