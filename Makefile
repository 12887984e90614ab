# Wraps the README's two commands. Everything real lives in CMake.
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# Each fuzz target runs this long in `make test`; `make fuzz` runs them for
# FUZZ_LONG_SECONDS each instead.
FUZZ_SECONDS ?= 20
FUZZ_LONG_SECONDS ?= 600
# The suites with threads of their own: the skiplist's lock-free readers, group
# commit, the flush and compaction threads, the WAL cursor racing appends, the
# ring's readers, the tail reader beside a WAL syncing in the background. Not
# the service suites: Debian's libzmq is not instrumented, so TSan reports its
# own message hand-off between threads as races.
TSAN_TESTS = ^(test_memtable|test_wal|test_wal_cursor|test_replog|test_ring|test_tail|test_db|test_verify|test_model|test_iter|test_powercut)$$

.PHONY: all deps build build-asan build-tsan build-fuzz run cluster test test-release test-asan test-tsan test-fuzz fuzz fuzz-seeds soak-sim bench format clean

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

# libFuzzer needs clang; only the library and the targets in fuzz/ are built.
build-fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_FUZZ=ON -DSTRATA_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_all fuzz_seeds

# The main job: a local node in the foreground (deploy/strata-node), in its
# default data dir, ./strata-data (or $$STRATA_NODE_DATA_DIR), as for the
# processes and stratactl; Ctrl-C stops it. $(BUILD)/examples/strata-demo
# still runs the embedded engine alone.
run: build
	@BUILD=$(BUILD) ./deploy/strata-node start --foreground

# A local 3-node cluster in the foreground (deploy/strata-cluster), data in
# ./data/cluster; Ctrl-C stops it.
cluster: build
	@BUILD=$(BUILD) ./deploy/strata-cluster start --foreground --dir ./data/cluster

test: test-release test-asan test-tsan test-fuzz

# Opt-in: the consensus simulator's long run, SIM_SCHEDULES seeded schedules
# alternating 3 and 5 nodes (make test runs 5,000 of each).
SIM_SCHEDULES ?= 1000000
soak-sim: build
	@$(BUILD)/tests/raft_sim --schedules $(SIM_SCHEDULES)

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The cluster suites (label cluster) run once, in the release build.
test-asan: build-asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -LE '^cluster$$'

test-tsan: build-tsan
	@cd $(TSAN_BUILD) && ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'

test-fuzz: build-fuzz
	@BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) ./fuzz/run.sh $(FUZZ_SECONDS)

# Opt-in: every target for FUZZ_LONG_SECONDS (10 minutes by default).
fuzz: build-fuzz
	@BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) ./fuzz/run.sh $(FUZZ_LONG_SECONDS)

# Rewrites the committed seed corpus from the project's own encoders.
fuzz-seeds: build-fuzz
	@rm -rf fuzz/corpus && $(FUZZ_BUILD)/fuzz/fuzz_seeds fuzz/corpus

bench: build
	@$(BUILD)/bench/strata-bench all --quick

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
