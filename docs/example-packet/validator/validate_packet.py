#!/usr/bin/env python3
"""Validate an evstore evidence packet (stdlib only, read-only).

Usage: validate_packet.py [PACKET_DIR]
PACKET_DIR defaults to the packet this validator lives in (its parent dir).
Exit codes: 0 = PASS, 1 = FAIL (fail closed), 2 = usage error.
"""
import hashlib
import json
import os
import sys

REQUIRED_KEYS = (
    "doc", "date", "final_status", "production_mutation", "real_run",
    "cutover", "preflight", "rehearsal", "ci_seal_vs_bytes_gate",
    "decision_packet", "evidence_packet", "self_check",
)
MUST_BE_FALSE = ("production_mutation", "real_run", "cutover",
                 "ci_deploy_triggered", "live_production_contact")
SELFTEST_CASES = ("edited_content", "emdash_unicode_drift",
                  "json_ensure_ascii_drift", "bom_prefix", "crlf_drift",
                  "missing_file")
MANIFEST = "HASH_MANIFEST.txt"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def load_text(path, errors):
    """Read a text file as strict UTF-8: no BOM, no CR, trailing LF."""
    with open(path, "rb") as f:
        raw = f.read()
    name = os.path.basename(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        errors.append(name + ": BOM prefix")
    if b"\r" in raw:
        errors.append(name + ": CR byte (CRLF drift)")
    if raw and not raw.endswith(b"\n"):
        errors.append(name + ": no trailing newline")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        errors.append(name + ": not UTF-8 (" + str(e) + ")")
        return None


def check_report(pkt, errors):
    path = os.path.join(pkt, "report.json")
    if not os.path.isfile(path):
        errors.append("report.json: missing")
        return
    text = load_text(path, errors)
    if text is None:
        return
    try:
        rep = json.loads(text)
    except ValueError as e:
        errors.append("report.json: does not parse: " + str(e))
        return
    if not isinstance(rep, dict):
        errors.append("report.json: top level is not an object")
        return
    canon = json.dumps(rep, ensure_ascii=False, indent=2) + "\n"
    if text != canon:
        errors.append("report.json: not canonical (indent=2, raw UTF-8; "
                      "\\u escapes / ensure_ascii drift?)")
    for k in REQUIRED_KEYS:
        if k not in rep:
            errors.append("report.json: missing key " + k)
    for k in MUST_BE_FALSE:
        if rep.get(k, False) is not False:
            errors.append("report.json: " + k + " must be false")
    if "production_mutation" not in rep:
        errors.append("report.json: production_mutation absent")
    pin = (rep.get("preflight") or {}).get("validator_sha256")
    vpath = os.path.join(pkt, "validator", "validate_packet.py")
    got = sha256_file(vpath) if os.path.isfile(vpath) else "MISSING"
    if pin != got:
        errors.append("validator sha256 %s != pinned %s" % (got, pin))


def check_selftest(pkt, errors):
    path = os.path.join(pkt, "logs", "gate", "selftest.json")
    if not os.path.isfile(path):
        errors.append("logs/gate/selftest.json: missing")
        return
    text = load_text(path, errors)
    try:
        st = json.loads(text or "")
    except ValueError as e:
        errors.append("selftest.json: does not parse: " + str(e))
        return
    cases = {c.get("case"): c for c in st.get("cases", [])}
    for name in SELFTEST_CASES:
        c = cases.get(name)
        if c is None:
            errors.append("selftest.json: case missing: " + name)
        elif c.get("fail_closed") is not True:
            errors.append("selftest.json: case not fail-closed: " + name)
    if st.get("all_fail_closed") is not True:
        errors.append("selftest.json: all_fail_closed is not true")


def check_seal(pkt, errors):
    path = os.path.join(pkt, MANIFEST)
    if not os.path.isfile(path):
        print("seal: SKIP (no %s; regenerated tree)" % MANIFEST)
        return
    text = load_text(path, errors) or ""
    listed = []
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if (not sep or len(digest) != 64
                or digest.strip("0123456789abcdef")):
            errors.append("%s:%d: malformed line" % (MANIFEST, n))
            continue
        listed.append(rel)
        fp = os.path.join(pkt, rel)
        if not os.path.isfile(fp):
            errors.append("seal: missing file " + rel)
        elif sha256_file(fp) != digest:
            errors.append("seal: bytes differ from seal: " + rel)
    keys = [p.encode("utf-8") for p in listed]
    if keys != sorted(keys):
        errors.append("seal: manifest not sorted by path bytes")
    on_disk = set()
    for root, _dirs, files in os.walk(pkt):
        for fn in files:
            rel = os.path.relpath(os.path.join(root, fn), pkt)
            on_disk.add(rel.replace(os.sep, "/"))
    on_disk.discard(MANIFEST)
    for rel in sorted(on_disk - set(listed)):
        errors.append("seal: unsealed file " + rel)
    print("seal: %d files checked, packet_tree_sha256=%s"
          % (len(listed), sha256_file(path)))


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    self_path = os.path.abspath(__file__)
    pkt = argv[1] if len(argv) == 2 else os.path.dirname(
        os.path.dirname(self_path))
    if not os.path.isdir(pkt):
        print("usage: validate_packet.py [PACKET_DIR]: not a directory: "
              + pkt, file=sys.stderr)
        return 2
    errors = []
    check_report(pkt, errors)
    check_selftest(pkt, errors)
    stderr_log = os.path.join(pkt, "logs", "stderr.log")
    if not os.path.isfile(stderr_log) or os.path.getsize(stderr_log) != 0:
        errors.append("logs/stderr.log: must exist and be empty")
    check_seal(pkt, errors)
    for e in errors:
        print("FAIL: " + e)
    print("VALIDATOR FAIL" if errors else "VALIDATOR PASS")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
