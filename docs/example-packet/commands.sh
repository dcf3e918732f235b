#!/usr/bin/env bash
# commands.sh — transcript of the commands run to produce this packet.
# Harmless to run: it only echoes the recorded commands and uses `test`
# to confirm the evidence each one left behind is present in the packet.
# It writes nothing and needs no network. Prints OVERALL PASS / FAIL.
set -euo pipefail

here="${BASH_SOURCE[0]%/*}"
[[ "$here" == "${BASH_SOURCE[0]}" ]] && here=.
fail=0

step() { # step <n> <evidence> <kind: f=non-empty file, e=empty file> <cmd>
  local n="$1" ev="$2" kind="$3" cmd="$4" ok=0
  printf '$ %s\n' "$cmd"
  case "$kind" in
    f) test -f "$here/$ev" && test -s "$here/$ev" && ok=1 ;;
    e) test -f "$here/$ev" && ! test -s "$here/$ev" && ok=1 ;;
  esac
  if test "$ok" = 1; then
    printf '  [PASS] step %s evidence: %s\n' "$n" "$ev"
  else
    printf '  [FAIL] step %s evidence missing/wrong: %s\n' "$n" "$ev"
    fail=1
  fi
}

echo "== evstore P0 release rehearsal (scratch store in a temp dir) =="
step 1 logs/rehearsal.log f 'T=$(mktemp -d) && evstore init "$T/store"'
step 2 logs/rehearsal.log f 'evstore archive --store "$T/store" fixtures/packet-a'
step 3 logs/rehearsal.log f 'evstore seal --store "$T/store" --manifest HASH_MANIFEST.txt'
step 4 logs/rehearsal.log f 'evstore verify --store "$T/store" --strict-bytes'
step 5 logs/rehearsal.log f 'evstore rollback --store "$T/store" --to before'
step 6 logs/stderr.log e 'evstore verify --store "$T/store" 2> logs/stderr.log'
echo "== CI seal-vs-bytes gate self-test (off-production) =="
step 7 logs/gate/selftest.json f 'evstore gate selftest --json > logs/gate/selftest.json'
echo "== packet =="
step 8 report.json f 'python3 validator/validate_packet.py .'
step 9 summary.md f 'bash rerun.sh "$(mktemp -d)"'

echo "== recorded exit codes (logs/exit_codes.tsv) =="
if test -f "$here/logs/exit_codes.tsv"; then
  while IFS=$'\t' read -r n code cmd; do
    test "$n" = step && continue
    if test "$code" = 0; then
      printf '  [PASS] step %s exit %s\n' "$n" "$code"
    else
      printf '  [FAIL] step %s exit %s (%s)\n' "$n" "$code" "$cmd"
      fail=1
    fi
  done < "$here/logs/exit_codes.tsv"
else
  echo "  [FAIL] logs/exit_codes.tsv missing"
  fail=1
fi

if test "$fail" = 0; then
  echo "OVERALL PASS"
else
  echo "OVERALL FAIL"
  exit 1
fi
