# evstore developer recipes. `just --list` shows them.

# Run the whole test suite (the README's test command).
test:
    cargo test

# Formatting check and clippy with warnings as errors, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Everything CI runs.
ci:
    bash .ci/run

# Criterion benchmarks of the hot paths (dual hashing, object writes, tree build, scan).
bench:
    cargo bench --bench ingest

# Side-by-side comparison with sha256sum, b3sum and friends (see benches/compare.sh).
compare:
    bash benches/compare.sh

# Fuzz every target for SECONDS each (needs cargo-fuzz; see fuzz/README.md).
fuzz SECONDS="60":
    cd fuzz && for t in seal_parser tree_node_decoder object_decoder packet_ref_parser; do RUSTC_BOOTSTRAP=1 cargo fuzz run $t -- -max_total_time={{SECONDS}} || exit 1; done

# Archive the example packet into a throwaway store, export it and check it.
demo:
    rm -rf /tmp/evstore-demo /tmp/evstore-demo-out
    cargo run --release -- --store /tmp/evstore-demo ingest docs/example-packet
    cargo run --release -- --store /tmp/evstore-demo export example-packet /tmp/evstore-demo-out
    cd /tmp/evstore-demo-out && sha256sum -c HASH_MANIFEST.txt
    cargo run --release -- --store /tmp/evstore-demo fsck
