//! The thin layer that touches the hardware: system registers, `asm!`, cache and
//! TLB maintenance, exception vectors. Only built for the bare-metal target.

pub mod aarch64;
