//! Where a guest's boot images go in its RAM, per the Linux arm64 boot protocol
//! (`Documentation/arch/arm64/booting.rst`): the kernel at a 2 MiB-aligned base
//! plus its `text_offset` (raw binaries without a header at RAM + 0x80000, as QEMU
//! does), the initrd after the kernel's declared footprint, the DTB in the last
//! 2 MiB of RAM (8-byte aligned, not crossing a 2 MiB boundary).

const IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";
const IMAGE_MAGIC_OFFSET: usize = 56;
const RAW_BINARY_OFFSET: u64 = 0x8_0000;
const ALIGN_2M: u64 = 2 * 1024 * 1024;
/// The largest DTB the protocol allows.
pub const MAX_DTB_BYTES: u64 = 2 * 1024 * 1024;

/// What the kernel's header says (or the defaults for a raw binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelHeader {
    pub has_header: bool,
    pub text_offset: u64,
    /// Bytes the kernel occupies once running, BSS included (at least the file size).
    pub footprint: u64,
}

/// Reads the arm64 `Image` header of `image`; a file without the magic is a raw binary.
pub fn kernel_header(image: &[u8]) -> KernelHeader {
    let field = |offset: usize| u64::from_le_bytes(image[offset..offset + 8].try_into().expect("8 bytes"));
    let has_header = image.len() >= 64 && &image[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4] == IMAGE_MAGIC;
    if !has_header {
        return KernelHeader { has_header, text_offset: RAW_BINARY_OFFSET, footprint: image.len() as u64 };
    }
    let image_size = field(16);
    // image_size 0 means an old kernel: text_offset is then 0x80000 by convention.
    let text_offset = if image_size == 0 { RAW_BINARY_OFFSET } else { field(8) };
    KernelHeader { has_header, text_offset, footprint: image_size.max(image.len() as u64) }
}

/// Guest-physical placement of everything a Linux guest boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    pub kernel: u64,
    pub initrd: Option<(u64, u64)>,
    pub dtb: u64,
}

/// Why the images do not fit the VM's RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    TooSmall { needed: u64, ram: u64 },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooSmall { needed, ram } => {
                write!(
                    f,
                    "kernel, initrd and DTB need {} KiB of guest RAM, the VM has {} KiB",
                    needed / 1024,
                    ram / 1024
                )
            }
        }
    }
}

/// Places a kernel (`header`), an initrd of `initrd_len` bytes and a DTB in RAM
/// `[ram_base, ram_base + ram_size)`.
pub fn layout(
    ram_base: u64,
    ram_size: u64,
    header: &KernelHeader,
    initrd_len: Option<u64>,
) -> Result<BootLayout, LayoutError> {
    let kernel = ram_base.next_multiple_of(ALIGN_2M) + header.text_offset;
    let kernel_end = kernel + header.footprint;
    let initrd = initrd_len.map(|len| {
        let start = kernel_end.next_multiple_of(ALIGN_2M);
        (start, start + len)
    });
    let used_end = initrd.map_or(kernel_end, |(_, end)| end);
    let ram_end = ram_base + ram_size;
    let dtb = ram_end.saturating_sub(MAX_DTB_BYTES).max(ram_base);
    if used_end > dtb || dtb + MAX_DTB_BYTES > ram_end {
        return Err(LayoutError::TooSmall { needed: used_end - ram_base + MAX_DTB_BYTES, ram: ram_size });
    }
    Ok(BootLayout { kernel, initrd, dtb })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 64 bytes of Debian's 6.1 arm64 `vmlinuz` (an uncompressed Image):
    /// text_offset 0, image_size 0x22c0000 (example), flags 0xa.
    fn linux_header(text_offset: u64, image_size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&0x91005a4du32.to_le_bytes()); // "MZ" + add x13, x18, #0x16
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&0xau64.to_le_bytes());
        h[56..60].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn linux_image_is_placed_at_its_text_offset_with_initrd_after_its_footprint() {
        let header = kernel_header(&linux_header(0, 0x22c_0000));
        assert_eq!(header, KernelHeader { has_header: true, text_offset: 0, footprint: 0x22c_0000 });
        let placed = layout(0x4000_0000, 512 << 20, &header, Some(0x1234)).unwrap();
        assert_eq!(placed.kernel, 0x4000_0000);
        assert_eq!(placed.initrd, Some((0x4240_0000, 0x4240_1234)));
        assert_eq!(placed.dtb, 0x4000_0000 + (512 << 20) - (2 << 20));
    }

    #[test]
    fn old_headers_and_raw_binaries_use_0x80000() {
        assert_eq!(kernel_header(&linux_header(0x1234, 0)).text_offset, 0x8_0000);
        let raw = kernel_header(&[0u8; 100]);
        assert_eq!(raw, KernelHeader { has_header: false, text_offset: 0x8_0000, footprint: 100 });
        assert_eq!(layout(0x4000_0000, 64 << 20, &raw, None).unwrap().kernel, 0x4008_0000);
    }

    #[test]
    fn too_little_ram_is_an_error() {
        let header = kernel_header(&linux_header(0, 60 << 20));
        // Kernel 60 MiB + initrd 4 MiB + the DTB's 2 MiB do not fit in 64 MiB.
        assert_eq!(
            layout(0x4000_0000, 64 << 20, &header, Some(4 << 20)),
            Err(LayoutError::TooSmall { needed: 66 << 20, ram: 64 << 20 })
        );
    }
}
