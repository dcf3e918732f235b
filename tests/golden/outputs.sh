#!/usr/bin/env bash
# Prints, for one evstore binary, the text and --json outputs (and exit codes) of hash, ingest,
# verify, diff, mirror, kb verify and rerun on docs/example-packet and on a drifted copy of it,
# with timestamps and durations masked. Two binaries are output-identical when their transcripts
# are: `diff <(outputs.sh OLD) <(outputs.sh NEW)`. Usage: outputs.sh EVSTORE_BINARY [WORK_DIR]
set -uo pipefail
bin="$(realpath "$1")"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${2:-/tmp/evstore-golden}"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 2
export EVSTORE_NO_PROGRESS=1 EVSTORE_STORE="$work/store" TZ=UTC
cp -R "$repo/docs/example-packet" example-packet
cp -R example-packet drifted
printf '\xef\xbb\xbf' | cat - example-packet/summary.md > drifted/summary.md        # bom
sed -i 's/$/\r/' drifted/commands.sh                                       # crlf
sed -i 's/—/--/' drifted/logs/rehearsal.log                                # typography
sed -i 's/"example_only": true/"example_only": false/' drifted/report.json # edited
rm drifted/logs/stderr.log                                                 # missing
echo extra > drifted/extra.txt                                             # extra
mask() {
  sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/<TIME>/g' \
    -e 's/"(created|ingested_at|started_at|finished_at|at|time|created_at|mirrored_at|verified_at)(_unix_nanos|_nanos)?": ?[0-9]+/"\1\2": <N>/g' \
    -e 's/(record|attestation)("?:? *"?)[0-9a-f]{64}/\1\2<ID>/g' -e 's/evstore-rerun-[A-Za-z0-9]+/evstore-rerun-<R>/g' \
    -e 's/[0-9]+(\.[0-9]+)? ?(ms|s|µs)\b/<DUR>/g' -e 's/"(elapsed|duration)[a-z_]*": ?[0-9.]+/"\1": <N>/g'
}
run() {
  printf '\n$ evstore %s\n' "$*"
  "$bin" "$@" >out 2>err; rc=$?
  mask <out; printf -- '--- stderr\n'; mask <err; printf -- '--- exit %s\n' "$rc"
}
both() { run "$@"; run --json "$@"; }
both hash example-packet
both hash drifted
run ingest example-packet
run --json ingest example-packet
run ingest drifted
run --json ingest drifted
both verify example-packet
both verify drifted
both verify drifted --against example-packet
both verify example-packet --against example-packet
both diff example-packet example-packet
both diff example-packet drifted
both diff ./example-packet drifted
both diff example-packet/HASH_MANIFEST.txt drifted
mkdir kb
both mirror example-packet kb
both kb verify kb
both verify kb/example-packet --kb kb
both rerun example-packet -- bash "$repo/docs/example-packet/rerun.sh" '{out}'
both rerun --expect 0000000000000000000000000000000000000000000000000000000000000000 -- bash "$repo/docs/example-packet/rerun.sh" '{out}'
run runs
both show example-packet
