/*
 * Image header and entry points of the hypervisor.
 *
 * The image is position independent (linked at 0, PIE): the primary CPU applies
 * its own R_AARCH64_RELATIVE relocations before any Rust code runs, so loaders can
 * put it anywhere 4 KiB-aligned (QEMU `-kernel` at RAM + 2 MiB, TF-A at its BL33 base).
 * Everything here runs with the MMU off; no memory other than the image is touched.
 */

.equ R_AARCH64_RELATIVE, 1027
.equ BOOT_STACK_SIZE, 0x10000

/* Known state for SCTLR_EL2 with the MMU and caches off: only the RES1 bits. */
.equ SCTLR_EL2_RES1, 0x30c50830

.section .text.head, "ax"
.global _start
_start:
    /* Linux arm64 Image header (Documentation/arch/arm64/booting.rst). */
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset: QEMU loads us at RAM base + 2 MiB */
    .quad   __image_size            /* image_size, including BSS */
    .quad   0xa                     /* flags: little endian, 4 KiB pages, anywhere in RAM */
    .quad   0, 0, 0                 /* res2..res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5: no PE/COFF header */

primary_entry:
    /* Keep the boot arguments: x0/x1 hold the DTB (Linux protocol or TF-A BL33). */
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3

    /* Only touch EL2 registers if we are at EL2; the Rust side reports any other EL. */
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.ne    1f
    ldr     x9, =SCTLR_EL2_RES1
    msr     sctlr_el2, x9
    isb
1:
    /* Apply R_AARCH64_RELATIVE relocations: *(base + offset) = base + addend. */
    adr     x9, _start
    adrp    x10, __rela_start
    add     x10, x10, :lo12:__rela_start
    adrp    x11, __rela_end
    add     x11, x11, :lo12:__rela_end
2:  cmp     x10, x11
    b.hs    4f
    ldp     x12, x13, [x10], #16    /* r_offset, r_info */
    ldr     x14, [x10], #8          /* r_addend */
    cmp     w13, #R_AARCH64_RELATIVE
    b.ne    3f
    add     x14, x14, x9
    str     x14, [x9, x12]
    b       2b
3:  /* Any other relocation type is a build bug: hang where a debugger finds it. */
    wfe
    b       3b
4:
    /* Zero BSS (8-byte aligned by the linker script). */
    adrp    x10, __bss_start
    add     x10, x10, :lo12:__bss_start
    adrp    x11, __bss_end
    add     x11, x11, :lo12:__bss_end
5:  cmp     x10, x11
    b.hs    6f
    str     xzr, [x10], #8
    b       5b
6:
    adrp    x9, boot_stack_top
    add     x9, x9, :lo12:boot_stack_top
    mov     sp, x9
    mov     x29, xzr
    mov     x30, xzr

    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x3, x22
    bl      hypervisor_primary_main
7:  wfe
    b       7b

/*
 * Secondary CPUs enter here through PSCI CPU_ON with x0 = the physical address of
 * their `SecondaryBootArgs` (stack_top, ttbr0, tcr, mair, sctlr, cpu_index).
 * Turn on the MMU with the primary's tables (identity map, so the PC stays valid),
 * then call Rust.
 */
.section .text, "ax"
.global secondary_entry
secondary_entry:
    ldr     x9, =SCTLR_EL2_RES1
    msr     sctlr_el2, x9
    isb
    ldp     x9, x10, [x0]           /* stack_top, ttbr0 */
    ldp     x11, x12, [x0, #16]     /* tcr, mair */
    ldp     x13, x14, [x0, #32]     /* sctlr, cpu_index */
    mov     sp, x9
    msr     mair_el2, x12
    msr     tcr_el2, x11
    msr     ttbr0_el2, x10
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x13
    isb
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x14
    bl      hypervisor_secondary_main
8:  wfe
    b       8b

.section .bss.boot_stack, "aw", %nobits
.balign 16
boot_stack:
    .space  BOOT_STACK_SIZE
.global boot_stack_top
boot_stack_top:
