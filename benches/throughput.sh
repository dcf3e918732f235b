#!/usr/bin/env bash
# End-to-end throughput of the release `evstore` binary against coreutils sha256sum and b3sum.
#
# Builds `cargo build --release`, generates the two deterministic corpora of benches/corpus.py in a
# temp dir (the same as benches/compare.sh):
#   large: 1 GiB as 64 x 16 MiB files; every MiB half pseudo-random bytes, half JSON-lines text
#   small: 20 000 files of 1-8 KiB in 200 folders
# then times, on each corpus, with a warm page cache, best of $RUNS:
#   evstore hash DIR
#   evstore --store S ingest DIR        (S a fresh store made by `evstore init`, not timed)
#   find DIR -type f -print0 | xargs -0 sha256sum > /dev/null
#   find DIR -type f -print0 | xargs -0 b3sum > /dev/null   (skipped if b3sum is unavailable)
# and prints seconds (best run), MB/s (10^6 bytes), files/s and peak RSS (KiB, max over runs; for
# the pipelines, the largest process of the pipeline).
#
# `sync` runs (untimed) before every timed run, so the `syncfs` an ingest performs pays only for
# its own writes. The store lives next to the corpora, on the same filesystem.
#
# Usage: benches/throughput.sh
# Environment:
#   BENCH_TMP   parent of the temp dir            [default: $TMPDIR or /tmp]
#   RUNS        timed runs per command            [default: 3]
#   KEEP=1      keep the temp dir afterwards
#   B3SUM       path to a b3sum binary            [default: PATH, else installed under target/]
#   NO_INSTALL=1  never `cargo install b3sum`
#   SCALE=1     corpus scale (corpus.py --scale), e.g. 0.05 for a smoke run

set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=${RUNS:-3}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}
NO_INSTALL=${NO_INSTALL:-0}

SCALE=${SCALE:-1}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'throughput.sh: %s\n' "$*" >&2; exit 2; }

for tool in python3 sha256sum find xargs; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is required for peak RSS"

# --- build -----------------------------------------------------------------------------------
log "cargo build --release"
(cd "$ROOT" && cargo build --release --locked --quiet)
EVSTORE=$TARGET_DIR/release/evstore
[[ -x $EVSTORE ]] || die "no binary at $EVSTORE"

# --- b3sum -------------------------------------------------------------------------------------
B3SUM=${B3SUM:-}
if [[ -z $B3SUM ]]; then
  if command -v b3sum >/dev/null; then
    B3SUM=$(command -v b3sum)
  elif [[ -x $TARGET_DIR/bench-tools/bin/b3sum ]]; then
    B3SUM=$TARGET_DIR/bench-tools/bin/b3sum
  elif [[ $NO_INSTALL != 1 ]]; then
    log "b3sum not found; cargo install b3sum --locked --root $TARGET_DIR/bench-tools"
    if cargo install b3sum --locked --quiet \
         --root "$TARGET_DIR/bench-tools" --target-dir "$TARGET_DIR/bench-tools/build" >&2; then
      B3SUM=$TARGET_DIR/bench-tools/bin/b3sum
    else
      log "cargo install b3sum failed; the b3sum rows are skipped"
    fi
  fi
fi
[[ -n $B3SUM ]] || log "b3sum unavailable; the b3sum rows are skipped"

# --- corpora -----------------------------------------------------------------------------------
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/evstore-throughput.XXXXXX")
cleanup() {
  if [[ $KEEP == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf -- "$WORK"
  fi
}
trap cleanup EXIT

log "generating corpora in $WORK"
python3 "$ROOT/benches/corpus.py" "$WORK/large" --kind large --scale "$SCALE" >&2
python3 "$ROOT/benches/corpus.py" "$WORK/small" --kind small --scale "$SCALE" >&2
sync

corpus_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}'; }
corpus_files() { find "$1" -type f | wc -l; }

# --- timing ------------------------------------------------------------------------------------
# run_best LABEL CORPUS_DIR FRESH_STORE(0|1) CMD...: time CMD $RUNS times, append one table row.
# In CMD, the word @STORE is replaced by a fresh, initialised store path when FRESH_STORE is 1.
ROWS=()
run_best() {
  local label=$1 dir=$2 fresh=$3
  shift 3
  local bytes files best_ns="" peak=0 all=() run store ns rss start end
  bytes=$(corpus_bytes "$dir")
  files=$(corpus_files "$dir")
  for ((run = 1; run <= RUNS; run++)); do
    local cmd=("$@")
    store=""
    if [[ $fresh == 1 ]]; then
      store=$WORK/store-$run
      rm -rf -- "$store"
      "$EVSTORE" --store "$store" init >/dev/null
      cmd=("${cmd[@]/@STORE/$store}")
    fi
    sync
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$WORK/rss" "${cmd[@]}" >/dev/null
    end=$(date +%s%N)
    ns=$((end - start))
    rss=$(tail -n 1 "$WORK/rss")
    if ((rss > peak)); then peak=$rss; fi
    if [[ -z $best_ns ]] || ((ns < best_ns)); then best_ns=$ns; fi
    all+=("$(awk -v n="$ns" 'BEGIN {printf "%.3f", n / 1e9}')")
    if [[ -n $store ]]; then rm -rf -- "$store"; fi
  done
  ROWS+=("$(awk -v l="$label" -v ns="$best_ns" -v b="$bytes" -v f="$files" -v r="$peak" \
    -v runs="${all[*]}" 'BEGIN {
      s = ns / 1e9
      printf "%-32s %8.3f %9.1f %10.0f %11d   %s\n", l, s, b / 1e6 / s, f / s, r, runs }')")
  log "$label: best $(awk -v n="$best_ns" 'BEGIN {printf "%.3f", n / 1e9}') s"
}

for corpus in large small; do
  dir=$WORK/$corpus
  log "corpus $corpus: $(corpus_files "$dir") files, $(corpus_bytes "$dir") bytes; warming the cache"
  find "$dir" -type f -print0 | xargs -0 cat >/dev/null
  run_best "$corpus: evstore hash" "$dir" 0 "$EVSTORE" hash "$dir"
  run_best "$corpus: evstore ingest" "$dir" 1 "$EVSTORE" --store @STORE ingest "$dir"
  run_best "$corpus: find|xargs sha256sum" "$dir" 0 \
    bash -c 'find "$1" -type f -print0 | xargs -0 sha256sum' _ "$dir"
  if [[ -n $B3SUM ]]; then
    run_best "$corpus: find|xargs b3sum" "$dir" 0 \
      bash -c 'find "$1" -type f -print0 | xargs -0 "$2"' _ "$dir" "$B3SUM"
  fi
done

# --- report ------------------------------------------------------------------------------------
echo
echo "evstore $("$EVSTORE" --version | awk '{print $2}'), $(nproc) CPUs," \
  "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)," \
  "$BENCH_TMP on $(df --output=fstype "$BENCH_TMP" | tail -n 1), best of $RUNS, warm cache"
printf '%-32s %8s %9s %10s %11s   %s\n' "corpus: command" "seconds" "MB/s" "files/s" \
  "peakRSS_KiB" "all runs (s)"
printf '%s\n' "${ROWS[@]}"
