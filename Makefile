# Convenience wrapper around CMake; the scripts under scripts/ do the work.
.PHONY: all build test demo fuzz asan bench clean
all: build
build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build -j$$(nproc)
test:
	bash scripts/test.sh
demo:
	bash scripts/demo.sh
fuzz:
	bash scripts/fuzz.sh
asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMK_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$$(nproc)
	cd build-asan && ctest --output-on-failure -LE 'data|slow'
bench: build
	@ls build/bench_* 2>/dev/null | sed 's/^/run: /'
clean:
	rm -rf build build-asan build-fuzz
