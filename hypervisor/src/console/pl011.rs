//! Transmit side of an Arm PL011 UART (as left configured by firmware or QEMU).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) [],
    ]
];

register_structs! {
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x38 => imsc: ReadWrite<u32>),
        (0x3c => _reserved2),
        (0x44 => icr: ReadWrite<u32>),
        (0x48 => @END),
    }
}

/// A PL011 at a fixed MMIO address.
pub struct Pl011 {
    registers: *const Registers,
}

// SAFETY: the device is only accessed through volatile MMIO; callers serialise
// whole lines with the console lock, and single register accesses are atomic.
unsafe impl Send for Pl011 {}
// SAFETY: as above.
unsafe impl Sync for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the address of a PL011's registers, mapped as Device memory
    /// (or the MMU off), for as long as this value is used.
    pub const unsafe fn new(base: usize) -> Self {
        Self { registers: base as *const Registers }
    }

    fn registers(&self) -> &Registers {
        // SAFETY: `new`'s contract: `registers` points at the device for our lifetime.
        unsafe { &*self.registers }
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn write_byte(&self, byte: u8) {
        let registers = self.registers();
        while registers.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        registers.dr.set(byte as u32);
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        let registers = self.registers();
        if registers.fr.is_set(FR::RXFE) {
            return None;
        }
        Some(registers.dr.get() as u8)
    }

    /// Interrupts on received data (RX and receive timeout), so input wakes an idle CPU.
    pub fn enable_receive_interrupt(&self) {
        const RXIM_RTIM: u32 = (1 << 4) | (1 << 6);
        let registers = self.registers();
        registers.icr.set(RXIM_RTIM);
        registers.imsc.set(registers.imsc.get() | RXIM_RTIM);
    }

    /// Waits until everything written has left the UART.
    pub fn flush(&self) {
        while self.registers().fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}
