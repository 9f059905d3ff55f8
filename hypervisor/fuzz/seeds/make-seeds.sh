#!/bin/sh
# Regenerates the device-tree and bundle seeds in corpus/ (the others are
# committed as they are: exit_decode's are real syndromes, the vgic/vpl011/vpsci
# ones random bytes that arbitrary turns into operation sequences).
# Needs qemu-system-aarch64, dtc, cpio and python3. The output differs from the
# committed files byte for byte (QEMU writes fresh /chosen/rng-seed and kaslr-seed
# values, cpio the files' times) but not in structure.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A DTB as QEMU's dumpdtb writes it is padded to 1 MiB: cut it to its blocks and
# fix totalsize, then prefix the 8-byte big-endian load address the target reads.
compact() { # in out addr
    python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
f = struct.unpack(">10I", d[:40])
end = max(f[2] + f[9], f[3] + f[8])
blob = bytearray(d[:end]); blob[4:8] = struct.pack(">I", end)
open(sys.argv[2], "wb").write(struct.pack(">Q", int(sys.argv[3], 0)) + bytes(blob))
PY
}
q() { # name args...
    name=$1; shift
    qemu-system-aarch64 -cpu max -nographic "$@" -machine dumpdtb="$tmp/$name.dtb" >/dev/null 2>&1
    compact "$tmp/$name.dtb" "corpus/devicetree/$name" 0x40000000
}
q virt-gicv3-smp4 -M virt,virtualization=on,mte=on,gic-version=3 -smp 4 -m 2G
q virt-gicv3-smp1 -M virt,virtualization=on,gic-version=3 -smp 1 -m 512M
q virt-gicv3-smp8 -M virt,virtualization=on,mte=on,gic-version=3 -smp 8 -m 4G
q virt-gicv2 -M virt,virtualization=on,gic-version=2 -smp 2 -m 1G
echo hi >"$tmp/initrd"
q virt-secure-initrd -M virt,virtualization=on,mte=on,gic-version=3,secure=on -smp 2 -m 2G \
    -kernel /dev/null -initrd "$tmp/initrd" -append console=ttyAMA0
dtc -q -I dts -O dtb -o "$tmp/tiny.dtb" seeds/tiny.dts
compact "$tmp/tiny.dtb" corpus/devicetree/tiny 0x40000000
# The FVP Base RevC tree, if `cargo xtask test` has fetched it (TF-A loads it at 0x8200_0000).
fvp=../../target/test-fixtures/fvp-base-revc.dtb
[ -f "$fvp" ] && compact "$fvp" corpus/devicetree/fvp-base-revc 0x82000000

# Bundles: GNU cpio's newc (512-byte padded, with and without ./, a directory,
# a symlink and an empty file), and the layout of xtask's own writer.
mkdir -p "$tmp/b/sub"
(
    cd "$tmp/b"
    printf '[vm fresh]\nimage = test-guest.bin\nboot = bare\nmemory = 64M\ncpus = 1\n' >vms.conf
    printf '\000\000\000\024guest' >test-guest.bin
    printf x >sub/a
    ln -s vms.conf link
    : >empty
    printf 'vms.conf\ntest-guest.bin\n' | cpio -o -H newc --quiet >"$tmp/gnu-two-files"
    find . | LC_ALL=C sort | cpio -o -H newc --quiet >"$tmp/gnu-dirs-symlink-dotslash"
)
cp "$tmp/gnu-two-files" "$tmp/gnu-dirs-symlink-dotslash" corpus/bundle/
python3 - <<'PY'
def entry(name, ino, mode, data):
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    h = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
    h += b"\0" * (-len(h) % 4)
    return h + data + b"\0" * (-len(data) % 4)
files = [("vms.conf", b"[vm a]\nimage = g.bin\nmemory = 2M\ncpus = 0\n"), ("g.bin", b"\x01\x02\x03")]
archive = b"".join(entry(n, i + 1, 0o100644, d) for i, (n, d) in enumerate(files))
open("corpus/bundle/xtask-writer", "wb").write(archive + entry("TRAILER!!!", 0, 0, b""))
PY
