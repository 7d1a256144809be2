#!/usr/bin/env bash
# Builds matchlock's guest kernel from Debian's linux-source package and our config fragment
# (kernel/matchlock.config). See docs/kernels.md.
#
# usage: kernel/build-kernel.sh [--check-config-only] [--jobs N] [--work DIR] [--fragment FILE] OUT_DIR
#
#   OUT_DIR    gets vmlinux (the ELF kernel), bzImage and config (the full .config); the build's objects
#              go to OUT_DIR/build (make O=...), so the unpacked source tree stays clean and can be shared.
#   --check-config-only
#              stop after the config is made and verified (OUT_DIR/config); no compiling.
#   --jobs N   parallel make jobs (default: nproc).
#   --work DIR where linux-source is unpacked, once per source version (default: .cache/kernel-build in the
#              repository; MATCHLOCK_KERNEL_WORK overrides it too).
#   --fragment FILE
#              another config fragment than kernel/matchlock.config (tests use it to check the verification).
#
# Steps: install linux-source and the build tools with apt-get if they are missing (as root; otherwise it
# prints the apt-get command and stops), unpack /usr/src/linux-source-*.tar.xz (kept for the next run),
# `make x86_64_defconfig`, merge our fragment with scripts/kconfig/merge_config.sh, `make olddefconfig`, then
# verify that every CONFIG_X=value line of the fragment survived in .config: Kconfig silently drops a symbol
# whose dependencies are not met, or that does not exist in this kernel version, so we fail loudly, listing them.
# A "# CONFIG_X is not set" line that did not stick (something selects X) is only a warning.
#
# Why x86_64_defconfig and not tinyconfig as the start: tinyconfig turns EXPERT on and with it removes system
# calls and subsystems that ordinary user space (glibc, systemd, Docker, the toolchains a CI job runs) takes for
# granted: futex, epoll, eventfd, signalfd, timerfd, POSIX timers, shmem, AIO, multi-user support, printk, ELF
# binaries... A fragment that put all of those back would be long and would miss one, and a job would fail in
# a way that is hard to trace. x86_64_defconfig is maintained upstream and boots; the fragment turns off what a
# microVM has no use for (PCI, USB, sound, graphics, wireless, ...). The cost is a somewhat larger kernel.
#
# Time on 2 cores: unpacking the source about half a minute (once), the config and its check about 10 s, a full
# build about 30 minutes (measured: 31 min on 2 shared cores, 29 CPU-minutes, so roughly 15 to 20 min on 2 idle
# cores; a rebuild after a small config change takes seconds to minutes).
#
# Then import the kernel (named after its release, 6.1.NNN-matchlock, unless --name):
#   bin/matchlock kernel import OUT_DIR/vmlinux
# and boot it:
#   bin/matchlock vm run --kernel /var/lib/matchlock/kernels/6.1.NNN-matchlock/kernel --drive rootfs.ext4 ...
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
fragment=$here/matchlock.config

say() { printf 'build-kernel: %s\n' "$*"; }
die() {
	printf 'build-kernel: error: %s\n' "$*" >&2
	exit 1
}
usage() {
	sed -n '5,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&"$(( ${1:-2} == 0 ? 1 : 2 ))"
	exit "${1:-2}"
}

check_only=0
jobs=$(nproc)
work=${MATCHLOCK_KERNEL_WORK:-$root/.cache/kernel-build}
out=
while [ $# -gt 0 ]; do
	case $1 in
	--check-config-only) check_only=1 ;;
	--jobs) [ $# -ge 2 ] || usage; jobs=$2; shift ;;
	--work) [ $# -ge 2 ] || usage; work=$2; shift ;;
	--fragment) [ $# -ge 2 ] || usage; fragment=$2; shift ;;
	-h | --help) usage 0 ;;
	-*) printf 'build-kernel: unknown option %s\n' "$1" >&2; usage ;;
	*) [ -z "$out" ] || usage; out=$1 ;;
	esac
	shift
done
[ -n "$out" ] || usage
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs $jobs: give a positive number"
[ -f "$fragment" ] || die "$fragment is missing"

# --- 1. packages: the source, and the tools Kconfig (flex, bison) and the build (bc, libelf, libssl) need
need=(linux-source make gcc flex bison xz-utils)
[ "$check_only" = 1 ] || need+=(bc libelf-dev libssl-dev cpio perl)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}"
	say "installing Debian packages: ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			die "apt-get install ${missing[*]} failed"
	fi
fi

# --- 2. the source tree, unpacked once per tarball; the marker is written last, so an interrupted unpack is redone
tarball=
for f in /usr/src/linux-source-*.tar.xz; do [ -e "$f" ] && tarball=$f; done # the last, i.e. the newest, version
[ -n "$tarball" ] || die "no /usr/src/linux-source-*.tar.xz although linux-source is installed: reinstall it"
name=$(basename "$tarball" .tar.xz)
src=$work/$name
mkdir -p "$work"
exec 9>"$work/.lock"
flock 9 # one unpack at a time; the tree is then only read
stamp="$(stat -c '%s %Y' "$tarball") $tarball"
if [ ! -f "$src/.matchlock-unpacked" ] || [ "$(cat "$src/.matchlock-unpacked")" != "$stamp" ]; then
	say "unpacking $tarball into $work (once per version; takes a minute or two)"
	rm -rf "$src" "$src.partial"
	mkdir -p "$src.partial"
	tar -C "$src.partial" --strip-components=1 -xJf "$tarball"
	printf '%s\n' "$stamp" >"$src.partial/.matchlock-unpacked"
	mv "$src.partial" "$src"
fi
flock -u 9

# --- 3. the config: defconfig, our fragment merged over it, olddefconfig to settle dependencies
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=$out/build
mkdir -p "$build"
kmake() { make -C "$src" O="$build" ARCH=x86_64 "$@"; }
say "configuring $name in $build: x86_64_defconfig + $(basename "$fragment")"
kmake -s x86_64_defconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >"$build/merge.log" 2>&1 ||
	{ cat "$build/merge.log" >&2; die "merge_config.sh failed"; }
kmake -s olddefconfig

# --- 4. verify: every CONFIG_X=value of the fragment must be in .config as written
lost=()
unwanted=()
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		grep -qxF -- "$line" "$build/.config" || {
			sym=${line%%=*}
			now=$(grep -E "^$sym=|^# $sym is not set" "$build/.config" || true)
			lost+=("$line (now: ${now:-absent, unknown to this kernel or its dependencies are off})")
		}
		;;
	'# CONFIG_'*' is not set')
		sym=${line#\# }
		sym=${sym%% *}
		if grep -qE "^$sym=" "$build/.config"; then unwanted+=("$sym ($(grep -E "^$sym=" "$build/.config"))"); fi
		;;
	esac
done <"$fragment"
cp "$build/.config" "$out/config"
for u in "${unwanted[@]}"; do say "warning: wanted off but on (something selects it): $u"; done
if [ ${#lost[@]} -gt 0 ]; then
	printf 'build-kernel: error: %d option(s) of %s did not survive make olddefconfig:\n' "${#lost[@]}" "$fragment" >&2
	printf '  %s\n' "${lost[@]}" >&2
	die "fix the fragment (a missing dependency, or a symbol this kernel does not have); the full config is $out/config"
fi
say "config verified: every option of $(basename "$fragment") is in $out/config"
[ "$check_only" = 0 ] || exit 0

# --- 5. build
say "building vmlinux and bzImage with $jobs jobs (tens of minutes on 2 cores)"
start=$(date +%s)
kmake -j"$jobs" vmlinux bzImage
cp "$build/vmlinux" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
cp "$build/arch/x86/boot/bzImage" "$out/bzImage.tmp" && mv "$out/bzImage.tmp" "$out/bzImage"
say "built in $(($(date +%s) - start)) s: $out/vmlinux, $out/bzImage ($(kmake -s kernelrelease))"
say "import it with: bin/matchlock kernel import $out/vmlinux"
