# The two commands of the README: `make run` and `make test`. Everything else is a
# step they share.
BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -G Ninja -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache
# Runs a command in a network namespace with only loopback, so that no test,
# fuzzer or benchmark can send a packet off the machine (.ci/loopback-netns.sh).
LOOPBACK = bash $(CURDIR)/.ci/loopback-netns.sh
# Warnings fail the developer and CI builds (set when a build directory is first
# configured); plain `cmake`, as packagers run it, leaves -Werror off.
WERROR ?= ON
DEV_FLAGS = $(CMAKE_FLAGS) -DDISCOVERYD_WERROR=$(WERROR)
RELEASE_BUILD_DIR ?= build-release
RUN_ARGS ?= --config discoveryd.example.toml

FUZZ_BUILD_DIR ?= build-fuzz
# Seconds each fuzzer runs (so `make fuzz` takes about three times this).
FUZZ_SECONDS ?= 60
# fuzzer:corpus pairs; the corpora are tests/fuzz/corpus/<corpus>.
FUZZ_TARGETS ?= dns_query_fuzzer:dns http_request_fuzzer:http registration_fuzzer:registration

.PHONY: run run-cluster test test-asan fuzz deps build build-asan build-release clean format

deps:
	bash .ci/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) $(DEV_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	bash .ci/run-local.sh $(BUILD_DIR)/discoveryd $(RUN_ARGS)

# Three daemons sharing a throwaway PostgreSQL and a Redis on loopback.
run-cluster: build
	bash .ci/run-cluster.sh $(BUILD_DIR)/discoveryd

test: build
	cd $(BUILD_DIR) && $(LOOPBACK) ctest --output-on-failure -j $(JOBS) --timeout 600

$(ASAN_BUILD_DIR)/build.ninja:
	cmake -S . -B $(ASAN_BUILD_DIR) $(DEV_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DDISCOVERYD_SANITIZE=ON

build-asan: deps $(ASAN_BUILD_DIR)/build.ninja
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: build-asan
	cd $(ASAN_BUILD_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(LOOPBACK) ctest --output-on-failure -j $(JOBS) --timeout 900

# libFuzzer (clang) on the DNS packet handler, the HTTP request path and the
# registration parser, each for FUZZ_SECONDS, starting from a scratch copy of its
# committed seed corpus (tests/fuzz/run_fuzzer.cmake). Every fuzzer runs even if
# an earlier one failed; any crash fails the target, with reproducers left in
# $(FUZZ_BUILD_DIR)/run-<corpus>/artifacts.
fuzz: deps
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD_DIR) $(DEV_FLAGS) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDISCOVERYD_FUZZ=ON -DDISCOVERYD_TESTS=OFF
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target $(foreach t,$(FUZZ_TARGETS),$(firstword $(subst :, ,$(t))))
	@failed=""; for pair in $(FUZZ_TARGETS); do \
	  fuzzer=$${pair%%:*}; corpus=$${pair##*:}; \
	  echo "== $$fuzzer for $(FUZZ_SECONDS) s"; \
	  $(LOOPBACK) cmake -DFUZZER=$(abspath $(FUZZ_BUILD_DIR))/fuzz/$$fuzzer \
	    -DCORPUS=$(CURDIR)/tests/fuzz/corpus/$$corpus \
	    -DWORK=$(abspath $(FUZZ_BUILD_DIR))/run-$$corpus \
	    -DSECONDS=$(FUZZ_SECONDS) -P tests/fuzz/run_fuzzer.cmake || failed="$$failed $$fuzzer"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzers that failed:$$failed"; exit 1; fi; \
	echo "all fuzzers ran $(FUZZ_SECONDS) s each without a finding"

$(RELEASE_BUILD_DIR)/build.ninja:
	cmake -S . -B $(RELEASE_BUILD_DIR) $(DEV_FLAGS) -DCMAKE_BUILD_TYPE=Release

# CMake's Release (-O3), where GCC 12 finds warnings that -O2 does not: the daemon,
# its libraries and every test program compile without a warning. The tests are
# run by `make test`; here only the daemon is started, to print its version.
build-release: deps $(RELEASE_BUILD_DIR)/build.ninja
	cmake --build $(RELEASE_BUILD_DIR) -j $(JOBS)
	$(RELEASE_BUILD_DIR)/discoveryd --version

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR) $(FUZZ_BUILD_DIR) $(RELEASE_BUILD_DIR)
