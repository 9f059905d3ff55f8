/*
 * EL2 exception vectors. Every entry saves a full `TrapFrame` (see
 * exception/dump.rs: x0-x30, sp, elr, spsr, esr, far; 288 bytes) on the current
 * stack and calls `el2_trap_handler(frame, kind)`; if that returns, the (possibly
 * updated) frame is restored and execution resumes with ERET.
 */
.equ TRAP_FRAME_SIZE, 288

.macro VECTOR kind
    .balign 0x80
    sub     sp, sp, #TRAP_FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       el2_trap_common
.endm

/* A guest exit: push the guest's x0/x1 and leave through __guest_exit. */
.macro GUEST_VECTOR kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       __guest_exit
.endm

.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors
el2_vectors:
    /* Current EL with SP_EL0: never used by the hypervisor. */
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    /* Current EL with SP_EL2. */
    VECTOR 4
    VECTOR 5
    VECTOR 6
    VECTOR 7
    /* Lower EL, AArch64: the running guest. */
    GUEST_VECTOR 8
    GUEST_VECTOR 9
    GUEST_VECTOR 10
    GUEST_VECTOR 11
    /* Lower EL, AArch32. */
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15

el2_trap_common:
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
    add     x1, sp, #TRAP_FRAME_SIZE
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el2
    mrs     x2, spsr_el2
    stp     x1, x2, [sp, #256]
    mrs     x1, esr_el2
    mrs     x2, far_el2
    stp     x1, x2, [sp, #272]

    mov     x1, x0
    mov     x0, sp
    bl      el2_trap_handler

    ldp     x1, x2, [sp, #256]
    msr     elr_el2, x1
    msr     spsr_el2, x2
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
    ldr     x30, [sp, #240]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #TRAP_FRAME_SIZE
    eret
