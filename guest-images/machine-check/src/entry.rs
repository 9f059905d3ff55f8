//! The arm64 `Image` header, the entry code (self-relocation, BSS, boot stack),
//! the EL1 exception vectors and the secondary vCPUs' entry.
//!
//! Both machines enter `_start` the same way (the Linux arm64 boot protocol):
//! EL1h, MMU and caches off, x0 = the device tree. Bare QEMU `-kernel` loads the
//! image at RAM + 2 MiB (its own boot stub sits at the RAM base), the hypervisor at
//! the RAM base: the image is linked at 0 and relocates itself, so it runs at either
//! (or anywhere else a loader picks). Only `R_AARCH64_RELATIVE` relocations exist
//! (xtask checks the ELF when it builds the image); any other hangs here.

use core::arch::global_asm;

/// Size of the register frame the vectors push (x0-x30, ELR, SPSR, padding).
pub const FRAME_SIZE: usize = 272;

global_asm!(
    r#"
.equ RELOCATION_RELATIVE, 1027
.equ RELA_ENTRY_SIZE, 24

.section .text.head, "ax"
.global _start
_start:
    /* arm64 Image header (Documentation/arch/arm64/booting.rst). */
    b       entry                   /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset: at a 2 MiB boundary */
    .quad   __image_size            /* image_size, BSS and stacks included */
    .quad   0xa                     /* flags: little endian, 4 KiB pages, anywhere */
    .quad   0, 0, 0                 /* res2-res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5 */

entry:
    msr     daifset, #0xf
    mov     x19, x0                 /* the device tree, for primary_main */

    /* Relocate: each Elf64_Rela says *(load + offset) = load + addend. */
    adr     x20, _start
    adrp    x21, __rela_start
    add     x21, x21, :lo12:__rela_start
    adrp    x22, __rela_end
    add     x22, x22, :lo12:__rela_end
relocate:
    cmp     x21, x22
    b.hs    relocated
    ldr     x9, [x21]               /* r_offset */
    ldr     w10, [x21, #8]          /* r_info: the type is its low word */
    ldr     x11, [x21, #16]         /* r_addend */
    add     x21, x21, #RELA_ENTRY_SIZE
    cmp     w10, #RELOCATION_RELATIVE
    b.ne    unknown_relocation
    add     x11, x11, x20
    str     x11, [x20, x9]
    b       relocate
unknown_relocation:
    wfe
    b       unknown_relocation
relocated:

    /* BSS is 16-byte aligned at both ends (linker script). */
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
clear_bss:
    cmp     x9, x10
    b.hs    bss_clear
    stp     xzr, xzr, [x9], #16
    b       clear_bss
bss_clear:

    adrp    x9, __boot_stack_top
    add     x9, x9, :lo12:__boot_stack_top
    msr     spsel, #1
    mov     sp, x9
    adrp    x9, exception_vectors
    add     x9, x9, :lo12:exception_vectors
    msr     vbar_el1, x9
    isb
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      primary_main
halt:
    wfe
    b       halt

/*
 * Secondary vCPUs (PSCI CPU_ON), x0 = the context id: the address of their
 * smp::StartBlock, cleaned to the point of coherency because it is read here
 * with the MMU off. Turns the MMU on with vCPU 0's tables and controls (an
 * identity map: the PC stays valid), then calls secondary_main(cpu).
 */
.section .text, "ax"
.global secondary_entry
.balign 8
secondary_entry:
    msr     daifset, #0xf
    ldp     x1, x2, [x0]            /* stack_top, mair */
    ldp     x3, x4, [x0, #16]       /* tcr, ttbr0 */
    ldp     x5, x6, [x0, #32]       /* ttbr1, sctlr */
    ldr     x7, [x0, #48]           /* cpu */
    adrp    x9, exception_vectors
    add     x9, x9, :lo12:exception_vectors
    msr     vbar_el1, x9
    msr     mair_el1, x2
    msr     tcr_el1, x3
    msr     ttbr0_el1, x4
    msr     ttbr1_el1, x5
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    msr     sctlr_el1, x6
    isb
    msr     spsel, #1
    mov     sp, x1
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x7
    bl      secondary_main
    b       halt

/*
 * EL1 vectors: 4 groups (EL1 with SP_EL0, EL1 with SP_EL1, lower EL AArch64,
 * lower EL AArch32) of sync, IRQ, FIQ, SError. Each entry saves x0/x1 and passes
 * its index in x0 to the common code, which saves the rest and calls
 * handle_exception(index, frame). The handler may change ELR and SPSR in the
 * frame; they are restored from it.
 */
.section .text.vectors, "ax"
.balign 2048
.global exception_vectors
exception_vectors:
.irp index, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
.balign 128
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp]
    mov     x0, #\index
    b       vector_common
.endr

vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x9, elr_el1
    mrs     x10, spsr_el1
    stp     x30, x9, [sp, #240]
    str     x10, [sp, #256]
    mov     x1, sp
    bl      handle_exception
    ldp     x30, x9, [sp, #240]
    ldr     x10, [sp, #256]
    msr     elr_el1, x9
    msr     spsr_el1, x10
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x0, x1, [sp]
    add     sp, sp, #{frame}
    eret
"#,
    frame = const FRAME_SIZE,
);

/// The registers the vectors save, in stack order.
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

const _: () = assert!(size_of::<Frame>() == FRAME_SIZE);

/// Where the linker script puts things, at the address the image runs at.
pub mod layout {
    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }

    /// The first byte of the image (the header).
    pub fn image_start() -> u64 {
        (&raw const __image_start) as u64
    }

    /// The end of the image, BSS and stacks included.
    pub fn image_end() -> u64 {
        (&raw const __image_end) as u64
    }
}

unsafe extern "C" {
    /// Entry of secondary vCPUs: x0 = the address of their `smp::StartBlock`.
    pub fn secondary_entry();
}
