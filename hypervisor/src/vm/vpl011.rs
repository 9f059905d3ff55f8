//! An emulated Arm PrimeCell UART (PL011), as Linux's `amba-pl011` driver and
//! its `pl011` earlycon drive it (Arm DDI 0183, "PrimeCell UART (PL011)
//! Technical Reference Manual", chapter "Programmers Model"). The guest
//! machine has one where QEMU's `virt` does: [`UART_BASE`](hv_abi::machine::UART_BASE),
//! a 4 KiB frame ([`UART_SIZE`]), interrupt [`UART_INTID`](hv_abi::machine::UART_INTID).
//!
//! [`VPl011`] is a pure device model: the runtime hands it each trapped MMIO
//! access by offset and size, feeds it console input with
//! [`push_rx`](VPl011::push_rx), and drives the interrupt line from
//! [`irq_level`](VPl011::irq_level) after every change.
//!
//! Where the model departs from the silicon it follows QEMU's `hw/char/pl011.c`,
//! which Linux is known to run on:
//!
//! - Transmission is instantaneous: a byte written to UARTDR reaches the
//!   output at once, so UARTFR always says TXFE = 1, TXFF = 0, BUSY = 0, and
//!   the transmitter is never "full". As in QEMU, bytes are sent even when
//!   UARTCR.UARTEN or TXE is clear: UARTCR resets with UARTEN = 0 and an
//!   earlycon or bare-metal guest writes to a UART that firmware (here: us)
//!   would normally have enabled.
//! - Baud rate, word format, parity, break and IrDA settings are stored and
//!   read back but change nothing. There are no line errors; the only error
//!   the model raises is an overrun in loopback mode. DMA is not implemented
//!   (UARTDMACR is only stored; Linux uses DMA only when the device tree
//!   names DMA channels, which ours does not).
//! - The modem status inputs (CTS, DSR, DCD, RI) read as 0, as in QEMU.
//!
//! Accesses: Linux's driver reads and writes every register with 16-bit
//! `readw`/`writew` (`vendor_arm` is not `access_32b`), its earlycon writes
//! UARTDR with `writeb` and polls UARTFR with `readl`, and the AMBA bus reads
//! the ID registers with `readl`. So 8-, 16- and 32-bit accesses are accepted
//! at every register's (word-aligned) offset; a narrow read returns the low
//! bits, a narrow write stores its zero-extended value (the PL011 is an APB
//! slave without byte strobes: a write always replaces the whole register).
//! Other sizes and offsets that are not word-aligned are not handled: the
//! runtime should treat them as a bad access. Reserved offsets inside the
//! 4 KiB frame (including the test registers) read as zero and ignore writes.

use hv_abi::machine::UART_SIZE;

/// Register offsets (DDI 0183, "Summary of registers").
pub const UARTDR: u64 = 0x000;
/// UARTRSR on read, UARTECR on write.
pub const UARTRSR: u64 = 0x004;
pub const UARTFR: u64 = 0x018;
pub const UARTILPR: u64 = 0x020;
pub const UARTIBRD: u64 = 0x024;
pub const UARTFBRD: u64 = 0x028;
pub const UARTLCR_H: u64 = 0x02C;
pub const UARTCR: u64 = 0x030;
pub const UARTIFLS: u64 = 0x034;
pub const UARTIMSC: u64 = 0x038;
pub const UARTRIS: u64 = 0x03C;
pub const UARTMIS: u64 = 0x040;
pub const UARTICR: u64 = 0x044;
pub const UARTDMACR: u64 = 0x048;
/// UARTPeriphID0..3 at `0xFE0..=0xFEC`, then UARTPCellID0..3 at `0xFF0..=0xFFC`.
pub const UARTPERIPHID0: u64 = 0xFE0;

/// UARTPeriphID0..3 and UARTPCellID0..3, one byte per word (DDI 0183,
/// "Peripheral Identification Registers" and "PrimeCell Identification
/// Registers"), exactly what QEMU's `pl011` returns: part number 0x011,
/// designer 0x41 (Arm), revision 1, then the PrimeCell signature
/// `0xB105F00D`. Linux's AMBA bus matches the `amba-pl011` driver on the part
/// number and designer (`0x00041011`), and the driver sizes its FIFO from the
/// revision: 16 entries below revision 3, which is what we model.
pub const ID: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

/// UARTFR bits (DDI 0183, "Flag Register, UARTFR").
pub const FR_BUSY: u32 = 1 << 3;
pub const FR_RXFE: u32 = 1 << 4;
pub const FR_TXFF: u32 = 1 << 5;
pub const FR_RXFF: u32 = 1 << 6;
pub const FR_TXFE: u32 = 1 << 7;

/// UARTLCR_H bits (DDI 0183, "Line Control Register, UARTLCR_H").
pub const LCR_H_FEN: u32 = 1 << 4;
/// WLEN = 0b11: 8-bit words.
pub const LCR_H_WLEN_8: u32 = 0b11 << 5;

/// UARTCR bits (DDI 0183, "Control Register, UARTCR").
pub const CR_UARTEN: u32 = 1 << 0;
pub const CR_LBE: u32 = 1 << 7;
pub const CR_TXE: u32 = 1 << 8;
pub const CR_RXE: u32 = 1 << 9;

/// Interrupt bits, the same in UARTIMSC, UARTRIS, UARTMIS and UARTICR (DDI 0183,
/// "Interrupt Mask Set/Clear Register, UARTIMSC" and the three after it).
pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
pub const INT_RT: u32 = 1 << 6;
pub const INT_OE: u32 = 1 << 10;

/// UARTRSR's overrun bit (DDI 0183, "Receive Status Register/Error Clear Register").
pub const RSR_OE: u32 = 1 << 3;

/// The receive FIFO's depth with FIFOs enabled (UARTLCR_H.FEN = 1), matching
/// the revision in [`ID`]. With FEN = 0 the FIFO is a one-character holding
/// register (DDI 0183, "Line Control Register, UARTLCR_H", FEN).
pub const FIFO_DEPTH: usize = 16;

/// Reset values (DDI 0183, "Summary of registers").
const CR_RESET: u32 = CR_RXE | CR_TXE;
const IFLS_RESET: u32 = 0x12;

/// The implemented bits of each register.
const INT_MASK: u32 = 0x7FF;
const CR_MASK: u32 = 0xFF87;

/// The receive FIFO: a ring of up to [`FIFO_DEPTH`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RxFifo {
    data: [u8; FIFO_DEPTH],
    head: usize,
    len: usize,
}

impl RxFifo {
    const fn new() -> Self {
        Self { data: [0; FIFO_DEPTH], head: 0, len: 0 }
    }

    fn push(&mut self, byte: u8) {
        self.data[(self.head + self.len) % FIFO_DEPTH] = byte;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let byte = self.data[self.head];
        self.head = (self.head + 1) % FIFO_DEPTH;
        self.len -= 1;
        Some(byte)
    }
}

/// One emulated PL011.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VPl011 {
    rx: RxFifo,
    rsr: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    ris: u32,
    dmacr: u32,
}

impl Default for VPl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl VPl011 {
    /// A UART in its reset state: FIFOs disabled and empty, UARTCR = 0x300
    /// (TXE, RXE; UARTEN clear), UARTIFLS = 0x12 (both trigger levels at half
    /// full), every interrupt clear and masked.
    pub const fn new() -> Self {
        Self {
            rx: RxFifo::new(),
            rsr: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            ris: 0,
            dmacr: 0,
        }
    }

    /// Back to the reset state; pending input is dropped. (A VM reset builds a new
    /// model; tests and the `vpl011_mmio` fuzz target reset one in place.)
    #[cfg(any(test, fuzzing))]
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The level of UARTINTR, the combined interrupt output (DDI 0183,
    /// "Interrupts", UARTINTR): high while any raw interrupt is unmasked.
    pub fn irq_level(&self) -> bool {
        self.ris & self.imsc != 0
    }

    /// Offers one received byte (console input for the guest). Returns false
    /// when it cannot be taken now, and the caller keeps it and retries after
    /// the guest has read UARTDR: the receive FIFO is full (16 bytes with
    /// UARTLCR_H.FEN, else 1), or loopback (UARTCR.LBE) disconnects the
    /// receiver from the line. The sender is flow-controlled this way instead of
    /// losing bytes to an overrun.
    ///
    /// Raises RXRIS when the FIFO reaches its trigger level, and RTRIS (the
    /// receive timeout) whenever data is waiting: the model has no clock, and
    /// the runtime hands over a burst at a time, after which the line is idle,
    /// so the timeout that real hardware signals after 32 idle bit periods is
    /// taken to have expired at once. Linux enables both RXIM and RTIM and
    /// drains the FIFO on either, so input below the trigger level is not stuck.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        if self.cr & CR_LBE != 0 {
            return false;
        }
        self.receive(byte)
    }

    /// Bytes waiting in the receive FIFO (for tests and the fuzz target).
    #[cfg(any(test, fuzzing))]
    pub fn rx_len(&self) -> usize {
        self.rx.len
    }

    /// The receive FIFO's current depth: [`FIFO_DEPTH`] with FEN, else 1.
    pub fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() { FIFO_DEPTH } else { 1 }
    }

    /// UARTIMSC, the interrupt mask (1 = enabled).
    #[cfg(test)]
    pub fn interrupt_mask(&self) -> u32 {
        self.imsc
    }

    /// UARTCR.
    #[cfg(test)]
    pub fn control(&self) -> u32 {
        self.cr
    }

    /// UARTLCR_H.
    #[cfg(test)]
    pub fn line_control(&self) -> u32 {
        self.lcr_h
    }

    /// (UARTIBRD, UARTFBRD).
    #[cfg(test)]
    pub fn baud_divisor(&self) -> (u32, u32) {
        (self.ibrd, self.fbrd)
    }

    /// UARTIFLS.
    #[cfg(test)]
    pub fn fifo_level_select(&self) -> u32 {
        self.ifls
    }

    /// A guest read of `size` bytes at `offset` into the register frame:
    /// `Some(value)` (zero-extended), or `None` for an access the device does
    /// not decode (see the module documentation). Reading UARTDR pops the
    /// receive FIFO.
    pub fn read(&mut self, offset: u64, size: u8) -> Option<u64> {
        if !decodes(offset, size) {
            return None;
        }
        let value = match offset {
            UARTDR => self.read_data(),
            UARTRSR => self.rsr,
            UARTFR => self.flags(),
            UARTILPR => self.ilpr,
            UARTIBRD => self.ibrd,
            UARTFBRD => self.fbrd,
            UARTLCR_H => self.lcr_h,
            UARTCR => self.cr,
            UARTIFLS => self.ifls,
            UARTIMSC => self.imsc,
            UARTRIS => self.ris,
            UARTMIS => self.ris & self.imsc,
            UARTDMACR => self.dmacr,
            UARTPERIPHID0..UART_SIZE => ID[((offset - UARTPERIPHID0) / 4) as usize].into(),
            // UARTICR is write-only; reserved and test registers read as zero.
            _ => 0,
        };
        Some(u64::from(value) & width_mask(size))
    }

    /// A guest write of `size` bytes at `offset` into the register frame.
    /// Bytes written to UARTDR go to `output`. Returns false for an access the
    /// device does not decode (see the module documentation); writes to
    /// read-only and reserved registers are accepted and ignored.
    pub fn write(&mut self, offset: u64, size: u8, value: u64, output: &mut impl FnMut(u8)) -> bool {
        if !decodes(offset, size) {
            return false;
        }
        let value = (value & width_mask(size)) as u32;
        match offset {
            UARTDR => self.write_data(value as u8, output),
            // UARTECR: any write clears the error flags.
            UARTRSR => self.rsr = 0,
            UARTILPR => self.ilpr = value & 0xFF,
            UARTIBRD => self.ibrd = value & 0xFFFF,
            UARTFBRD => self.fbrd = value & 0x3F,
            UARTLCR_H => self.write_line_control(value & 0xFF),
            UARTCR => self.cr = value & CR_MASK,
            UARTIFLS => {
                self.ifls = value & 0x3F;
                self.reevaluate_rx_level();
            }
            UARTIMSC => self.imsc = value & INT_MASK,
            // Write 1 to clear (DDI 0183, "Interrupt Clear Register, UARTICR").
            UARTICR => self.ris &= !(value & INT_MASK),
            UARTDMACR => self.dmacr = value & 0x7,
            // UARTFR, UARTRIS, UARTMIS and the ID registers are read-only;
            // Linux even writes UARTMIS on purpose (as a delay, for ST parts).
            _ => {}
        }
        true
    }

    fn fifo_enabled(&self) -> bool {
        self.lcr_h & LCR_H_FEN != 0
    }

    /// The receive trigger level in bytes (DDI 0183, "Interrupt FIFO Level
    /// Select Register, UARTIFLS", RXIFLSEL): 1/8, 1/4, 1/2, 3/4 or 7/8 of the
    /// FIFO; the reserved encodings count as 1/2. Without FIFOs, the holding
    /// register being full is the trigger.
    fn rx_trigger(&self) -> usize {
        if !self.fifo_enabled() {
            return 1;
        }
        match (self.ifls >> 3) & 0b111 {
            0b000 => FIFO_DEPTH / 8,
            0b001 => FIFO_DEPTH / 4,
            0b011 => FIFO_DEPTH * 3 / 4,
            0b100 => FIFO_DEPTH * 7 / 8,
            _ => FIFO_DEPTH / 2,
        }
    }

    /// UARTFR (DDI 0183, "Flag Register, UARTFR"). TXFE is always set and
    /// TXFF, BUSY always clear: transmission is instantaneous.
    fn flags(&self) -> u32 {
        let mut flags = FR_TXFE;
        if self.rx.len == 0 {
            flags |= FR_RXFE;
        }
        if self.rx.len == self.rx_capacity() {
            flags |= FR_RXFF;
        }
        flags
    }

    /// A byte arriving at the receiver (from the line or from loopback).
    fn receive(&mut self, byte: u8) -> bool {
        if self.rx.len >= self.rx_capacity() {
            return false;
        }
        let trigger = self.rx_trigger();
        let below = self.rx.len < trigger;
        self.rx.push(byte);
        // RXRIS is raised on the transition to the trigger level (DDI 0183,
        // "Interrupts", UARTRXINTR).
        if below && self.rx.len >= trigger {
            self.ris |= INT_RX;
        }
        self.ris |= INT_RT;
        true
    }

    /// Reading UARTDR (DDI 0183, "Data Register, UARTDR"): the oldest received
    /// byte, with the error bits `[11:8]` clear. RXRIS clears when the FIFO falls
    /// below the trigger level and RTRIS when it empties, as on hardware;
    /// Linux's interrupt handler relies on that, because it never writes
    /// RXIC or RTIC to UARTICR itself. Reading an empty FIFO returns 0.
    fn read_data(&mut self) -> u32 {
        let Some(byte) = self.rx.pop() else {
            return 0;
        };
        if self.rx.len < self.rx_trigger() {
            self.ris &= !INT_RX;
        }
        if self.rx.len == 0 {
            self.ris &= !INT_RT;
        }
        byte.into()
    }

    /// Writing UARTDR: the byte goes out at once. With UARTCR.LBE it is also
    /// looped back to the receiver, as QEMU does; a full receive FIFO then
    /// overruns (UARTRSR.OE and OERIS set, byte lost: DDI 0183, "Receive Status
    /// Register/Error Clear Register").
    ///
    /// TXRIS: the transmit interrupt asserts when the transmit FIFO drains to
    /// its trigger level (DDI 0183, "Interrupts", UARTTXINTR), and here it
    /// drains the moment a byte is written, so every write sets TXRIS again.
    /// It stays set until UARTICR.TXIC clears it; nothing else clears it
    /// (QEMU behaves the same). Like the hardware, the bit is not set by
    /// enabling the UART: it takes a write. That is what Linux expects: its
    /// `pl011_start_tx` first writes characters until UARTFR.TXFF (here: all
    /// of them) and only unmasks TXIM when some are left over; its interrupt
    /// handler writes up to half a FIFO per pass and masks TXIM once the
    /// buffer is empty, never clearing TXIC. A set TXRIS therefore always
    /// means "room to write", and an unmasked TXIM can never wait forever.
    fn write_data(&mut self, byte: u8, output: &mut impl FnMut(u8)) {
        output(byte);
        if self.cr & CR_LBE != 0 && !self.receive(byte) {
            self.rsr |= RSR_OE;
            self.ris |= INT_OE;
        }
        self.ris |= INT_TX;
    }

    /// UARTLCR_H. Switching FIFOs on or off changes the receive depth between
    /// 16 and 1; bytes that no longer fit are dropped, the oldest kept (the
    /// TRM leaves the contents undefined; QEMU flushes them all, but Linux's
    /// startup drains the FIFO anyway, and keeping them loses less input).
    fn write_line_control(&mut self, value: u32) {
        self.lcr_h = value;
        if self.rx.len > self.rx_capacity() {
            self.rx.len = self.rx_capacity();
        }
        self.reevaluate_rx_level();
    }

    /// After the trigger level or FIFO depth changed, RXRIS follows the fill
    /// level against the new trigger and RTRIS clears if nothing is left. The
    /// TRM defines RXRIS by transitions only; re-evaluating cannot strand
    /// data without an interrupt.
    fn reevaluate_rx_level(&mut self) {
        if self.rx.len >= self.rx_trigger() {
            self.ris |= INT_RX;
        } else {
            self.ris &= !INT_RX;
        }
        if self.rx.len == 0 {
            self.ris &= !INT_RT;
        }
    }
}

/// Whether an access of `size` bytes at `offset` is one the device decodes:
/// 8, 16 or 32 bits at a word-aligned offset inside the frame.
fn decodes(offset: u64, size: u8) -> bool {
    matches!(size, 1 | 2 | 4) && offset.is_multiple_of(4) && offset < UART_SIZE
}

fn width_mask(size: u8) -> u64 {
    (1u64 << (8 * u32::from(size))) - 1
}

impl crate::vm::mmio::MmioDevice for VPl011 {
    /// An access the PL011 does not decode (bad offset or size) is a bus error.
    fn mmio_read(&mut self, _window: usize, offset: u64, size: u8, effects: &mut crate::vm::mmio::MmioEffects) -> u64 {
        self.read(offset, size).unwrap_or_else(|| {
            effects.external_abort = true;
            0
        })
    }

    fn mmio_write(
        &mut self,
        _window: usize,
        offset: u64,
        size: u8,
        value: u64,
        effects: &mut crate::vm::mmio::MmioEffects,
    ) {
        let output = &mut effects.output;
        // A full buffer drops the byte: one access never emits more than 8.
        let decoded = self.write(offset, size, value, &mut |byte| {
            let _ = output.try_push(byte);
        });
        effects.external_abort |= !decoded;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A UART with a transmit log.
    struct Harness {
        uart: VPl011,
        sent: Vec<u8>,
    }

    impl Harness {
        fn new() -> Self {
            Self { uart: VPl011::new(), sent: Vec::new() }
        }

        fn read(&mut self, offset: u64) -> u64 {
            self.uart.read(offset, 4).expect("32-bit read")
        }

        /// Linux's `readw`.
        fn readw(&mut self, offset: u64) -> u64 {
            self.uart.read(offset, 2).expect("16-bit read")
        }

        fn write(&mut self, offset: u64, value: u64) {
            let sent = &mut self.sent;
            assert!(self.uart.write(offset, 4, value, &mut |byte| sent.push(byte)));
        }

        /// Linux's `writew`.
        fn writew(&mut self, offset: u64, value: u64) {
            let sent = &mut self.sent;
            assert!(self.uart.write(offset, 2, value, &mut |byte| sent.push(byte)));
        }

        /// What Linux's probe and `pl011_startup` do (16-bit accesses), ending
        /// with FIFOs on, 8N1 at 115200 from 24 MHz, UART enabled, RX and
        /// receive-timeout interrupts unmasked.
        fn linux_startup(&mut self) {
            // AMBA bus: the ID registers, 32-bit.
            for i in 0..8 {
                assert_eq!(self.read(UARTPERIPHID0 + 4 * i), u64::from(ID[i as usize]));
            }
            // pl011_hwinit.
            self.writew(UARTICR, u64::from(INT_OE | 1 << 9 | 1 << 8 | 1 << 7 | INT_RT | INT_RX));
            let _saved_im = self.readw(UARTIMSC);
            self.writew(UARTIMSC, u64::from(INT_RT | INT_RX));
            // pl011_startup.
            self.writew(UARTIFLS, 0x12);
            self.writew(UARTCR, 0);
            self.writew(UARTIBRD, 13);
            self.writew(UARTFBRD, 1);
            self.writew(UARTLCR_H, u64::from(LCR_H_FEN | LCR_H_WLEN_8));
            self.writew(UARTCR, u64::from(CR_UARTEN | CR_TXE | CR_RXE));
            // pl011_enable_interrupts: clear, drain, unmask.
            self.writew(UARTICR, u64::from(INT_RT | INT_RX));
            for _ in 0..2 * FIFO_DEPTH {
                if self.readw(UARTFR) & u64::from(FR_RXFE) != 0 {
                    break;
                }
                self.readw(UARTDR);
            }
            self.writew(UARTIMSC, u64::from(INT_RT | INT_RX));
        }

        /// Linux's `pl011_fifo_to_tty`: read UARTDR until UARTFR.RXFE.
        fn drain(&mut self) -> Vec<u8> {
            let mut got = Vec::new();
            while self.readw(UARTFR) & u64::from(FR_RXFE) == 0 {
                got.push(self.readw(UARTDR) as u8);
            }
            got
        }
    }

    #[test]
    fn id_registers() {
        let mut h = Harness::new();
        let expected = [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1];
        for (i, byte) in expected.into_iter().enumerate() {
            assert_eq!(h.read(0xFE0 + 4 * i as u64), byte, "ID register {i}");
        }
        // What Linux's amba_read_periphid assembles from them.
        let periphid = (0..4).fold(0, |id, i| id | h.read(0xFE0 + 4 * i) << (8 * i));
        let cellid = (0..4).fold(0, |id, i| id | h.read(0xFF0 + 4 * i) << (8 * i));
        assert_eq!(periphid & 0x000F_FFFF, 0x0004_1011, "part 0x011, designer 0x41");
        assert_eq!((periphid >> 20) & 0xF, 1, "revision 1: Linux sizes the FIFO at 16");
        assert_eq!(cellid, 0xB105_F00D);
        // Read-only.
        h.write(0xFE0, 0);
        assert_eq!(h.read(0xFE0), 0x11);
    }

    #[test]
    fn reset_values() {
        let mut h = Harness::new();
        assert_eq!(h.read(UARTFR), u64::from(FR_TXFE | FR_RXFE));
        assert_eq!(h.read(UARTCR), 0x300);
        assert_eq!(h.read(UARTIFLS), 0x12);
        for offset in [UARTRSR, UARTILPR, UARTIBRD, UARTFBRD, UARTLCR_H, UARTIMSC, UARTRIS, UARTMIS, UARTDMACR] {
            assert_eq!(h.read(offset), 0, "{offset:#x}");
        }
        assert!(!h.uart.irq_level());
        assert_eq!(h.uart.rx_capacity(), 1);
        assert_eq!(VPl011::default(), VPl011::new());
    }

    #[test]
    fn linux_probe_sequence() {
        let mut h = Harness::new();
        h.linux_startup();
        assert_eq!(h.uart.control(), CR_UARTEN | CR_TXE | CR_RXE);
        assert_eq!(h.uart.line_control(), LCR_H_FEN | LCR_H_WLEN_8);
        assert_eq!(h.uart.baud_divisor(), (13, 1));
        assert_eq!(h.uart.fifo_level_select(), 0x12);
        assert_eq!(h.uart.interrupt_mask(), INT_RX | INT_RT);
        assert_eq!(h.uart.rx_capacity(), 16);
        assert_eq!(h.readw(UARTFR), u64::from(FR_TXFE | FR_RXFE));
        assert!(!h.uart.irq_level());
        assert!(h.sent.is_empty());
        // Registers read back as written (console setup reads them).
        assert_eq!(h.readw(UARTIBRD), 13);
        assert_eq!(h.readw(UARTFBRD), 1);
        assert_eq!(h.readw(UARTLCR_H), u64::from(LCR_H_FEN | LCR_H_WLEN_8));
        assert_eq!(h.readw(UARTCR), u64::from(CR_UARTEN | CR_TXE | CR_RXE));
    }

    #[test]
    fn register_widths() {
        let mut h = Harness::new();
        h.write(UARTIBRD, 0xFFFF_FFFF);
        h.write(UARTFBRD, 0xFFFF_FFFF);
        h.write(UARTILPR, 0xFFFF_FFFF);
        h.write(UARTIFLS, 0xFFFF_FFFF);
        h.write(UARTIMSC, 0xFFFF_FFFF);
        h.write(UARTDMACR, 0xFFFF_FFFF);
        h.write(UARTCR, 0xFFFF_FFFF);
        h.write(UARTLCR_H, 0xFFFF_FFFF);
        assert_eq!(h.read(UARTIBRD), 0xFFFF);
        assert_eq!(h.read(UARTFBRD), 0x3F);
        assert_eq!(h.read(UARTILPR), 0xFF);
        assert_eq!(h.read(UARTIFLS), 0x3F);
        assert_eq!(h.read(UARTIMSC), 0x7FF);
        assert_eq!(h.read(UARTDMACR), 0x7);
        assert_eq!(h.read(UARTCR), 0xFF87);
        assert_eq!(h.read(UARTLCR_H), 0xFF);
        // Read-only registers ignore writes.
        h.write(UARTFR, 0);
        h.write(UARTRIS, 0x7FF);
        h.write(UARTMIS, 0xFF);
        assert_eq!(h.read(UARTFR), u64::from(FR_TXFE | FR_RXFE));
        assert_eq!(h.read(UARTRIS), 0);
        // UARTICR reads as zero.
        assert_eq!(h.read(UARTICR), 0);
    }

    #[test]
    fn access_sizes() {
        let mut uart = VPl011::new();
        let mut sink = |_: u8| {};
        // 8, 16 and 32 bits everywhere; narrow reads return the low bits.
        assert_eq!(uart.read(UARTCR, 1), Some(0x00));
        assert_eq!(uart.read(UARTCR, 2), Some(0x300));
        assert_eq!(uart.read(UARTCR, 4), Some(0x300));
        assert_eq!(uart.read(UARTFR, 1), Some(0x90));
        assert_eq!(uart.read(0xFFC, 1), Some(0xB1));
        // A narrow write replaces the whole register.
        assert!(uart.write(UARTCR, 1, 0x0301, &mut sink));
        assert_eq!(uart.control(), 0x01);
        assert!(uart.write(UARTCR, 2, 0x1_0301, &mut sink));
        assert_eq!(uart.control(), 0x301);
        // 64-bit, odd sizes and unaligned offsets are not decoded.
        for size in [0, 3, 8, 16] {
            assert_eq!(uart.read(UARTFR, size), None, "size {size}");
            assert!(!uart.write(UARTCR, size, 0, &mut sink), "size {size}");
        }
        for offset in [0x001, 0x002, 0x019, 0x031, 0xFE2] {
            assert_eq!(uart.read(offset, 1), None, "{offset:#x}");
            assert!(!uart.write(offset, 1, 0, &mut sink), "{offset:#x}");
        }
        // Outside the 4 KiB frame.
        assert_eq!(uart.read(UART_SIZE, 4), None);
        assert!(!uart.write(UART_SIZE, 4, 0, &mut sink));
        assert_eq!(uart.control(), 0x301);
    }

    #[test]
    fn reserved_offsets_read_zero_ignore_writes() {
        let mut h = Harness::new();
        for offset in [0x008, 0x00C, 0x010, 0x014, 0x01C, 0x04C, 0x080, 0x08C, 0xFCC, 0xFD0, 0xFDC] {
            h.write(offset, 0xFFFF_FFFF);
            assert_eq!(h.read(offset), 0, "{offset:#x}");
        }
        assert!(h.sent.is_empty());
        assert_eq!(h.uart, VPl011::new());
    }

    #[test]
    fn transmit_in_order() {
        let mut h = Harness::new();
        h.linux_startup();
        for byte in b"Hello, world!\n" {
            assert_eq!(h.readw(UARTFR) & u64::from(FR_TXFF), 0);
            h.writew(UARTDR, u64::from(*byte));
        }
        // earlycon: writeb, then wait for !BUSY with readl.
        assert!(h.uart.write(UARTDR, 1, u64::from(b'!'), &mut |byte| h.sent.push(byte)));
        assert_eq!(h.read(UARTFR) & u64::from(FR_BUSY), 0);
        assert_eq!(h.sent, b"Hello, world!\n!");
        // Only the low byte is data.
        h.write(UARTDR, 0xABCD_0F41);
        assert_eq!(h.sent.last(), Some(&0x41));
        assert_eq!(h.read(UARTFR), u64::from(FR_TXFE | FR_RXFE));
    }

    #[test]
    fn transmit_while_disabled() {
        // Out of reset UARTEN = 0; an earlycon that never enables it still prints.
        let mut h = Harness::new();
        h.write(UARTDR, u64::from(b'a'));
        h.write(UARTCR, 0);
        h.write(UARTDR, u64::from(b'b'));
        assert_eq!(h.sent, b"ab");
    }

    #[test]
    fn receive_below_trigger_level_times_out() {
        let mut h = Harness::new();
        h.linux_startup();
        assert!(h.uart.push_rx(b'x'));
        assert_eq!(h.readw(UARTFR) & u64::from(FR_RXFE), 0);
        // One byte is below the 8-byte trigger: only the receive timeout.
        assert_eq!(h.readw(UARTRIS), u64::from(INT_RT));
        assert_eq!(h.readw(UARTMIS), u64::from(INT_RT));
        assert!(h.uart.irq_level());
        assert_eq!(h.readw(UARTDR), u64::from(b'x'));
        assert_ne!(h.readw(UARTFR) & u64::from(FR_RXFE), 0);
        assert_eq!(h.readw(UARTRIS), 0);
        assert!(!h.uart.irq_level());
        // An empty FIFO reads as 0 and changes nothing.
        assert_eq!(h.readw(UARTDR), 0);
        assert_eq!(h.uart.rx_len(), 0);
    }

    #[test]
    fn receive_trigger_level_and_full_fifo() {
        let mut h = Harness::new();
        h.linux_startup();
        for (i, byte) in (b'a'..).take(FIFO_DEPTH).enumerate() {
            assert!(h.uart.push_rx(byte));
            let rx = h.readw(UARTRIS) & u64::from(INT_RX) != 0;
            assert_eq!(rx, i + 1 >= 8, "RXRIS at {} bytes", i + 1);
        }
        assert_eq!(h.readw(UARTFR) & u64::from(FR_RXFF | FR_RXFE), u64::from(FR_RXFF));
        assert!(!h.uart.push_rx(b'!'), "a full FIFO refuses input");
        assert_eq!(h.uart.rx_len(), FIFO_DEPTH);
        assert_eq!(h.readw(UARTRSR), 0, "no overrun: the sender keeps the byte");
        assert_eq!(h.readw(UARTRIS), u64::from(INT_RX | INT_RT));

        // Reading: RXFF clears at once, RXRIS below the trigger, RTRIS when empty.
        assert_eq!(h.readw(UARTDR), u64::from(b'a'));
        assert_eq!(h.readw(UARTFR) & u64::from(FR_RXFF), 0);
        assert!(h.uart.push_rx(b'!'));
        let mut got = Vec::new();
        while h.uart.rx_len() > 7 {
            got.push(h.readw(UARTDR) as u8);
            let rx = h.readw(UARTRIS) & u64::from(INT_RX) != 0;
            assert_eq!(rx, h.uart.rx_len() >= 8);
        }
        assert_eq!(h.readw(UARTRIS), u64::from(INT_RT));
        got.extend(h.drain());
        assert_eq!(got, b"bcdefghijklmnop!");
        assert_eq!(h.readw(UARTRIS), 0);
        assert!(!h.uart.irq_level());
    }

    #[test]
    fn interrupt_masking_and_clear() {
        let mut h = Harness::new();
        h.linux_startup();
        h.writew(UARTIMSC, 0);
        assert!(h.uart.push_rx(b'1'));
        assert_eq!(h.readw(UARTRIS), u64::from(INT_RT));
        assert_eq!(h.readw(UARTMIS), 0);
        assert!(!h.uart.irq_level(), "masked");
        h.writew(UARTIMSC, u64::from(INT_RT));
        assert!(h.uart.irq_level(), "unmasked");
        // UARTICR is write-1-to-clear: zero bits change nothing.
        h.writew(UARTICR, u64::from(INT_RX | INT_TX));
        assert!(h.uart.irq_level());
        h.writew(UARTICR, u64::from(INT_RT));
        assert_eq!(h.readw(UARTRIS), 0);
        assert!(!h.uart.irq_level());
        // The data is still there.
        assert_eq!(h.drain(), b"1");
    }

    #[test]
    fn trigger_levels() {
        let mut h = Harness::new();
        h.write(UARTLCR_H, u64::from(LCR_H_FEN));
        for (rxiflsel, level) in [(0, 2), (1, 4), (2, 8), (3, 12), (4, 14), (5, 8), (7, 8)] {
            h.write(UARTIFLS, rxiflsel << 3);
            for pushed in 1..=FIFO_DEPTH {
                assert!(h.uart.push_rx(0));
                let rx = h.read(UARTRIS) & u64::from(INT_RX) != 0;
                assert_eq!(rx, pushed >= level, "RXIFLSEL {rxiflsel}, {pushed} bytes");
            }
            h.drain();
        }
        // Lowering the trigger below the fill level raises RXRIS; raising it clears.
        h.write(UARTIFLS, 2 << 3);
        for _ in 0..4 {
            assert!(h.uart.push_rx(0));
        }
        assert_eq!(h.read(UARTRIS) & u64::from(INT_RX), 0);
        h.write(UARTIFLS, 0);
        assert_ne!(h.read(UARTRIS) & u64::from(INT_RX), 0);
        h.write(UARTIFLS, 0x12);
        assert_eq!(h.read(UARTRIS) & u64::from(INT_RX), 0);
    }

    #[test]
    fn fifo_disabled_is_one_byte_deep() {
        let mut h = Harness::new();
        assert!(h.uart.push_rx(b'a'));
        assert_eq!(h.read(UARTFR), u64::from(FR_TXFE | FR_RXFF));
        assert_eq!(h.read(UARTRIS), u64::from(INT_RX | INT_RT), "a full holding register is the trigger");
        assert!(!h.uart.push_rx(b'b'));
        assert_eq!(h.read(UARTDR), u64::from(b'a'));
        assert_eq!(h.read(UARTRIS), 0);
        assert!(h.uart.push_rx(b'b'));

        // Enabling FIFOs keeps the byte and deepens the FIFO.
        h.write(UARTLCR_H, u64::from(LCR_H_FEN | LCR_H_WLEN_8));
        assert_eq!(h.uart.rx_len(), 1);
        assert_eq!(h.read(UARTRIS), u64::from(INT_RT), "1 byte is below the 8-byte trigger");
        for byte in b"cdefghijklmnopq" {
            assert!(h.uart.push_rx(*byte));
        }
        assert!(!h.uart.push_rx(b'r'));
        // Disabling them keeps only the oldest byte.
        h.write(UARTLCR_H, u64::from(LCR_H_WLEN_8));
        assert_eq!(h.uart.rx_len(), 1);
        assert_eq!(h.read(UARTFR), u64::from(FR_TXFE | FR_RXFF));
        assert_eq!(h.read(UARTRIS), u64::from(INT_RX | INT_RT));
        assert_eq!(h.drain(), b"b");
        assert_eq!(h.read(UARTRIS), 0);
    }

    #[test]
    fn fifo_wraps_around() {
        let mut h = Harness::new();
        h.write(UARTLCR_H, u64::from(LCR_H_FEN));
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for round in 0..5u8 {
            for i in 0..11u8 {
                let byte = round * 11 + i;
                assert!(h.uart.push_rx(byte));
                expected.push(byte);
            }
            got.extend(h.drain());
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn transmit_interrupt() {
        let mut h = Harness::new();
        h.linux_startup();
        // Not raised by enabling the UART: it takes a write.
        assert_eq!(h.readw(UARTRIS) & u64::from(INT_TX), 0);
        h.writew(UARTDR, u64::from(b'a'));
        assert_eq!(h.readw(UARTRIS) & u64::from(INT_TX), u64::from(INT_TX));
        assert!(!h.uart.irq_level(), "TXIM masked");

        // Unmasking TXIM with TXRIS set interrupts at once (room to write)...
        h.writew(UARTIMSC, u64::from(INT_RX | INT_RT | INT_TX));
        assert!(h.uart.irq_level());
        assert_eq!(h.readw(UARTMIS), u64::from(INT_TX));
        // ...and writing more keeps it set: the FIFO has drained again.
        h.writew(UARTDR, u64::from(b'b'));
        assert!(h.uart.irq_level());
        // Only UARTICR.TXIC clears it, until the next write.
        h.writew(UARTICR, u64::from(INT_TX));
        assert!(!h.uart.irq_level());
        h.writew(UARTDR, u64::from(b'c'));
        assert!(h.uart.irq_level());
        // Masking TXIM (Linux's pl011_stop_tx) quiets the line.
        h.writew(UARTIMSC, u64::from(INT_RX | INT_RT));
        assert!(!h.uart.irq_level());
        assert_eq!(h.sent, b"abc");
    }

    /// Linux's pl011_start_tx / pl011_int / pl011_tx_chars, against the model:
    /// a long buffer goes out completely and the interrupt ends up quiet.
    #[test]
    fn linux_transmit_never_stalls() {
        let mut h = Harness::new();
        h.linux_startup();
        let message: Vec<u8> = (0..200u8).collect();
        let mut pending = message.as_slice();
        let mut im = INT_RX | INT_RT;

        // pl011_tx_chars(from_irq): half a FIFO per call when called from the
        // interrupt; until UARTFR.TXFF otherwise. Returns whether data is left.
        let tx_chars = |h: &mut Harness, pending: &mut &[u8], from_irq: bool| -> bool {
            let mut budget = FIFO_DEPTH / 2;
            while let Some((&byte, rest)) = pending.split_first() {
                if from_irq {
                    if budget == 0 {
                        break;
                    }
                    budget -= 1;
                } else if h.readw(UARTFR) & u64::from(FR_TXFF) != 0 {
                    break;
                }
                h.writew(UARTDR, u64::from(byte));
                *pending = rest;
            }
            !pending.is_empty()
        };

        // pl011_start_tx_pio: everything fits, since TXFF never sets.
        if tx_chars(&mut h, &mut pending, false) {
            im |= INT_TX;
            h.writew(UARTIMSC, u64::from(im));
        }
        assert!(pending.is_empty());
        assert_eq!(im & INT_TX, 0, "TXIM never needed");
        assert_eq!(h.sent, message);

        // Had TXIM been unmasked with data left, the handler drains it all.
        h.sent.clear();
        let mut pending = message.as_slice();
        im |= INT_TX;
        h.writew(UARTIMSC, u64::from(im));
        let mut passes = 0;
        while h.uart.irq_level() {
            passes += 1;
            assert!(passes < 256, "AMBA_ISR_PASS_LIMIT");
            let status = h.readw(UARTRIS) as u32 & im;
            h.writew(UARTICR, u64::from(status & !(INT_TX | INT_RT | INT_RX)));
            if status & INT_TX != 0 && !tx_chars(&mut h, &mut pending, true) {
                // pl011_stop_tx.
                im &= !INT_TX;
                h.writew(UARTIMSC, u64::from(im));
            }
        }
        assert!(pending.is_empty());
        assert_eq!(h.sent, message);
    }

    /// Linux's interrupt handler never clears RXIC/RTIC: draining must lower the line.
    #[test]
    fn linux_receive_interrupt_handler() {
        let mut h = Harness::new();
        h.linux_startup();
        let im = INT_RX | INT_RT;
        let mut received = Vec::new();
        let input: Vec<u8> = (b'A'..=b'Z').collect();
        let mut pending = input.as_slice();
        while !pending.is_empty() || h.uart.irq_level() {
            // The runtime hands over what fits.
            while let Some((&byte, rest)) = pending.split_first() {
                if !h.uart.push_rx(byte) {
                    break;
                }
                pending = rest;
            }
            assert!(h.uart.irq_level());
            let mut passes = 0;
            let mut status = h.readw(UARTRIS) as u32 & im;
            while status != 0 {
                passes += 1;
                assert!(passes < 256);
                h.writew(UARTICR, u64::from(status & !(INT_TX | INT_RT | INT_RX)));
                if status & (INT_RT | INT_RX) != 0 {
                    received.extend(h.drain());
                }
                status = h.readw(UARTRIS) as u32 & im;
            }
            assert!(!h.uart.irq_level());
        }
        assert_eq!(received, input);
    }

    #[test]
    fn loopback() {
        let mut h = Harness::new();
        h.write(UARTLCR_H, u64::from(LCR_H_FEN));
        h.write(UARTCR, u64::from(CR_UARTEN | CR_TXE | CR_RXE | CR_LBE));
        // Line input is disconnected.
        assert!(!h.uart.push_rx(b'x'));
        // Transmitted bytes come back (and, as in QEMU, still go out).
        for byte in 0..FIFO_DEPTH as u8 {
            h.write(UARTDR, u64::from(byte));
        }
        assert_eq!(h.uart.rx_len(), FIFO_DEPTH);
        assert_eq!(h.read(UARTRSR), 0);
        // One more overruns.
        h.write(UARTDR, 0xFF);
        assert_eq!(h.read(UARTRSR), u64::from(RSR_OE));
        assert_ne!(h.read(UARTRIS) & u64::from(INT_OE), 0);
        assert_eq!(h.sent.len(), FIFO_DEPTH + 1);
        let expected: Vec<u8> = (0..FIFO_DEPTH as u8).collect();
        assert_eq!(h.drain(), expected);
        // UARTECR and UARTICR clear the overrun.
        h.write(UARTRSR, 0);
        assert_eq!(h.read(UARTRSR), 0);
        h.write(UARTICR, u64::from(INT_OE));
        assert_eq!(h.read(UARTRIS) & u64::from(INT_OE), 0);
        // Out of loopback, line input is accepted again.
        h.write(UARTCR, u64::from(CR_UARTEN | CR_TXE | CR_RXE));
        assert!(h.uart.push_rx(b'x'));
    }

    #[test]
    fn reset() {
        let mut h = Harness::new();
        h.linux_startup();
        assert!(h.uart.push_rx(b'x'));
        h.write(UARTDR, 0);
        h.uart.reset();
        assert_eq!(h.uart, VPl011::new());
    }
}
