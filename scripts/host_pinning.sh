#!/usr/bin/env bash
# Is the eager step's host time a property of the process's CPU placement? The same lean step
# (scripts/lean_host_time.py --no-profile, one process each) run unpinned and pinned with taskset to
# PINS (default: one core; two cores; eight cores), REPS rounds with the orders interleaved, beside the
# machine's CPU facts (lscpu, the GPU's CPU affinity, steal time over the run) and a host-speed probe
# per process (python scripts/host_probe.py: a fixed count of small CUDA launches and allocations).
#
#   bash scripts/host_pinning.sh RESULTS       # RESULTS/pinning.md, RESULTS/pinning_cpu.txt
set -u
res=${1:?results folder}
BUDGET_S=${BUDGET_S:-300}
mkdir -p "$res"
STAGE_LOG=pinning.log
source scripts/device_env.sh
{
  echo "## CPU"; lscpu 2>&1 | grep -E "Model name|^CPU\(s\)|Thread|Core|Socket|NUMA|MHz|Hypervisor"
  echo "## GPU topology"; nvidia-smi topo -m 2>&1 | head -8
  echo "## cgroup cpu.max"; cat /sys/fs/cgroup/cpu.max 2>&1
} > "$res/pinning_cpu.txt"
steal() { awk '/^cpu /{print $9}' /proc/stat; }
s0=$(steal)
PRECISIONS=${PRECISIONS:-bf16}
for rep in $(seq 1 "${REPS:-3}"); do
  for pin in ${PINS:-none 2 2-3 8-15}; do
    for prec in $PRECISIONS; do
      past "rep $rep pin $pin $prec" && break 3
      run=(python)
      [ "$pin" != none ] && run=(taskset -c "$pin" python)
      probe=$("${run[@]}" scripts/host_probe.py 2>&1 | tail -1)
      line=$("${run[@]}" scripts/lean_host_time.py --precision "$prec" --lean --no-profile 2>&1 \
             | grep -E "host time to issue|step \(CUDA" | tr '\n' ' ')
      echo "| $rep | $pin | $prec | $probe | $line |" | tee -a "$res/pinning_rows.txt"
    done
  done
done
s1=$(steal)
echo "steal jiffies over the run: $((s1 - s0))" >> "$res/pinning_cpu.txt"
echo "done in $(( $(date +%s) - start )) s" | tee -a "$res/$STAGE_LOG"
