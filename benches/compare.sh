#!/usr/bin/env bash
# Side-by-side benchmark of Arbor and SpiceDB on one org-hierarchy workload, in one run, driven
# by the same client (`arbor bench`). Prints one table: operation, clients, Arbor cold (dispatch
# cache off, every check evaluated from scratch), Arbor warm (cache on, after a warm-up),
# SpiceDB (the embedded v1.54 peer of shared/workloads, which runs with its caches off), a no-op
# RPC (`grpc.health.v1.Health/Check` on the warm Arbor server, same client: the cost of the
# transport itself; shown on the check rows), and ratios.
#
# Before timing, every check of the workload is asked once of each server (fully consistent) and
# the answers are compared line by line, with each other and with the workload's expected.txt.
#
# usage: benches/compare.sh [xs|s|m|DIR] [--clients "1 8"] [--ops "check bulk-check"]
#                           [--duration 20s] [--warmup 5s] [--answers N] [--no-spicedb]
#   --answers N   compare the answers of the first N checks only (default: all; 0 skips it)
# Needs ../shared/workloads beside the repository. For SpiceDB it runs that folder's setup.sh
# (idempotent); when the folder is read-only, from a copy of its three peer files under
# ~/.cache/arbor-spicedb-peer. ARBOR_BIN=path uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

size=s; clients="1 8"; ops="check bulk-check lookup-subjects"; duration=20s; warmup=5s; spicedb=1; answers=all
while [[ $# -gt 0 ]]; do
    case "$1" in
        --clients) clients="$2"; shift 2 ;;
        --ops) ops="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --answers) answers="$2"; shift 2 ;;
        --no-spicedb) spicedb=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) size="$1"; shift ;;
    esac
done

shared=../shared/workloads
case "$size" in
    xs|s) wl="$shared/data/$size" ;;
    m|l)
        wl="$HOME/.cache/arbor-workloads/$size"
        [[ -f "$wl/checks.txt" ]] || python3 "$shared/gen.py" --size "$size" --out "$wl" ;;
    *) wl="$size" ;;
esac
[[ -f "$wl/checks.txt" ]] || { echo "no workload at $wl" >&2; exit 1; }

if [[ -n "${ARBOR_BIN:-}" ]]; then
    arbor="$ARBOR_BIN"
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arbor-target}"
    cargo build --release --bin arbor >&2
    arbor="$CARGO_TARGET_DIR/release/arbor"
fi
peer="$shared"
if [[ $spicedb == 1 ]]; then
    # setup.sh keeps its venv and SpiceDB's library in .cache/ beside itself.
    if [[ ! -w "$shared" ]]; then
        peer="$HOME/.cache/arbor-spicedb-peer"
        mkdir -p "$peer"
        for f in setup.sh spicedb_peer.py requirements-spicedb.txt; do
            cmp -s "$shared/$f" "$peer/$f" || cp "$shared/$f" "$peer/$f"
        done
    fi
    "$peer/setup.sh" >&2
fi
wl=$(cd "$wl" && pwd)

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
token="bench-$RANDOM$RANDOM"
# shellcheck source=benches/lib.sh
source benches/lib.sh

start_arbor() { # name grpc_port metrics_port extra-flags...
    local name=$1 port=$2 mport=$3; shift 3
    "$arbor" serve --grpc-addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" \
        --grpc-preshared-key "$token" --data-dir "$work/$name" "$@" 2>"$work/$name.log" &
    pids+=($!)
    wait_port "$port"
}

p_spice=$(free_port); p_warm=$(free_port); m_warm=$(free_port); p_cold=$(free_port); m_cold=$(free_port)

if [[ $spicedb == 1 ]]; then
    echo "starting SpiceDB on $wl" >&2
    python3 "$peer/spicedb_peer.py" serve "$wl" --port "$p_spice" --token "$token" >"$work/spicedb.json" 2>"$work/spicedb.log" &
    pids+=($!)
fi
start_arbor warm "$p_warm" "$m_warm"
start_arbor cold "$p_cold" "$m_cold" --dispatch-cache-enabled=false
if [[ $spicedb == 1 ]]; then
    for _ in $(seq 1 3000); do grep -q ready "$work/spicedb.json" 2>/dev/null && break; sleep 0.2; done
    grep -q ready "$work/spicedb.json" || { echo "SpiceDB did not start:" >&2; tail "$work/spicedb.log" >&2; exit 1; }
fi

bench() { "$arbor" bench --token "$token" --json "$@" | tail -n 1; }
echo "loading Arbor" >&2
bench --target "127.0.0.1:$p_warm" --workload "$wl" --load --duration 0s --clients 1 >/dev/null
bench --target "127.0.0.1:$p_cold" --workload "$wl" --load --duration 0s --clients 1 >/dev/null
spice_pid=()
[[ $spicedb == 1 ]] && spice_pid=(--server-pid "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$work/spicedb.json")")

# The same checks asked of every server, answers compared below.
if [[ "$answers" != 0 ]]; then
    limit=(); [[ "$answers" != all ]] && limit=(--answers-limit "$answers")
    echo "asking every check of each server once" >&2
    bench --target "127.0.0.1:$p_warm" --workload "$wl" --duration 0s --clients 1 --answers-out "$work/answers-arbor-warm.txt" "${limit[@]}" >/dev/null
    bench --target "127.0.0.1:$p_cold" --workload "$wl" --duration 0s --clients 1 --answers-out "$work/answers-arbor-cold.txt" "${limit[@]}" >/dev/null
    [[ $spicedb == 1 ]] && bench --target "127.0.0.1:$p_spice" --workload "$wl" --duration 0s --clients 1 --answers-out "$work/answers-spicedb.txt" "${limit[@]}" >/dev/null
fi

results="$work/results.jsonl"
for op in $ops; do
    for c in $clients; do
        echo "running $op with $c clients" >&2
        bench --label arbor-cold --target "127.0.0.1:$p_cold" --workload "$wl" --op "$op" --clients "$c" --duration "$duration" --warmup "$warmup" --metrics-url "http://127.0.0.1:$m_cold/metrics" >>"$results"
        bench --label arbor-warm --target "127.0.0.1:$p_warm" --workload "$wl" --op "$op" --clients "$c" --duration "$duration" --warmup "$warmup" --metrics-url "http://127.0.0.1:$m_warm/metrics" >>"$results"
        [[ $spicedb == 1 ]] && bench --label spicedb --target "127.0.0.1:$p_spice" --workload "$wl" --op "$op" --clients "$c" --duration "$duration" "${spice_pid[@]}" >>"$results"
        if [[ "$op" == check ]]; then
            bench --label noop --target "127.0.0.1:$p_warm" --workload "$wl" --op health --clients "$c" --duration "$duration" --warmup "$warmup" >>"$results"
        fi
    done
done

python3 - "$results" "$wl" "$work" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    op = "check" if r["label"] == "noop" else r["op"]  # the no-op sits on the check rows
    by.setdefault((op, r["clients"]), {})[r["label"]] = r
print(f"workload: {sys.argv[2]}  (items/s; p50 ms in brackets; errors counted)")
hdr = f"{'op':<16}{'clients':>8}{'arbor cold':>20}{'arbor warm':>20}{'spicedb':>20}{'no-op rpc':>20}{'warm/spicedb':>14}{'cold/spicedb':>14}{'warm/no-op':>12}{'p50 w/n-op':>12}{'hit':>7}{'RSS MiB':>9}{'SpiceDB RSS':>12}"
print(hdr); print("-" * len(hdr))
def cell(r):
    if not r: return "-"
    e = f" E{r['errors']}" if r["errors"] else ""
    return f"{r['items_per_s']:.0f} [{r['p50_ms']:.2f}]{e}"
def ratio(a, b):
    if not a or not b or not b["items_per_s"]: return "-"
    return f"{a['items_per_s'] / b['items_per_s']:.1f}x"
for (op, c), g in by.items():
    w, k, s, n = g.get("arbor-warm"), g.get("arbor-cold"), g.get("spicedb"), g.get("noop")
    hit = f"{w['cache_hit_ratio']*100:.0f}%" if w and w.get("cache_hit_ratio") is not None else "-"
    srss = f"{s['rss_mib']:.0f}" if s and s.get("rss_mib") is not None else "-"
    p50r = f"{w['p50_ms'] / n['p50_ms']:.2f}x" if w and n and n["p50_ms"] else "-"
    rss = f"{w['rss_mib']:.0f}" if w and w.get("rss_mib") is not None else "-"
    print(f"{op:<16}{c:>8}{cell(k):>20}{cell(w):>20}{cell(s):>20}{cell(n):>20}{ratio(w, s):>14}{ratio(k, s):>14}{ratio(w, n):>12}{p50r:>12}{hit:>7}{rss:>9}{srss:>12}")

# Answers: each server against the others and against the workload's expected.txt (SpiceDB's).
def answers(path):
    if not os.path.exists(path): return None
    return [l.rstrip("\n").split("\t") for l in open(path)]
got = {k: answers(os.path.join(sys.argv[3], f"answers-{k}.txt")) for k in ("arbor-warm", "arbor-cold", "spicedb")}
exp_path = os.path.join(sys.argv[2], "expected.txt")
if os.path.exists(exp_path):
    got["expected.txt"] = [l.rstrip("\n").split("\t") for l in open(exp_path)]
names = [k for k, v in got.items() if v]
if len(names) > 1:
    print()
    print("answers compared line by line (checks of checks.txt, fully consistent):")
    base = names[0]
    for other in names[1:]:
        a, b = got[base], got[other]
        n = min(len(a), len(b))
        diff = [i for i in range(n) if a[i] != b[i]]
        print(f"  {base} vs {other}: {n - len(diff)}/{n} agree")
        for i in diff[:5]:
            print(f"    line {i + 1}: {a[i][0]}  {base}={a[i][1] if len(a[i]) > 1 else '?'}  {other}={b[i][1] if len(b[i]) > 1 else '?'}")
    if any(v and any(len(x) > 1 and x[1].startswith("error") for x in v) for v in got.values()):
        print("  some checks failed with an error (see the answer files)")
PY
