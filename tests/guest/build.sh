#!/usr/bin/env bash
# Builds the QEMU test guest from Debian packages and caches it.
#
#   tests/guest/build.sh [CACHE_DIR]     (default: $XHA_TEST_GUEST_DIR, else
#                                         /var/cache/xha-test-guest)
#
# Output, in CACHE_DIR/<key>/ where <key> names the kernel and busybox
# package versions: vmlinux (uncompressed, boots directly as PVH under
# -M microvm), initrd.gz (busybox-static + the virtio/ACPI-button modules +
# tests/guest/init), and a `ready` marker written last. CACHE_DIR/current is
# a symlink to the newest build; tests and the QEMU driver's probe use it.
# Idempotent: a complete build for the same versions is reused; nothing is
# installed on the host (the packages are only downloaded and unpacked).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:-${XHA_TEST_GUEST_DIR:-/var/cache/xha-test-guest}}"

# The kernel the linux-image-amd64 metapackage points at, e.g. linux-image-6.1.0-57-amd64.
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1
}
kpkg="$(kernel_pkg)"
if [ -z "$kpkg" ]; then
  apt-get update -qq   # a fresh machine without package lists
  kpkg="$(kernel_pkg)"
fi
[ -n "$kpkg" ] || { echo "build.sh: no linux-image-6.1.0-*-amd64 package known to apt (apt-get update?)" >&2; exit 1; }
kver="$(apt-cache policy "$kpkg" | sed -n 's/^ *Candidate: //p')"
bver="$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')"
initsum="$(cat "$here/init" "$here/build.sh" | sha256sum | cut -c1-12)"
key="${kpkg#linux-image-}_${kver}_busybox_${bver}_init_${initsum}"
key="${key//[:+~]/_}"
out="$cache/$key"
if [ -f "$out/ready" ]; then
  ln -sfn "$key" "$cache/current"
  echo "test guest cached: $out"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"
cd "$work"
apt-get download -q -o APT::Sandbox::User=root "$kpkg" busybox-static >/dev/null
dpkg-deb -x linux-image-*.deb k
dpkg-deb -x busybox-static_*.deb bb
rm -f ./*.deb
kdir="$(ls -d k/lib/modules/*)"
krel="$(basename "$kdir")"

# vmlinuz is a bzImage holding an XZ stream; the stream (up to its end,
# trailing bytes ignored) is the ELF vmlinux.
off="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "k/boot/vmlinuz-$krel" | head -n1 | cut -d: -f1)"
tail -c +"$((off + 1))" "k/boot/vmlinuz-$krel" | xz -dcq > vmlinux 2>/dev/null || true
head -c 4 vmlinux | grep -q ELF || { echo "build.sh: could not extract vmlinux" >&2; exit 1; }

# Initramfs: busybox, the modules in load order, /init.
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,mnt,modules}
cp bb/bin/busybox "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
# Load order matters (dependencies first, as in modules.dep); a module that is built in is
# simply absent from the package and skipped.
for m in virtio_ring virtio virtio_mmio virtio_pci_legacy_dev virtio_pci_modern_dev \
         virtio_pci virtio_blk button evdev; do
  f="$(find "$kdir" -name "$m.ko" -o -name "$m.ko.xz" | head -n1)"
  [ -n "$f" ] || continue
  case "$f" in *.xz) xz -dc "$f" > "$root/modules/$m.ko" ;; *) cp "$f" "$root/modules/$m.ko" ;; esac
  echo "$m" >> "$root/modules/order"
done
(cd "$root" && find . | "$root/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -9 > initrd.gz

# Some initrd sizes hang this kernel under QEMU's microvm for ever, right
# after "ACPI: Core revision" (measured: 1130091 bytes hangs every boot, the
# same file with 4096 zero bytes appended boots every time; the kernel
# ignores zero padding after an initramfs). So: pad to a multiple of 64 KiB
# and, where QEMU is installed, boot the guest once and add padding until it
# reaches /init.
boots() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 || return 0
  # tsc_early_khz as the QEMU driver passes it (without it TCG boots hang too).
  local khz
  khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000 + 0.5; exit }' /proc/cpuinfo)
  # The machine as the QEMU driver has it (no PIT, no 8259: with them a
  # PIT tick at the kernel's first interrupt enable panics the guest;
  # docs/vm-drivers.md, "The boot hang").
  timeout 30 qemu-system-x86_64 -M microvm,pit=off,pic=off -accel tcg -m 128 -smp 1 -nodefaults \
    -no-user-config -display none -serial stdio -kernel vmlinux -initrd initrd.gz \
    -append "console=ttyS0 quiet tsc_early_khz=$khz xha.stamp=0 xha.halt_after=0" 2>/dev/null | grep -q "xha-guest: init"
}
size=$(stat -c %s initrd.gz)
size=$(( (size / 65536 + 1) * 65536 ))
for try in 1 2 3 4; do
  truncate -s "$size" initrd.gz
  if boots; then break; fi
  echo "build.sh: the guest did not reach /init with a $size-byte initrd; padding more" >&2
  [ "$try" = 4 ] && { echo "build.sh: the test guest does not boot" >&2; exit 1; }
  size=$((size + 65536))
done

mkdir -p "$out.tmp"
mv vmlinux initrd.gz "$out.tmp/"
printf 'kernel %s %s\nbusybox %s\n' "$kpkg" "$kver" "$bver" > "$out.tmp/versions"
touch "$out.tmp/ready"
rm -rf "$out"
mv "$out.tmp" "$out"
ln -sfn "$key" "$cache/current"
# Older builds (other package versions or scripts) are not used any more.
for old in "$cache"/*_init_*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "test guest built: $out ($(du -sh "$out" | cut -f1))"
