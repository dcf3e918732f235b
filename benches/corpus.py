#!/usr/bin/env python3
"""Deterministic benchmark corpora for benches/compare.sh.

    benches/corpus.py DIR --kind large|small [--scale F] [--jobs N]

large: 1 GiB as 64 x 16 MiB files `capture-NN.bin`. Every MiB is 512 KiB of pseudo-random
       bytes (incompressible) followed by 512 KiB of JSON-lines log text (compressible).
small: 20 000 files of 1-8 KiB in 200 folders `packet-NNN/` of 100 files each (one evidence
       "packet" per folder): JSON reports (`report-NNN.json`), JSON-lines logs
       (`events-NNN.jsonl`) and plain-text logs (`stdout-NNN.log`), in turn.

--scale F multiplies the number of files (large: round(64 F) files of 16 MiB; small:
round(20000 F) files, still 100 per folder), e.g. 0.05 for a smoke run or 2 for the
linearity check. Every file is generated from its own `random.Random` seeded with the corpus
kind and the file's index, so file i is byte-identical at every scale (scale 2 is a superset of
scale 1) and on every machine. DIR must not exist or be empty. Prints the file count and bytes.
"""

import argparse
import json
import os
import random
import sys
from multiprocessing import Pool

MIB = 1024 * 1024
HALF = MIB // 2
LARGE_FILES, LARGE_FILE_MIB = 64, 16
SMALL_FILES, SMALL_PER_DIR = 20000, 100
LEVELS = ["debug", "info", "warn", "error"]
WORDS = ("request served cache miss retry upstream timeout ok shard replica commit flush "
         "checksum verified sealed archived").split()


def json_lines(rng, target, seq=0):
    """Exactly `target` bytes of JSON-lines log text (the last line may be cut)."""
    parts, n = [], 0
    while n < target:
        g = rng.getrandbits(64)
        line = ('{"seq":%d,"ts":%d,"host":"node-%02d","level":"%s","latency_ms":%d,"msg":"%s %s %s"}\n'
                % (seq, 1700000000000 + seq * 17 + (g & 15), (g >> 4) & 63, LEVELS[(g >> 10) & 3],
                   (g >> 12) % 5000, WORDS[(g >> 25) % 16], WORDS[(g >> 30) % 16],
                   WORDS[(g >> 35) % 16]))
        parts.append(line)
        n += len(line)
        seq += 1
    return "".join(parts).encode()[:target]


def text_lines(rng, target, seq=0):
    """Exactly `target` bytes of plain-text log lines."""
    parts, n = [], 0
    while n < target:
        g = rng.getrandbits(64)
        line = "%06d %s [%s] %s %s %s (%d ms)\n" % (
            seq, "2024-05-%02dT%02d:%02d:%02dZ" % (1 + g % 28, (g >> 5) % 24, (g >> 10) % 60,
                                                   (g >> 16) % 60),
            LEVELS[(g >> 22) & 3].upper(), WORDS[(g >> 24) % 16], WORDS[(g >> 28) % 16],
            WORDS[(g >> 32) % 16], (g >> 36) % 5000)
        parts.append(line)
        n += len(line)
        seq += 1
    return "".join(parts).encode()[:target]


def json_report(rng, target, d, k):
    """A JSON document of exactly `target` bytes (padded with spaces before the closing brace)."""
    checks = []
    doc = {"packet": "packet-%03d" % d, "file": k, "status": "pass", "checks": checks}
    # json.dumps(indent=2) lays each check out at a fixed indent, so the length can be tracked
    # without re-serialising the whole document per check; the final dumps checks it exactly.
    size = len(json.dumps(doc, indent=2, sort_keys=True)) + 4
    while True:
        g = rng.getrandbits(64)
        check = {"id": "check-%04d" % len(checks), "ok": bool(g & 1),
                 "duration_ms": (g >> 1) % 10000,
                 "detail": "%s %s" % (WORDS[(g >> 20) % 16], WORDS[(g >> 24) % 16])}
        t = json.dumps(check, indent=2, sort_keys=True)
        size += len(t) + 4 * (t.count("\n") + 1) + 2
        if size + 2 > target:
            break
        checks.append(check)
    text = json.dumps(doc, indent=2, sort_keys=True)
    while len(text) + 2 > target:
        checks.pop()
        text = json.dumps(doc, indent=2, sort_keys=True)
    text = text[:-1] + " " * (target - len(text) - 1) + "}\n"
    return text.encode()


def large_file(args):
    root, i = args
    rng = random.Random("large-%d" % i)
    with open(os.path.join(root, "capture-%02d.bin" % i), "wb") as f:
        for mib in range(LARGE_FILE_MIB):
            f.write(rng.randbytes(HALF))
            f.write(json_lines(rng, HALF, seq=(i * LARGE_FILE_MIB + mib) * 10000))
    return LARGE_FILE_MIB * MIB


def small_folder(args):
    root, d, count = args
    sub = os.path.join(root, "packet-%03d" % d)
    os.mkdir(sub)
    total = 0
    for k in range(count):
        i = d * SMALL_PER_DIR + k
        rng = random.Random("small-%d" % i)
        size = rng.randint(1024, 8192)
        kind = i % 3
        if kind == 0:
            name, data = "report-%03d.json" % k, json_report(rng, size, d, k)
        elif kind == 1:
            name, data = "events-%03d.jsonl" % k, json_lines(rng, size, seq=i * 1000)
        else:
            name, data = "stdout-%03d.log" % k, text_lines(rng, size, seq=i * 1000)
        assert len(data) == size, (name, len(data), size)
        with open(os.path.join(sub, name), "wb") as f:
            f.write(data)
        total += size
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--kind", choices=["large", "small"], required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    if a.scale <= 0:
        ap.error("--scale must be positive")
    os.makedirs(a.dir, exist_ok=True)
    if os.listdir(a.dir):
        ap.error("%s is not empty" % a.dir)

    if a.kind == "large":
        n = max(1, round(LARGE_FILES * a.scale))
        tasks, fn = [(a.dir, i) for i in range(n)], large_file
    else:
        n = max(1, round(SMALL_FILES * a.scale))
        tasks = [(a.dir, d, min(SMALL_PER_DIR, n - d * SMALL_PER_DIR))
                 for d in range((n + SMALL_PER_DIR - 1) // SMALL_PER_DIR)]
        fn = small_folder
    with Pool(max(1, a.jobs)) as pool:
        total = sum(pool.imap_unordered(fn, tasks))
    print("%s: %d files, %d bytes" % (a.dir, n, total))


if __name__ == "__main__":
    sys.exit(main())
