# The two commands of the README: `make run` and `make test`. CMake does the building.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= 2
CMAKE_ARGS ?=

.PHONY: all build build-asan run test test-normal test-asan deps-run deps-test bench install clean

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

# Starts the stack in the foreground; Ctrl-C shuts it down gracefully.
run: build
	exec $(BUILD)/bin/zakat-service

test: deps-test
	@$(MAKE) --no-print-directory test-normal
	@$(MAKE) --no-print-directory test-asan

test-normal: build
	ctest --test-dir $(BUILD) --output-on-failure --timeout 300

# Leaks (in tests and in the daemons they start) and undefined behaviour fail the run.
test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir $(ASAN_BUILD) --output-on-failure --timeout 600

bench: build
	@scripts/deps.sh bench
	bench/zakat.sh

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
