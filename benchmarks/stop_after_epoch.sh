#!/bin/bash
# Stop a long benchmark cleanly: wait until its run writes an epoch to history.json at
# HH:MM (UTC) or later, then end the benchmark process. The loop writes the epoch checkpoint before
# history.json, so the run resumes from that epoch with `--resume`.
# HH:MM is compared as text within one UTC day: a target past midnight (started at 23:50 for
# 00:10) stops at the first epoch.
#   benchmarks/stop_after_epoch.sh RUN_DIR HH:MM PATTERN
#   e.g. benchmarks/stop_after_epoch.sh ~/.cache/recadapt-bench/runs-bf16/lora 12:30 iisan_quality.py
set -u
history="$1/history.json"; after="$2"; pattern="$3"
epochs() { python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$history" 2>/dev/null || echo 0; }
# the benchmark's processes, not this script or its subshells (their command line holds the pattern)
others() {
  for pid in $(pgrep -f "$pattern"); do
    grep -q stop_after_epoch "/proc/$pid/cmdline" 2>/dev/null || echo "$pid"
  done
}
seen=$(epochs)
while [ -n "$(others)" ]; do
  sleep 15
  now=$(epochs)
  if [ "$now" != "$seen" ]; then
    seen=$now
    if [[ ! $(date -u +%H:%M) < "$after" ]]; then
      kill $(others); echo "stopped after epoch $now at $(date -u)"; exit 0
    fi
  fi
done
echo "the benchmark ended by itself at $(date -u)"
