//! The emulated PL011 under arbitrary guest MMIO and console input.

#![no_main]

use arbitrary::Arbitrary;
use hv_abi::machine::UART_SIZE;
use hypervisor::vm::vpl011::{FIFO_DEPTH, UARTDR, UARTFR, VPl011};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Offset {
    /// A word-aligned register offset inside the frame (the usual case).
    Register(u16),
    /// Anything.
    Raw(u64),
}

impl Offset {
    fn get(&self) -> u64 {
        match *self {
            Offset::Register(n) => (u64::from(n) * 4) % (UART_SIZE + 8),
            Offset::Raw(offset) => offset,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Read(Offset, u8),
    Write(Offset, u8, u64),
    PushRx(u8),
    Burst(u8),
    Reset,
}

fn size(raw: u8) -> u8 {
    // Mostly the sizes a guest can make, sometimes anything.
    match raw % 8 {
        0 => 1,
        1 => 2,
        2 | 3 => 4,
        4 => 8,
        _ => raw,
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut uart = VPl011::new();
    let mut sent = 0usize;
    for op in ops.iter().take(256) {
        match op {
            Op::Read(offset, raw_size) => {
                let (offset, size) = (offset.get(), size(*raw_size));
                let before = uart.rx_len();
                match uart.read(offset, size) {
                    Some(value) => {
                        assert!(matches!(size, 1 | 2 | 4) && offset % 4 == 0 && offset < UART_SIZE);
                        assert_eq!(value >> (8 * u32::from(size)), 0, "{size}-byte read at {offset:#x}");
                        if offset == UARTDR {
                            assert_eq!(uart.rx_len(), before.saturating_sub(1));
                        } else {
                            assert_eq!(uart.rx_len(), before);
                        }
                    }
                    None => assert_eq!(uart.rx_len(), before),
                }
            }
            Op::Write(offset, raw_size, value) => {
                let (offset, size) = (offset.get(), size(*raw_size));
                let mut out = 0;
                let decoded = uart.write(offset, size, *value, &mut |_| out += 1);
                if !decoded {
                    assert_eq!(out, 0);
                } else if offset == UARTDR {
                    assert_eq!(out, 1);
                }
                sent += out;
            }
            Op::PushRx(byte) => {
                let before = uart.rx_len();
                let taken = uart.push_rx(*byte);
                assert_eq!(uart.rx_len(), before + usize::from(taken));
            }
            Op::Burst(n) => {
                for byte in 0..*n {
                    if !uart.push_rx(byte) {
                        break;
                    }
                }
            }
            Op::Reset => uart.reset(),
        }
        assert!(uart.rx_len() <= uart.rx_capacity());
        assert!(uart.rx_capacity() == 1 || uart.rx_capacity() == FIFO_DEPTH);
        let _ = uart.irq_level();
        // UARTFR never fails to decode and agrees with the FIFO.
        let flags = uart.read(UARTFR, 4).expect("UARTFR");
        assert_eq!(flags & (1 << 4) != 0, uart.rx_len() == 0, "RXFE");
        assert_eq!(flags & (1 << 6) != 0, uart.rx_len() == uart.rx_capacity(), "RXFF");
    }
    let _ = sent;
});
