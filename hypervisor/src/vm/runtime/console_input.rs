//! Keyboard input from the physical console UART to the one VM that has it (the
//! first one started): bytes wait in a bounded backlog until that VM's PL011
//! has room for them.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::virtual_machine::Vm;

/// Bytes beyond this are dropped: the user is typing into a guest that is not reading.
const BACKLOG_LIMIT: usize = 4096;

pub struct ConsoleInput {
    /// The VM whose PL011 receives console input.
    vm: Mutex<Weak<Vm>>,
    /// Input not yet taken by that VM's UART (its FIFO was full).
    backlog: Mutex<VecDeque<u8>>,
    /// Whether `backlog` holds anything (checked on every UART access).
    waiting: AtomicBool,
}

impl ConsoleInput {
    pub const fn new() -> Self {
        Self { vm: Mutex::new(Weak::new()), backlog: Mutex::new(VecDeque::new()), waiting: AtomicBool::new(false) }
    }

    /// Gives the console to `vm` unless a live VM has it.
    pub fn offer(&self, vm: &Arc<Vm>) {
        let mut console = self.vm.lock();
        if console.upgrade().is_none() {
            *console = Arc::downgrade(vm);
        }
    }

    /// `vm` is going away: if it has the console, nothing reaches it any more.
    /// After this returns, input never takes a new reference to it.
    pub fn withdraw(&self, vm: &Vm) {
        let mut console = self.vm.lock();
        if core::ptr::eq(console.as_ptr(), vm) {
            *console = Weak::new();
        }
    }

    /// Takes every byte the console UART received and feeds the console VM's
    /// PL011; returns that VM so the caller can update its interrupt line.
    pub fn receive(&self) -> Option<Arc<Vm>> {
        {
            let mut backlog = self.backlog.lock();
            crate::console::drain_input(|byte| {
                if backlog.len() < BACKLOG_LIMIT {
                    backlog.push_back(byte);
                }
            });
            self.waiting.store(!backlog.is_empty(), Ordering::Release);
        }
        // Not `if let ... lock().upgrade()`: the guard would live through the block,
        // and delivering takes the same lock.
        let vm = self.vm.lock().upgrade()?;
        self.deliver(&vm);
        Some(vm)
    }

    /// Moves backlog bytes into `vm`'s PL011 while its receive FIFO has room (only
    /// for the console VM).
    pub fn deliver(&self, vm: &Vm) {
        if !self.waiting.load(Ordering::Acquire) {
            return;
        }
        if !core::ptr::eq(self.vm.lock().as_ptr(), vm) {
            return;
        }
        let mut backlog = self.backlog.lock();
        let mut uart = vm.uart.lock();
        while let Some(&byte) = backlog.front() {
            if !uart.push_rx(byte) {
                break;
            }
            backlog.pop_front();
        }
        self.waiting.store(!backlog.is_empty(), Ordering::Release);
    }
}
