#!/usr/bin/env bash
# Run the tracer's tests against a copy of memscope whose native core is built with
# AddressSanitizer and UndefinedBehaviorSanitizer (`make test-native-asan`).
#
# The installed package is copied to a scratch directory, its _tracer extension is replaced
# by a sanitized build of producer/*.c, and pytest runs the tracer tests with that copy first
# on sys.path, libasan preloaded (the interpreter itself is not instrumented) and
# PYTHONMALLOC=malloc so that every Python block is a real malloc block ASan can check.
# Leak checking is off: the interpreter keeps memory alive at exit by design.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CC=${CC:-gcc}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# A copy of the (editable) package beside the sanitized core, without the checkout's extras.
pkg=$("$PY" -c 'import memscope, pathlib; print(pathlib.Path(memscope.__file__).parent)')
mkdir "$scratch/memscope"
(cd "$pkg" && tar cf - --exclude=./.venv --exclude='./.venv-*' --exclude=./build --exclude=./.git \
    --exclude=./tests --exclude=./bench --exclude=./MemoryAnalysis .) | (cd "$scratch/memscope" && tar xf -)
include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
rm -f "$scratch"/memscope/producer/_tracer*.so
"$CC" -shared -fPIC -O1 -g -std=c11 -Wall -Wno-unused-function \
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
    -I"$include" -Iproducer/core -Iprotocol producer/core/binding.c producer/core/tr_*.c \
    protocol/rec1.c -lm \
    -o "$scratch/memscope/producer/_tracer$suffix"
libasan=$("$CC" -print-file-name=libasan.so)
libubsan=$("$CC" -print-file-name=libubsan.so)
echo "sanitized core: $scratch/memscope/producer/_tracer$suffix"
PYTHONPATH="$scratch" LD_PRELOAD="$libasan:$libubsan" ASAN_OPTIONS=detect_leaks=0 "$PY" -c "
import sys, memscope.producer._tracer as t
assert t.__file__.startswith('$scratch'), t.__file__
"
PYTHONPATH="$scratch" LD_PRELOAD="$libasan:$libubsan" PYTHONMALLOC=malloc \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$PY" -m pytest -q -p no:cacheprovider "$@" \
    tests/unit/test_tracer_capture.py tests/unit/test_tracer_rec1.py tests/unit/test_tracer_stacks.py \
    tests/unit/test_tracer_threads.py tests/unit/test_tracer_block_address.py tests/integration/test_tracer_modes.py \
    tests/integration/test_tracer_native.py tests/integration/test_tracer_fork.py tests/unit/test_records.py
