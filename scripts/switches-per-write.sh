#!/usr/bin/env bash
# What a write costs a running process lab's nodes in hand-offs between threads: the context
# switches of every thread of every node process (from /proc/PID/task/TID/status), counted over
# one write-only `labctl bench http` run and divided by the writes it made, by thread name.
# On a virtual machine each switch is dear (a wake-up is an interrupt between virtual CPUs), so
# this count moves with the nodes' CPU per write and is far steadier than a throughput figure.
#
#   scripts/switches-per-write.sh LAB [CLIENTS] [SECONDS]
#
# LAB is a lab started with `labctl up FILE --runtime process` (labctl on PATH, or
# LABCTL=path/to/labctl). The bench registers its own users, so the script can run again.
set -euo pipefail
lab=${1:?usage: scripts/switches-per-write.sh LAB [CLIENTS] [SECONDS]}
clients=${2:-1}
seconds=${3:-8}
labctl=${LABCTL:-labctl}
command -v "$labctl" > /dev/null || { echo "no $labctl: put labctl on PATH or set LABCTL" >&2; exit 2; }
status=$("$labctl" status "$lab" --json) || exit 1   # labctl said why
pids=$(printf '%s' "$status" | python3 -c '
import json, sys
status = json.load(sys.stdin)
print(" ".join(str(a["pid"]) for a in status["addresses"].values()
               if a.get("pid") and a.get("state") == "running"))')
[ -n "$pids" ] || { echo "lab $lab has no running node processes (process runtime only)" >&2; exit 1; }
snapshot() {
  for pid in $pids; do
    for task in /proc/"$pid"/task/*; do
      printf '%s %s %s %s\n' "$pid/${task##*/}" "$(tr ' ' _ < "$task/comm")" \
        "$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$task/status")" \
        "$(awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "$task/status")"
    done
  done
}
before=$(mktemp); after=$(mktemp); report=$(mktemp)
trap 'rm -f "$before" "$after" "$report"' EXIT
snapshot > "$before"
"$labctl" bench http "$lab" --clients "$clients" --writes 100 --duration "$seconds" --json > "$report"
snapshot > "$after"
python3 - "$before" "$after" "$report" <<'PY'
import collections, json, sys
def load(path):
    rows = {}
    for line in open(path):
        task, name, voluntary, forced = line.split()
        rows[task] = (name, int(voluntary) + int(forced))
    return rows
before, after = load(sys.argv[1]), load(sys.argv[2])
writes = json.load(open(sys.argv[3]))["writes"]
if not writes["count"]:
    sys.exit("the bench made no write")
by_name = collections.Counter()
for task, (name, switches) in after.items():
    if task in before:
        by_name[name] += switches - before[task][1]
total = sum(by_name.values())
print(f"{writes['count']} writes ({writes['per_s']:.0f}/s, p50 {writes['p50_ms']} ms): "
      f"{total / writes['count']:.1f} context switches per write")
for name, switches in by_name.most_common():
    print(f"  {name:<20} {switches / writes['count']:7.1f}")
PY
