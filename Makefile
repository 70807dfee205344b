# The two commands of the README: `make run` and `make test`. CMake does the building.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= 2
CMAKE_ARGS ?=

.PHONY: all build build-asan build-tsan run test test-normal test-asan test-tsan deps-run deps-test bench install clean

all: build

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

build: deps-run
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWARD_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

build-tsan: deps-test
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARD_TSAN=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)

# Starts the stack in the foreground: ward-registry, then the services registered in it.
# Ctrl-C shuts it down gracefully (services deregister first).
run: build
	@exec $(BUILD)/bin/ward up

test: deps-test
	@$(MAKE) --no-print-directory test-normal
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan

test-normal: build
	ctest --test-dir $(BUILD) --output-on-failure --timeout 300

# Leaks (in tests and in the daemons they start) and undefined behaviour fail the run.
test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir $(ASAN_BUILD) --output-on-failure --timeout 600

# The concurrency tests under ThreadSanitizer: a data race fails the run.
test-tsan: build-tsan
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	ctest --test-dir $(TSAN_BUILD) --output-on-failure --timeout 600 --no-tests=ignore

bench: build
	@scripts/deps.sh bench
	bench/zakat.sh

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
