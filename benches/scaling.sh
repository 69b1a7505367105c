#!/usr/bin/env bash
# Scaling figures of `arbor serve` on RocksDB, driven over gRPC by `arbor bench`:
#
#   1. by size: workloads s, m, l of shared/workloads (20k, 1M, 10M relationships). Each is
#      imported offline (`arbor import`), then served twice: with the dispatch cache off (cold:
#      every check evaluated from storage, storage caches warmed by the warm-up) and on (warm).
#      Prints import time, size on disk, check throughput and latency for 1 and 8 clients, and
#      the server's resident memory (RSS) idle after opening and after the warm run.
#   2. by org-tree depth: `gen.py --relationships N --org-depth D` for each D. Besides the
#      workload's own mix of checks (its answers verified against gen.py's model), a second set
#      asks only about documents in the deepest organization of each tenant: the direct admin of
#      the tenant's root organization (allowed through every level), and the root admin of the
#      next tenant (refused, after the whole tree is searched).
#
# usage: benches/scaling.sh [--sizes "s m l"] [--depths "2 4 8 12 16"] [--depth-relationships N]
#                           [--duration 10s] [--warmup 3s] [--out FILE]
#   --sizes ""     skips part 1; --depths "" skips part 2
#   --out FILE     also appends the JSON lines of every run to FILE
# m and l are generated once under ~/.cache/arbor-workloads (l: 462 MB, about 30 s).
# ARBOR_BIN=path uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

sizes="s m l"; depths="2 4 8 12 16"; depth_rels=100000; duration=10s; warmup=3s; out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --depths) depths="$2"; shift 2 ;;
        --depth-relationships) depth_rels="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

shared=../shared/workloads
cache="$HOME/.cache/arbor-workloads"
if [[ -n "${ARBOR_BIN:-}" ]]; then
    arbor="$ARBOR_BIN"
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arbor-target}"
    cargo build --release --bin arbor >&2
    arbor="$CARGO_TARGET_DIR/release/arbor"
fi

work=$(mktemp -d)
server=""
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
token="bench-$RANDOM$RANDOM"
results="$work/results.jsonl"
touch "$results"
# shellcheck source=benches/lib.sh
source benches/lib.sh
rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

port=$(free_port); mport=$(free_port)
serve() { # data_dir extra-flags...
    local dir=$1; shift
    "$arbor" serve --grpc-addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" \
        --grpc-preshared-key "$token" --data-dir "$dir" "$@" 2>>"$work/serve.log" &
    server=$!
    wait_port "$port"
}
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; }
bench() { # label workload clients extra...
    local label=$1 wl=$2 c=$3; shift 3
    "$arbor" bench --token "$token" --json --label "$label" --target "127.0.0.1:$port" \
        --workload "$wl" --op check --clients "$c" --duration "$duration" --warmup "$warmup" \
        --metrics-url "http://127.0.0.1:$mport/metrics" "$@" | tail -n 1 >>"$results"
}
import_dir() { # workload data_dir -> seconds
    local t0=$SECONDS
    "$arbor" import --schema "$1/schema.zed" --data-dir "$2" "$1/relationships.txt" >&2
    echo $((SECONDS - t0))
}

# --- 1. by size ----------------------------------------------------------------------------
sizes_table="$work/sizes.tsv"
for size in $sizes; do
    case "$size" in
        xs|s) wl="$shared/data/$size" ;;
        *) wl="$cache/$size"
           [[ -f "$wl/checks.txt" ]] || python3 "$shared/gen.py" --size "$size" --out "$wl" >&2 ;;
    esac
    rels=$(grep -c . "$wl/relationships.txt")
    echo "size $size: importing $rels relationships" >&2
    secs=$(import_dir "$wl" "$work/$size")
    disk=$(du -sm "$work/$size" | cut -f1)
    serve "$work/$size" --dispatch-cache-enabled=false
    idle=$(rss_mib "$server")
    echo "size $size: cold runs" >&2
    for c in 1 8; do bench "size-$size-cold" "$wl" "$c"; done
    stop
    serve "$work/$size"
    echo "size $size: warm runs" >&2
    for c in 1 8; do bench "size-$size-warm" "$wl" "$c"; done
    after=$(rss_mib "$server")
    stop
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$rels" "$secs" "$disk" "$idle" "$after" >>"$sizes_table"
    rm -rf "${work:?}/$size"
done

# --- 2. by depth ---------------------------------------------------------------------------
depths_table="$work/depths.tsv"
for d in $depths; do
    wl="$cache/depth-$d-$depth_rels"
    [[ -f "$wl/checks.txt" ]] ||
        python3 "$shared/gen.py" --relationships "$depth_rels" --org-depth "$d" --out "$wl" >&2
    deep="$work/deep-$d"
    mkdir -p "$deep"
    cp "$wl/schema.zed" "$wl/relationships.txt" "$deep/"
    python3 - "$wl/relationships.txt" "$deep/checks.txt" <<'PY'
import sys
parent, admins, doc_org, public, banned = {}, {}, {}, set(), {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line: continue
    res, subj = line.split("@", 1)
    obj, rel = res.split("#", 1)
    if obj.startswith("organization:") and rel == "parent": parent[obj] = subj
    elif obj.startswith("organization:") and rel == "admin" and subj.startswith("user:"): admins.setdefault(obj, []).append(subj)
    elif obj.startswith("document:") and rel == "org": doc_org[obj] = subj
    elif obj.startswith("document:") and rel == "viewer" and subj == "user:*": public.add(obj)
    elif obj.startswith("document:") and rel == "banned": banned.setdefault(obj, set()).add(subj)
def chain(o):
    seen = [o]
    while seen[-1] in parent: seen.append(parent[seen[-1]])
    return seen
best = {}  # tenant -> (depth, doc, root)
for doc, org in sorted(doc_org.items()):
    if doc in public: continue
    c = chain(org); tenant = doc.split(":", 1)[1].split("_", 1)[0]
    if tenant not in best or len(c) > best[tenant][0]: best[tenant] = (len(c), doc, c[-1])
tenants = sorted(best)
lines = []
for i, t in enumerate(tenants):
    depth, doc, root = best[t]
    ok = [u for u in admins.get(root, []) if u not in banned.get(doc, set())]
    other = best[tenants[(i + 1) % len(tenants)]][2]
    foreign = admins.get(other, [])
    if ok: lines.append(f"{doc}#view@{ok[0]}")
    if foreign and other != root: lines.append(f"{doc}#view@{foreign[0]}")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print(f"{len(lines)} deep checks, deepest chain {max(v[0] for v in best.values())} orgs", file=sys.stderr)
PY
    echo "depth $d: importing" >&2
    import_dir "$wl" "$work/depth-$d" >/dev/null
    serve "$work/depth-$d" --dispatch-cache-enabled=false
    bench "depth-$d-mix-cold" "$wl" 1
    bench "depth-$d-deep-cold" "$deep" 1 --verify 0 --answers-out "$work/deep-$d.answers"
    stop
    serve "$work/depth-$d"
    bench "depth-$d-mix-warm" "$wl" 1
    bench "depth-$d-deep-warm" "$deep" 1 --verify 0
    stop
    reached=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["depth"]["max_reached"]["organization"])' "$wl/meta.json" "$d" 2>/dev/null || echo "$d")
    answers=$(cut -f2 "$work/deep-$d.answers" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
    printf '%s\t%s\t%s\t%s\n' "$d" "$(grep -c . "$wl/relationships.txt")" "$reached" "$answers" >>"$depths_table"
    rm -rf "${work:?}/depth-$d"
done

[[ -n "$out" ]] && cat "$results" >>"$out"
python3 - "$results" "$sizes_table" "$depths_table" <<'PY'
import json, os, sys
runs = {}
for l in open(sys.argv[1]):
    if l.startswith("{"):
        r = json.loads(l); runs[(r["label"], r["clients"])] = r
def cell(label, c):
    r = runs.get((label, c))
    if not r: return "-"
    e = f" E{r['errors']}" if r["errors"] else ""
    return f"{r['items_per_s']:.0f}/s p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f}{e}"
if os.path.exists(sys.argv[2]):
    print("CheckPermission by workload size (RocksDB; checks/s, latency in ms; RSS in MiB)")
    hdr = f"{'size':<5}{'relationships':>14}{'import s':>9}{'disk MiB':>9}{'cold, 1 client':>36}{'cold, 8 clients':>36}{'warm, 1 client':>36}{'warm, 8 clients':>36}{'RSS idle':>9}{'RSS warm':>9}{'MiB/M rels':>11}"
    print(hdr); print("-" * len(hdr))
    for line in open(sys.argv[2]):
        size, rels, secs, disk, idle, after = line.split()
        per_m = float(after) / (int(rels) / 1e6)
        print(f"{size:<5}{int(rels):>14,}{secs:>9}{disk:>9}{cell(f'size-{size}-cold', 1):>36}{cell(f'size-{size}-cold', 8):>36}{cell(f'size-{size}-warm', 1):>36}{cell(f'size-{size}-warm', 8):>36}{idle:>9}{after:>9}{per_m:>11.0f}")
    print()
if os.path.exists(sys.argv[3]):
    print("CheckPermission by org-tree depth (RocksDB, 1 client; checks/s, latency in ms)")
    hdr = f"{'depth':<6}{'reached':>8}{'relationships':>14}{'mix cold':>36}{'mix warm':>36}{'deepest cold':>36}{'deepest warm':>36}   deep answers"
    print(hdr); print("-" * len(hdr))
    for line in open(sys.argv[3]):
        d, rels, reached, answers = line.rstrip("\n").split("\t")
        print(f"{d:<6}{reached:>8}{int(rels):>14,}{cell(f'depth-{d}-mix-cold', 1):>36}{cell(f'depth-{d}-mix-warm', 1):>36}{cell(f'depth-{d}-deep-cold', 1):>36}{cell(f'depth-{d}-deep-warm', 1):>36}   {answers}")
PY
