# evstore developer recipes. `just --list` shows them.

# Run the whole test suite (the README's test command): starts SeaweedFS for the S3 tests.
test:
    bash tests/s3/with-seaweedfs.sh cargo test

# Formatting check and clippy with warnings as errors, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Everything CI runs.
ci:
    bash .ci/run

# The release binary's golden transcript diffed against the recorded one (after-layout.txt when it
# exists, else before-layout.txt); tests/it/golden.rs checks the same with the test binary.
golden:
    cargo build --release
    expected=tests/golden/after-layout.txt; [ -f "$expected" ] || expected=tests/golden/before-layout.txt; bash tests/golden/outputs.sh target/release/evstore | diff -u "$expected" -

# Criterion benchmarks of the hot paths (dual hashing, object writes, tree build, scan).
bench:
    cargo bench --bench ingest

# Side-by-side benchmark against restic, git, sha256sum, openssl, b3sum and bagit.py (issue 7):
# ingest, verify, fsck, export on a 1 GiB and a 20 000-file corpus, 10-25 min on 2 cores; installs
# missing peers under target/bench-tools. Env: RUNS, SCALE (0.05 = smoke run), OUT, BENCH_TMP, KEEP.
# Results and targets: docs/PERFORMANCE.md.
compare:
    bash benches/compare.sh

# The S3 part of the compare benchmark alone (issue 14): evstore and restic against SeaweedFS on
# loopback (started and stopped by the script), with PUT/GET/LIST/HEAD counts per command.
compare-s3:
    ONLY=s3 bash benches/compare.sh

# Fuzz every target for SECONDS each, from the checked-in seeds (needs cargo-fuzz and a C++
# compiler; see fuzz/README.md). Runs all targets, fails at the end if any found something.
fuzz SECONDS="60":
    cd fuzz && fail=0; for t in $(cargo fuzz list); do mkdir -p corpus/$t; RUSTC_BOOTSTRAP=1 cargo fuzz run $t corpus/$t seeds/$t -- -max_total_time={{SECONDS}} || fail=1; done; exit $fail

# Archive the example packet into a throwaway store, export it and check it.
demo:
    rm -rf /tmp/evstore-demo /tmp/evstore-demo-out
    cargo run --release -- --store /tmp/evstore-demo ingest docs/example-packet
    cargo run --release -- --store /tmp/evstore-demo export example-packet /tmp/evstore-demo-out
    cd /tmp/evstore-demo-out && sha256sum -c HASH_MANIFEST.txt
    cargo run --release -- --store /tmp/evstore-demo fsck
