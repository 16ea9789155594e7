# dlp - thin wrapper over CMake. `make help` lists the targets.
PREFIX ?= /usr/local
BUILD  ?= build
ASAN_BUILD ?= build-asan
JOBS   ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-fast test-asan demo bench pretrain install uninstall clean help format

all: build

help:
	@echo "make demo       install deps, build, run the sample job (offline)"
	@echo "make test       install deps, build, run every test, then again under ASan+UBSan"
	@echo "make test-fast  the tests of the release build only"
	@echo "make bench      the side-by-side benchmarks (bench/RESULTS.md)"
	@echo "make pretrain   retrain the shipped backbone from its recipe (models/README.md)"
	@echo "make install    install library, header, dlp and dlp.pc (PREFIX=$(PREFIX))"
	@echo "make clean      remove build folders"

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDLP_SANITIZE=ON $(CMAKE_FLAGS)

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -E '^bench'

test: test-fast test-asan

demo: build
	@scripts/demo.sh $(BUILD)/dlp

# Rebuilds models/clipart_mobilenet_v2_0.5_96.h5 (about 10 min on 2 cores).
pretrain: build
	@scripts/install-deps.sh --pretrain
	@scripts/pretrain.sh --bin $(BUILD)/dlp

bench: build
	@scripts/install-deps.sh --bench
	cd bench/ort && npm install --ignore-scripts --no-audit --no-fund >/dev/null
	/usr/bin/python3 bench/image_pipeline.py --dlp $(BUILD)/bench/bench_decode
	BENCH_NN=$(BUILD)/bench/bench_nn /usr/bin/python3 bench/nn_models.py
	/usr/bin/python3 bench/logreg.py --lrfit $(BUILD)/tests/lrfit
	/usr/bin/python3 bench/train.py --trainbench $(BUILD)/tests/trainbench

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

uninstall:
	@test -f $(BUILD)/install_manifest.txt && xargs rm -f < $(BUILD)/install_manifest.txt || true

format:
	clang-format -i include/*.h src/*/*.[ch] tests/*/*.[ch] bench/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
