#!/bin/sh
# Boot the test guest under QEMU's microvm machine (PVH entry via -kernel).
#   run-qemu.sh "<cmdline>" [mem MiB, default 128] [smp, default 1]
# Serial (COM1) goes to stdout. Extra QEMU options can be given in $QEMU_EXTRA.
# Uses KVM when /dev/kvm is usable, TCG otherwise (override: ACCEL=kvm|tcg,
# QEMU_CPU=...; GUEST_ELF=... boots another image).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cmdline=${1-}
mem=${2:-128}
smp=${3:-1}
elf=${GUEST_ELF:-$here/build/testguest.elf}
[ -f "$elf" ] || make -s -C "$here" >&2

if [ -z "${ACCEL-}" ]; then
	if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
if [ "$ACCEL" = kvm ]; then cpu=host; else cpu=max; fi
cpu=${QEMU_CPU:-$cpu}

# microvm has no i8042 of its own: add one so "ml.exit=reset" works.
# acpi=off: the guest uses no ACPI (qboot writes the MP table either way).
exec qemu-system-x86_64 \
	-M microvm,acpi=off,pit=on,pic=on,rtc=off \
	-accel "$ACCEL" -cpu "$cpu" -m "$mem" -smp "$smp" \
	-nodefaults -no-user-config -nographic -no-reboot \
	-serial stdio \
	-device i8042 \
	-device isa-debug-exit,iobase=0xf4,iosize=4 \
	-kernel "$elf" -append "$cmdline" \
	${QEMU_EXTRA-}
