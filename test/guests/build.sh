#!/bin/sh
# Build the test guest: build/testguest.elf (+ test-only build/testguest-linuxshim.elf).
set -eu
exec make -C "$(cd "$(dirname "$0")" && pwd)" "$@"
