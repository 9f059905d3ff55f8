#!/bin/sh
# Runs every fuzz target (or those named) to $RUNS executions (default 10 million),
# one after another on one core, with a debug-assertions build and no sanitizer.
# New inputs go to corpus-grown/<target>/ (not committed); the seeds in
# corpus/<target>/ are read only. A summary line per target goes to logs/summary.txt.
set -u
cd "$(dirname "$0")"
RUNS=${RUNS:-10000000}
TARGETS=${*:-"exit_decode exit_handlers vgic_mmio vpl011_mmio vpsci_call hypercall devicetree vm_config bundle"}
mkdir -p logs
RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none --debug-assertions || exit 1
for target in $TARGETS; do
    mkdir -p "corpus-grown/$target"
    start=$(date +%s)
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --debug-assertions "$target" \
        "corpus-grown/$target" "corpus/$target" -- \
        -runs="$RUNS" -print_final_stats=1 >"logs/$target.log" 2>&1
    status=$?
    end=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$target.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$target.log" | tail -1)
    echo "$target status=$status execs=${execs:-?} seconds=$((end - start)) exec/s=${rate:-?}" | tee -a logs/summary.txt
done
