#!/usr/bin/env bash
# Side-by-side benchmark of Arbor and SpiceDB on one org-hierarchy workload, in one run, driven
# by the same client (`arbor bench`). Prints one table: operation, clients, Arbor cold (dispatch
# cache off, every check evaluated from scratch), Arbor warm (cache on, after a warm-up),
# SpiceDB (the embedded v1.54 peer of shared/workloads, which runs with its caches off), a no-op
# RPC (Arbor answering a one-relationship workload: the cost of the transport itself), and ratios.
#
# usage: benches/compare.sh [xs|s|m|DIR] [--clients "1 8"] [--ops "check bulk-check"]
#                           [--duration 20s] [--warmup 5s] [--no-spicedb]
# Needs ../shared/workloads beside the repository; runs its setup.sh (idempotent) for SpiceDB
# unless --no-spicedb. ARBOR_BIN=path uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

size=s; clients="1 8"; ops="check bulk-check lookup-subjects"; duration=20s; warmup=5s; spicedb=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --clients) clients="$2"; shift 2 ;;
        --ops) ops="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --no-spicedb) spicedb=0; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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
[[ $spicedb == 1 ]] && "$shared/setup.sh" >&2

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
token="bench-$RANDOM$RANDOM"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2; return 1
}

start_arbor() { # name grpc_port metrics_port extra-flags...
    local name=$1 port=$2 mport=$3; shift 3
    "$arbor" serve --grpc-addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" \
        --grpc-preshared-key "$token" --data-dir "$work/$name" "$@" 2>"$work/$name.log" &
    pids+=($!)
    wait_port "$port"
}

# The no-op workload: one relationship, so a check costs almost nothing but the transport.
mkdir -p "$work/micro"
printf 'definition user {}\n\ndefinition doc {\n    relation viewer: user\n    permission view = viewer\n}\n' > "$work/micro/schema.zed"
printf 'doc:d#viewer@user:u\n' > "$work/micro/relationships.txt"
printf 'doc:d#view@user:u\ndoc:d#view@user:x\n' > "$work/micro/checks.txt"
printf 'true\nfalse\n' > "$work/micro/model_answers.txt"

p_spice=$(free_port); p_warm=$(free_port); m_warm=$(free_port); p_cold=$(free_port); m_cold=$(free_port)
p_noop=$(free_port); m_noop=$(free_port)

if [[ $spicedb == 1 ]]; then
    echo "starting SpiceDB on $wl" >&2
    python3 "$shared/spicedb_peer.py" serve "$wl" --port "$p_spice" --token "$token" >"$work/spicedb.json" 2>"$work/spicedb.log" &
    pids+=($!)
fi
start_arbor warm "$p_warm" "$m_warm"
start_arbor cold "$p_cold" "$m_cold" --dispatch-cache-enabled=false
start_arbor noop "$p_noop" "$m_noop" --datastore-engine memory
if [[ $spicedb == 1 ]]; then
    for _ in $(seq 1 3000); do grep -q ready "$work/spicedb.json" 2>/dev/null && break; sleep 0.2; done
    grep -q ready "$work/spicedb.json" || { echo "SpiceDB did not start:" >&2; tail "$work/spicedb.log" >&2; exit 1; }
fi

bench() { "$arbor" bench --token "$token" --json "$@" | tail -n 1; }
echo "loading Arbor" >&2
bench --target "127.0.0.1:$p_warm" --workload "$wl" --load --duration 0s --clients 1 >/dev/null
bench --target "127.0.0.1:$p_cold" --workload "$wl" --load --duration 0s --clients 1 >/dev/null
bench --target "127.0.0.1:$p_noop" --workload "$work/micro" --load --duration 0s --clients 1 >/dev/null

results="$work/results.jsonl"
for op in $ops; do
    for c in $clients; do
        echo "running $op with $c clients" >&2
        bench --label arbor-cold --target "127.0.0.1:$p_cold" --workload "$wl" --op "$op" --clients "$c" --duration "$duration" --metrics-url "http://127.0.0.1:$m_cold/metrics" >>"$results"
        bench --label arbor-warm --target "127.0.0.1:$p_warm" --workload "$wl" --op "$op" --clients "$c" --duration "$duration" --warmup "$warmup" --metrics-url "http://127.0.0.1:$m_warm/metrics" >>"$results"
        [[ $spicedb == 1 ]] && bench --label spicedb --target "127.0.0.1:$p_spice" --workload "$wl" --op "$op" --clients "$c" --duration "$duration" >>"$results"
        if [[ "$op" == check || "$op" == bulk-check ]]; then
            bench --label noop --target "127.0.0.1:$p_noop" --workload "$work/micro" --op "$op" --clients "$c" --duration "$duration" >>"$results"
        fi
    done
done

python3 - "$results" "$wl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["op"], r["clients"]), {})[r["label"]] = r
print(f"workload: {sys.argv[2]}  (items/s; p50 ms in brackets; errors counted)")
hdr = f"{'op':<16}{'clients':>8}{'arbor cold':>20}{'arbor warm':>20}{'spicedb':>20}{'no-op rpc':>20}{'warm/spicedb':>14}{'cold/spicedb':>14}{'warm/no-op':>12}{'hit':>7}{'RSS MiB':>9}"
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
    rss = f"{w['rss_mib']:.0f}" if w and w.get("rss_mib") is not None else "-"
    print(f"{op:<16}{c:>8}{cell(k):>20}{cell(w):>20}{cell(s):>20}{cell(n):>20}{ratio(w, s):>14}{ratio(k, s):>14}{ratio(w, n):>12}{hit:>7}{rss:>9}")
PY
