//! What every CPU needs to run vCPUs, fixed once the VMs start: the CPU's
//! features, the MTE tag-state map, the VMs' event domains and the console's
//! input path. The director owns it; vCPUs, the exit services and the physical
//! interrupt handler only read it (so none of them needs the director).

use super::console_input::ConsoleInput;
use crate::mm::tag_state::TagStateMap;
use crate::mte::MteInfo;
use crate::vm::events::EventDomains;

pub struct Host {
    pub mte: MteInfo,
    pub tag_state: TagStateMap,
    /// `HV_EVENT_*` counters, per group of VMs tied by shared regions.
    pub events: EventDomains,
    /// Number of GIC list registers (the same on every CPU).
    pub list_registers: usize,
    /// The CPU has pointer-authentication keys to switch between vCPUs.
    pub pointer_authentication: bool,
    /// The CPU implements FEAT_WFxT (WFIT/WFET), which guests can see.
    pub wfxt: bool,
    pub console: ConsoleInput,
}
