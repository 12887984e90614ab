# Wraps the README's two commands. Everything real lives in CMake.
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
# The suites with threads of their own: the skiplist's lock-free readers, group
# commit, the flush and compaction threads, the WAL cursor racing appends, the
# ring's readers, the tail reader beside a WAL syncing in the background. Not
# the service suites: Debian's libzmq is not instrumented, so TSan reports its
# own message hand-off between threads as races.
TSAN_TESTS = ^(test_memtable|test_wal|test_wal_cursor|test_replog|test_ring|test_tail|test_db|test_verify|test_model|test_iter|test_powercut)$$

.PHONY: all deps build build-asan build-tsan run test test-release test-asan test-tsan bench format clean

all: build

deps:
	@./deploy/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON -DSTRATA_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

build-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSTRATA_TSAN=ON -DSTRATA_BENCH=OFF >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)

# The main job: a local node in the foreground (deploy/strata-node); Ctrl-C
# stops it. $(BUILD)/examples/strata-demo still runs the embedded engine alone.
run: build
	@BUILD=$(BUILD) ./deploy/strata-node start --foreground --dir ./data/node

test: test-release test-asan test-tsan

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

test-tsan: build-tsan
	@cd $(TSAN_BUILD) && ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'

bench: build
	@$(BUILD)/bench/strata-bench all --quick

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
