//! What the device tree says about the machine: the parts bare QEMU `virt` and
//! the hypervisor's Linux VMs both describe (issue 10, item 1, and the
//! properties guests read to find PSCI, the console, the timer and the GIC).

use fdt::Fdt;

use crate::console::println;
use crate::dtb::cells;

pub fn dtb(tree: &Fdt<'_>) {
    let stdout = tree.find_node("/chosen").and_then(|node| node.property("stdout-path")).and_then(|p| p.as_str());
    println!("dtb: /chosen/stdout-path {}", stdout.unwrap_or("(none)"));
    match tree.find_node("/psci") {
        Some(psci) => {
            let method = psci.property("method").and_then(|p| p.as_str()).unwrap_or("(none)");
            let compatible = psci.compatible().map(|c| c.first()).unwrap_or("(none)");
            println!("dtb: /psci method {method}, compatible {compatible}");
        }
        None => println!("dtb: no /psci"),
    }
    let cpus = tree.cpus().count();
    let methods = tree.cpus().filter_map(|cpu| cpu.property("enable-method")).filter_map(|p| p.as_str());
    let all_psci = tree.cpus().count() == methods.filter(|&m| m == "psci").count();
    println!("dtb: {cpus} cpus, enable-method psci on all: {}", if all_psci { "yes" } else { "no" });
    for region in tree.memory().regions() {
        println!("dtb: memory at 0x{:x}, 0x{:x} bytes", region.starting_address as usize, region.size.unwrap_or(0));
    }
    match tree.find_compatible(&["arm,armv8-timer"]) {
        Some(timer) => {
            // Three cells per interrupt: type (1 = PPI), number, flags.
            let mut intids = [0u32; 8];
            let mut count = 0;
            let value = timer.property("interrupts").map_or(&[][..], |p| p.value);
            for interrupt in value.chunks_exact(12) {
                let mut fields = cells(interrupt);
                let (kind, number) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
                if count < intids.len() {
                    intids[count] = number + if kind == 1 { 16 } else { 32 };
                    count += 1;
                }
            }
            println!("dtb: timer interrupts (INTIDs) {:?}", &intids[..count]);
        }
        None => println!("dtb: no arm,armv8-timer"),
    }
    match tree.find_compatible(&["arm,gic-v3"]) {
        Some(gic) => {
            let mut bases = gic.reg().into_iter().flatten().map(|region| region.starting_address as usize);
            let distributor = bases.next().unwrap_or(0);
            let redistributors = bases.next().unwrap_or(0);
            println!("dtb: arm,gic-v3 distributor 0x{distributor:x}, first redistributor region 0x{redistributors:x}");
        }
        None => println!("dtb: no arm,gic-v3"),
    }
    match tree.find_compatible(&["arm,pl011"]) {
        Some(uart) => {
            let base = uart.reg().into_iter().flatten().next().map_or(0, |r| r.starting_address as usize);
            let interrupt = uart.property("interrupts").map(|p| cells(p.value).nth(1).unwrap_or(0) + 32);
            println!("dtb: arm,pl011 at 0x{base:x}, INTID {}", interrupt.unwrap_or(0));
        }
        None => println!("dtb: no arm,pl011"),
    }
}
