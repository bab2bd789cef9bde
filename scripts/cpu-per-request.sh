#!/usr/bin/env bash
# Where a running process lab's CPU goes per request: the CPU time (user + system, from
# /proc/PID/task/TID/stat) of every thread of every node process over one `labctl bench http`
# run, divided by the requests it answered, by node and by kind of thread, with how busy the
# whole machine was. On a machine with fewer cores than the lab's processes, throughput follows
# this figure: comparing two labs' totals tells how far apart their throughputs can be.
#
#   scripts/cpu-per-request.sh LAB [labctl bench http options…]
#
# The options go to the bench (default: 8 clients, 20 % writes, 8 s). LAB is a lab started with
# `labctl up FILE --runtime process` (labctl on PATH, or LABCTL=path/to/labctl). The bench
# registers its own users, so the script can run again. Kinds of thread: main (the driver: the
# protocol, the data plane, ZeroMQ's socket), zmq (ZeroMQ's I/O thread), worker (the async
# runtime's: HTTP and admin), store (the writing SQLite connection), reader (the read pool),
# password (an input node's Argon2 pool: the bench's users registering and logging in).
set -euo pipefail
lab=${1:?usage: scripts/cpu-per-request.sh LAB [labctl bench http options…]}
shift
labctl=${LABCTL:-labctl}
command -v "$labctl" > /dev/null || { echo "no $labctl: put labctl on PATH or set LABCTL" >&2; exit 2; }
status=$("$labctl" status "$lab" --json) || exit 1   # labctl said why
nodes=$(printf '%s' "$status" | python3 -c '
import json, sys
status = json.load(sys.stdin)
print(" ".join(f"{node}:{a['"'"'pid'"'"']}" for node, a in status["addresses"].items()
               if a.get("pid") and a.get("state") == "running"))')
[ -n "$nodes" ] || { echo "lab $lab has no running node processes (process runtime only)" >&2; exit 1; }
snapshot() {
  for node_pid in $nodes; do
    node=${node_pid%%:*} pid=${node_pid##*:}
    for task in /proc/"$pid"/task/*; do
      tid=${task##*/}
      name=$(tr ' ' _ < "$task/comm")
      [ "$tid" = "$pid" ] && name=main
      # Fields 14 and 15 of stat: user and system time in clock ticks (the name, field 2, is
      # taken from comm above, so the fields are counted after its closing parenthesis).
      printf '%s %s %s %s\n' "$node" "$tid" "$name" "$(sed 's/.*) //' "$task/stat" | awk '{ print $12 + $13 }')"
    done
  done
  awk '/^cpu / { print "machine - - " $2 + $3 + $4 + $7 + $8 " " $5 + $6 }' /proc/stat
}
before=$(mktemp); after=$(mktemp); report=$(mktemp)
trap 'rm -f "$before" "$after" "$report"' EXIT
snapshot > "$before"
if [ $# -eq 0 ]; then set -- --clients 8 --duration 8; fi
"$labctl" bench http "$lab" "$@" --json > "$report"
snapshot > "$after"
python3 - "$before" "$after" "$report" "$(getconf CLK_TCK)" <<'PY'
import collections, json, sys
def load(path):
    rows, machine = {}, None
    for line in open(path):
        node, tid, name, *ticks = line.split()
        if node == "machine":
            machine = (int(ticks[0]), int(ticks[1]))
        else:
            rows[(node, tid)] = (name, int(ticks[0]))
    return rows, machine
(before, m0), (after, m1) = load(sys.argv[1]), load(sys.argv[2])
report = json.load(open(sys.argv[3]))
tick_us = 1e6 / int(sys.argv[4])
reads, writes = report["reads"], report["writes"]
requests = reads["count"] + writes["count"]
if not requests:
    sys.exit("the bench answered no request")
def kind(name):
    if name == "main": return "main"
    if name == "store": return "store"
    if name.startswith("store-read"): return "reader"
    if name.startswith("tokio"): return "worker"
    if name.startswith("password"): return "password"
    return "zmq"  # ZeroMQ's I/O and reaper threads keep the process's name
per = collections.defaultdict(float)
for key, (name, ticks) in after.items():
    per[(key[0], kind(name))] += (ticks - before.get(key, (name, 0))[1]) * tick_us / requests
busy, idle = m1[0] - m0[0], m1[1] - m0[1]
print(f"{report['lab']}: {reads['per_s']:.0f} reads/s, {writes['per_s']:.0f} writes/s, "
      f"the machine {100 * busy / max(1, busy + idle):.0f} % busy; the nodes' CPU in µs per request:")
kinds = ["main", "zmq", "worker", "store", "reader", "password"]
print("node " + "".join(f"{k:>9}" for k in kinds) + "   total")
totals = collections.Counter()
for node in sorted({n for n, _ in per}, key=lambda n: (len(n), n)):
    row = [per.get((node, k), 0.0) for k in kinds]
    totals.update(dict(zip(kinds, row)))
    print(f"{node:>4} " + "".join(f"{v:9.1f}" for v in row) + f"   {sum(row):6.1f}")
print(" all " + "".join(f"{totals[k]:9.1f}" for k in kinds) + f"   {sum(totals.values()):6.1f}")
PY
