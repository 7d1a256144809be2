#!/bin/bash
# Proof that the test guest works, using QEMU microvm (KVM if usable, else TCG).
# Boots both images (PVH entry, and the Linux 64-bit entry via the test-only
# shim) and checks the output lines of the README contract.
set -u
here=$(cd "$(dirname "$0")" && pwd)
make -s -C "$here" >/dev/null || exit 1
pass=0 fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# check NAME EXPECTED_RC "CMDLINE" MEM SMP LINE... (each LINE must appear, as a regex)
check() {
	local name=$1 want_rc=$2 cmd=$3 mem=$4 smp=$5 t0 t1 rc ok=1
	shift 5
	t0=$(date +%s.%N)
	timeout 120 "$here/run-qemu.sh" "$cmd" "$mem" "$smp" >"$out" 2>&1
	rc=$?
	t1=$(date +%s.%N)
	[ "$rc" = "$want_rc" ] || ok=0
	for re in "$@"; do grep -Eq -- "^mltest: $re\$" "$out" || { ok=0; echo "   missing: $re"; }; done
	if [ $ok = 1 ]; then pass=$((pass + 1)); st=PASS; else fail=$((fail + 1)); st=FAIL; fi
	printf '%s %-28s rc=%s %.2fs\n' "$st" "$name" "$rc" "$(awk "BEGIN{print $t1 - $t0}")"
	[ $ok = 1 ] && [ -z "${VERBOSE-}" ] || sed 's/^/   | /' "$out"
}

for img in testguest testguest-linuxshim; do
	export GUEST_ELF=$here/build/$img.elf
	boot=pvh; [ $img = testguest ] || boot=linux
	echo "== $img (BOOT $boot)"
	c='console=ttyS0 root=/dev/vda  "quoted arg" ml.say=hello ml.bogus ml.exit=debugexit=1'
	check "cmdline" 3 "$c" 128 1 "BOOT $boot" "CMDLINE $c" "SAY hello" "UNKNOWN ml.bogus" "DONE" "EXIT debugexit=1"
	for m in 128 3584 8192; do
		check "e820+memtest -m $m" 3 "ml.e820 ml.memtest ml.exit=debugexit=1" $m 1 \
			"E820 0x100000 0x[0-9a-f]+ 1" "RAM [0-9]+" "MEM OK 0x100000 0x[0-9a-f]+" "MEMTEST OK [0-9]+"
	done
	for s in 1 2 4; do
		ids=$(seq -s, 0 $((s - 1)))
		check "mptable -smp $s" 3 "ml.mptable ml.exit=debugexit=1" 128 $s \
			"MPTABLE cpus=$s apic_ids=$ids ioapic=$((s + 1))@0xfec00000"
	done
	check "exit reset" 0 "ml.exit=reset" 128 1 "DONE" "EXIT reset"
	check "exit default (reset)" 0 "quiet" 128 1 "DONE" "EXIT reset"
	check "exit triple" 0 "ml.exit=triple" 128 1 "DONE" "EXIT triple"
	check "exit debugexit=0x20" 65 "ml.exit=debugexit=0x20" 128 1 "EXIT debugexit=32"
	check "pio=0" 3 "ml.pio=0 ml.exit=debugexit=1" 128 1 "PIO 0 done"
	check "pio=100000" 3 "ml.pio=100000 ml.exit=debugexit=1" 128 1 "PIO 100000 done"
	check "pio=1000000" 3 "ml.pio=1000000 ml.exit=debugexit=1" 128 1 "PIO 1000000 done"
	t0=$(date +%s.%N)
	timeout 3 "$here/run-qemu.sh" "ml.exit=hang" >"$out" 2>&1
	rc=$?
	if [ $rc = 124 ] && grep -q '^mltest: EXIT hang$' "$out"; then
		pass=$((pass + 1)); echo "PASS exit hang (killed by SIGTERM after 3s)"
	else
		fail=$((fail + 1)); echo "FAIL exit hang rc=$rc"; sed 's/^/   | /' "$out"
	fi
done
echo "$pass passed, $fail failed"
[ $fail = 0 ]
