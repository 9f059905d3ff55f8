/*
 * Entering and leaving a guest.
 *
 * u64 __guest_run(GuestRegisters *regs)
 *   Saves the hypervisor's callee-saved registers and `regs` on the EL2 stack,
 *   loads the guest's x0-x30, PC (ELR_EL2) and PSTATE (SPSR_EL2) from `regs` and
 *   ERETs. The next exception from the guest arrives at a lower-EL vector with SP
 *   where we left it: `__guest_exit` stores the guest's registers back into `regs`
 *   and returns from `__guest_run` with the vector number (8 = synchronous,
 *   9 = IRQ, 10 = FIQ, 11 = SError).
 *
 * GuestRegisters layout: x0..x30 at 0..240, pc at 248, pstate at 256 (264 bytes).
 */

.section .text.guest_entry, "ax"
.global __guest_run
__guest_run:
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    stp     x0, xzr, [sp, #-16]!

    ldp     x1, x2, [x0, #248]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0, #0]
    eret
    /* No speculation past ERET. */
    dsb     nsh
    isb

/* Entered from the lower-EL vectors with the guest's x0/x1 pushed and x0 = vector. */
.global __guest_exit
__guest_exit:
    ldr     x1, [sp, #16]
    stp     x2, x3, [x1, #16]
    stp     x4, x5, [x1, #32]
    stp     x6, x7, [x1, #48]
    stp     x8, x9, [x1, #64]
    stp     x10, x11, [x1, #80]
    stp     x12, x13, [x1, #96]
    stp     x14, x15, [x1, #112]
    stp     x16, x17, [x1, #128]
    stp     x18, x19, [x1, #144]
    stp     x20, x21, [x1, #160]
    stp     x22, x23, [x1, #176]
    stp     x24, x25, [x1, #192]
    stp     x26, x27, [x1, #208]
    stp     x28, x29, [x1, #224]
    str     x30, [x1, #240]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x1, #0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x1, #248]

    add     sp, sp, #16
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    ret
