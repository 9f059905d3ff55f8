//! Host-side tool: builds the hypervisor image, boots it under QEMU, runs the tests.
//!
//! `cargo xtask build | qemu | test` (see README.md).

mod bench;
mod build;
mod bundle;
mod console_log;
mod differential;
mod fixtures;
mod fvp;
mod guest_images;
mod handoff;
mod hostile_scenarios;
mod initramfs;
#[cfg(test)]
mod layering;
mod options;
mod qemu;
mod scenarios;
mod vm_scenarios;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Build, run and test the MTE hypervisor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the hypervisor (ELF and flat arm64 `Image`).
    Build(build::BuildOptions),
    /// Build and boot the hypervisor under QEMU `virt` with MTE.
    Qemu(qemu::QemuOptions),
    /// Run host unit tests, then every QEMU scenario.
    Test(scenarios::TestOptions),
    /// Write the Arm FVP Base RevC bundle (hypervisor, VMs, DTB, run-fvp.sh, README).
    Fvp(fvp::FvpOptions),
    /// Measure a Linux guest's boot under the hypervisor against a direct QEMU boot.
    Bench(bench::BenchOptions),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<i32> = match cli.command {
        Command::Build(options) => build::build(&options).map(|image| {
            println!("ELF:   {}", image.elf.display());
            println!("Image: {}", image.flat.display());
            0
        }),
        Command::Qemu(options) => qemu::run_interactive(&options),
        Command::Test(options) => scenarios::run_all(&options),
        Command::Fvp(options) => fvp::run(&options),
        Command::Bench(options) => bench::run(&options),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            std::process::exit(2);
        }
    }
}
