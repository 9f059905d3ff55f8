//! PSCI as the guest sees it (issue 10, item 9): CPU_ON and AFFINITY_INFO of a
//! secondary vCPU through its whole life, CPU_SUSPEND's checks, and every PSCI 1.1
//! function's PSCI_FEATURES answer. Every answer is printed raw.

use fdt::Fdt;
use smccc::psci as ids;

use super::{Outcome, yes_no};
use crate::console::println;
use crate::exceptions::{expect_fault, received, reset_log};
use crate::timer::VIRT_TIMER_INTID;
use crate::{gic, psci, smp, sysreg, timer};

/// MPIDR of no vCPU on either machine (both have 2).
const ABSENT_MPIDR: u64 = 7;
const SMCCC_VERSION: u32 = 0x8000_0000;

/// Every PSCI 1.1 function, for PSCI_FEATURES.
const FUNCTIONS: &[(&str, u32)] = &[
    ("PSCI_VERSION", ids::PSCI_VERSION),
    ("CPU_SUSPEND_32", ids::PSCI_CPU_SUSPEND_32),
    ("CPU_SUSPEND_64", ids::PSCI_CPU_SUSPEND_64),
    ("CPU_OFF", ids::PSCI_CPU_OFF),
    ("CPU_ON_32", ids::PSCI_CPU_ON_32),
    ("CPU_ON_64", ids::PSCI_CPU_ON_64),
    ("AFFINITY_INFO_32", ids::PSCI_AFFINITY_INFO_32),
    ("AFFINITY_INFO_64", ids::PSCI_AFFINITY_INFO_64),
    ("MIGRATE_32", ids::PSCI_MIGRATE_32),
    ("MIGRATE_64", ids::PSCI_MIGRATE_64),
    ("MIGRATE_INFO_TYPE", ids::PSCI_MIGRATE_INFO_TYPE),
    ("MIGRATE_INFO_UP_CPU_32", ids::PSCI_MIGRATE_INFO_UP_CPU_32),
    ("MIGRATE_INFO_UP_CPU_64", ids::PSCI_MIGRATE_INFO_UP_CPU_64),
    ("SYSTEM_OFF", ids::PSCI_SYSTEM_OFF),
    ("SYSTEM_RESET", ids::PSCI_SYSTEM_RESET),
    ("SYSTEM_RESET2_32", ids::PSCI_SYSTEM_RESET2_32),
    ("SYSTEM_RESET2_64", ids::PSCI_SYSTEM_RESET2_64),
    ("MEM_PROTECT", ids::PSCI_MEM_PROTECT),
    ("MEM_PROTECT_CHECK_RANGE_32", ids::PSCI_MEM_PROTECT_CHECK_RANGE_32),
    ("MEM_PROTECT_CHECK_RANGE_64", ids::PSCI_MEM_PROTECT_CHECK_RANGE_64),
    ("PSCI_FEATURES", ids::PSCI_FEATURES),
    ("CPU_FREEZE", ids::PSCI_CPU_FREEZE),
    ("CPU_DEFAULT_SUSPEND_32", ids::PSCI_CPU_DEFAULT_SUSPEND_32),
    ("CPU_DEFAULT_SUSPEND_64", ids::PSCI_CPU_DEFAULT_SUSPEND_64),
    ("NODE_HW_STATE_32", ids::PSCI_NODE_HW_STATE_32),
    ("NODE_HW_STATE_64", ids::PSCI_NODE_HW_STATE_64),
    ("SYSTEM_SUSPEND_32", ids::PSCI_SYSTEM_SUSPEND_32),
    ("SYSTEM_SUSPEND_64", ids::PSCI_SYSTEM_SUSPEND_64),
    ("PSCI_SET_SUSPEND_MODE", ids::PSCI_SET_SUSPEND_MODE),
    ("PSCI_STAT_RESIDENCY_32", ids::PSCI_STAT_RESIDENCY_32),
    ("PSCI_STAT_RESIDENCY_64", ids::PSCI_STAT_RESIDENCY_64),
    ("PSCI_STAT_COUNT_32", ids::PSCI_STAT_COUNT_32),
    ("PSCI_STAT_COUNT_64", ids::PSCI_STAT_COUNT_64),
    ("SMCCC_VERSION", SMCCC_VERSION),
];

pub fn psci(_: &Fdt<'_>) {
    gic::init_for_this_cpu(0);
    println!("psci: PSCI_VERSION 0x{:x}", psci::call32(ids::PSCI_VERSION, 0, 0));
    let (version, fault) = expect_fault(|| psci::call32(SMCCC_VERSION, 0, 0));
    match fault {
        None => println!("psci: SMCCC_VERSION 0x{version:x}"),
        Some(_) => println!("psci: SMCCC_VERSION {}", Outcome(fault)),
    }

    // A second CPU_ON is only compared once vCPU 1 runs: straight after the first,
    // bare QEMU itself answers ON_PENDING or ALREADY_ON depending on timing.
    println!("psci: CPU_ON vCPU 1: {}", smp::cpu_on(1));
    println!("psci: vCPU 1 reported in: {}", yes_no(timer::wait_until(2000, || smp::online(1))));
    println!("psci: CPU_ON vCPU 1 again, running: {}", smp::cpu_on(1));
    println!(
        "psci: AFFINITY_INFO vCPU 0: {}, vCPU 1: {}, MPIDR 0x{ABSENT_MPIDR:x}: {}",
        psci::affinity_info(0),
        psci::affinity_info(1),
        psci::affinity_info(ABSENT_MPIDR)
    );
    println!(
        "psci: CPU_ON MPIDR 0x{ABSENT_MPIDR:x}: {}",
        psci::cpu_on(ABSENT_MPIDR, crate::entry::secondary_entry as *const () as usize as u64, 0)
    );
    smp::post_cpu_off();
    smp::wait_job(2000);
    let off = timer::wait_until(2000, || psci::affinity_info(1) == 1);
    println!("psci: vCPU 1 called CPU_OFF: AFFINITY_INFO {} (OFF reached: {})", psci::affinity_info(1), yes_no(off));
    println!("psci: CPU_ON vCPU 1 after CPU_OFF: {}", smp::cpu_on(1));
    println!("psci: vCPU 1 reported in again: {}", yes_no(timer::wait_until(2000, || smp::online(1))));

    // CPU_SUSPEND: the virtual timer (+50 ms) wakes a suspend that should not
    // have happened, so a wrong answer cannot hang the case.
    reset_log(0);
    gic::enable_private(0, VIRT_TIMER_INTID);
    for power_state in [0x8000_0000u64, 0x0010_0000] {
        timer::virtual_arm_at(timer::deadline_ms(50));
        let answer = psci::call64(ids::PSCI_CPU_SUSPEND_64, power_state, 0, 0);
        timer::virtual_off();
        println!("psci: CPU_SUSPEND power_state 0x{power_state:x} (reserved bits set): {answer}");
    }
    timer::virtual_arm_at(timer::deadline_ms(5));
    let standby = psci::call64(ids::PSCI_CPU_SUSPEND_64, 0, 0, 0);
    sysreg::mask_irqs(false);
    timer::wait_until(200, || received(0, VIRT_TIMER_INTID) > 0);
    sysreg::mask_irqs(true);
    timer::virtual_off();
    println!(
        "psci: CPU_SUSPEND power_state 0 (standby), timer +5 ms: {standby}, timer interrupt taken after: {}",
        yes_no(received(0, VIRT_TIMER_INTID) > 0)
    );

    println!("psci: MIGRATE_INFO_TYPE {}", psci::call32(ids::PSCI_MIGRATE_INFO_TYPE, 0, 0));
    for &(name, id) in FUNCTIONS {
        println!("psci: PSCI_FEATURES {name}: {}", psci::call32(ids::PSCI_FEATURES, id, 0));
    }
}
