//! The Merkle tree of RFC 9162 (Certificate Transparency 2.0; the same tree as RFC 6962) and
//! its two proofs: the hashing, the proofs a log holder produces, and their checks, which need
//! nothing but the proof (`evstore proof check-inclusion` and `check-consistency`).
//!
//! A leaf's hash is `SHA-256(0x00 || entry)`, an interior node's `SHA-256(0x01 || left ||
//! right)`, and a tree of `n > 1` leaves splits at the largest power of two below `n` (RFC 9162
//! §2.1.1). The empty tree's root is `SHA-256("")`. Proofs are built as RFC 9162 §2.1.3.1 and
//! §2.1.4.1 define them, and checked by the algorithms of §2.1.3.2 and §2.1.4.2, so the tools
//! and test vectors of Certificate Transparency, Go's checksum database and Sigsum apply.
//!
//! The checks are written here rather than taken from a crate: the ones published answer a
//! differently shaped question (they take leaf values, not leaf hashes, or hide the root they
//! recompute), and the algorithms are twenty lines each with the RFC's text beside them. The
//! tests check them against a second, naive implementation that builds the whole tree, and
//! against the Certificate Transparency project's published roots.

use sha2::{Digest as _, Sha256};

/// A SHA-256 hash of the tree: a leaf, a node or a root.
pub type Hash = [u8; 32];

/// The hash of a leaf whose entry bytes are `entry`: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two smaller than `n` (`n > 1`): where a tree of `n` leaves splits.
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Where the hashes of a tree's *perfect subtrees* come from: the root of the `2^level` leaves
/// from leaf `index · 2^level` on. Every hash of a root or a proof is a perfect subtree's, or
/// combines `O(log n)` of them, so a source that keeps them (the catalog's `merkle_nodes`)
/// answers in `O(log n)` reads; a slice of leaf hashes is a source that computes them.
pub trait PerfectSubtrees {
    /// Why a subtree's hash could not be had.
    type Error;

    /// The root of the perfect subtree of `2^level` leaves starting at leaf `index · 2^level`.
    /// Called only for subtrees inside the tree asked about.
    ///
    /// # Errors
    ///
    /// The source's own (a read that failed, a hash it does not hold).
    fn perfect_subtree(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Leaf hashes in memory are a source: each subtree is hashed from its leaves.
impl PerfectSubtrees for &[Hash] {
    type Error = std::convert::Infallible;

    fn perfect_subtree(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let size = 1usize << level;
        let start = index as usize * size;
        Ok(perfect_root(&self[start..start + size]))
    }
}

/// The root of a power-of-two number of leaf hashes.
fn perfect_root(leaves: &[Hash]) -> Hash {
    match leaves {
        [one] => *one,
        _ => {
            let half = leaves.len() / 2;
            node_hash(
                &perfect_root(&leaves[..half]),
                &perfect_root(&leaves[half..]),
            )
        }
    }
}

/// MTH of the leaves `start .. start + len` (RFC 9162 §2.1.1), from the source's perfect
/// subtrees: one read when the range is one, else the split's two halves.
fn range_root<S: PerfectSubtrees + ?Sized>(
    start: u64,
    len: u64,
    source: &mut S,
) -> Result<Hash, S::Error> {
    if len == 0 {
        return Ok(Sha256::digest([]).into());
    }
    if len.is_power_of_two() && start % len == 0 {
        return source.perfect_subtree(len.trailing_zeros(), start / len);
    }
    let k = split(len);
    let left = range_root(start, k, source)?;
    let right = range_root(start + k, len - k, source)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` leaves of `source` (MTH, RFC 9162 §2.1.1).
///
/// # Errors
///
/// The source's.
pub fn root_of<S: PerfectSubtrees + ?Sized>(size: u64, source: &mut S) -> Result<Hash, S::Error> {
    range_root(0, size, source)
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves of `source`
/// (PATH, RFC 9162 §2.1.3.1): the sibling hashes from the leaf up; `None` if `index` is not a
/// leaf of it.
///
/// # Errors
///
/// The source's.
pub fn inclusion_proof_of<S: PerfectSubtrees + ?Sized>(
    index: u64,
    size: u64,
    source: &mut S,
) -> Result<Option<Vec<Hash>>, S::Error> {
    if index >= size {
        return Ok(None);
    }
    let mut proof = Vec::new();
    path(index, 0, size, source, &mut proof)?;
    Ok(Some(proof))
}

/// PATH(index, D[start .. start + len]), appended to `out` (leaf's sibling first).
fn path<S: PerfectSubtrees + ?Sized>(
    index: u64,
    start: u64,
    len: u64,
    source: &mut S,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if len <= 1 {
        return Ok(());
    }
    let k = split(len);
    if index < k {
        path(index, start, k, source, out)?;
        out.push(range_root(start + k, len - k, source)?);
    } else {
        path(index - k, start + k, len - k, source, out)?;
        out.push(range_root(start, k, source)?);
    }
    Ok(())
}

/// The consistency proof between the trees of the first `old_size` and the first `size` leaves
/// of `source` (PROOF, RFC 9162 §2.1.4.1); `None` unless `0 < old_size <= size`. Equal sizes
/// give the empty proof.
///
/// # Errors
///
/// The source's.
pub fn consistency_proof_of<S: PerfectSubtrees + ?Sized>(
    old_size: u64,
    size: u64,
    source: &mut S,
) -> Result<Option<Vec<Hash>>, S::Error> {
    if old_size == 0 || old_size > size {
        return Ok(None);
    }
    let mut proof = Vec::new();
    subproof(old_size, 0, size, true, source, &mut proof)?;
    Ok(Some(proof))
}

/// SUBPROOF(m, D[start .. start + len], whole_old_tree), appended to `out`.
fn subproof<S: PerfectSubtrees + ?Sized>(
    m: u64,
    start: u64,
    len: u64,
    whole_old_tree: bool,
    source: &mut S,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if m == len {
        if !whole_old_tree {
            out.push(range_root(start, len, source)?);
        }
        return Ok(());
    }
    let k = split(len);
    if m <= k {
        subproof(m, start, k, whole_old_tree, source, out)?;
        out.push(range_root(start + k, len - k, source)?);
    } else {
        subproof(m - k, start + k, len - k, false, source, out)?;
        out.push(range_root(start, k, source)?);
    }
    Ok(())
}

/// A result whose error cannot happen.
fn infallible<T>(result: Result<T, std::convert::Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// The root of the tree whose leaf hashes are `leaves` (MTH, RFC 9162 §2.1.1).
pub fn root(leaves: &[Hash]) -> Hash {
    infallible(root_of(leaves.len() as u64, &mut &*leaves))
}

/// The inclusion proof of leaf `index` in the tree of `leaves` (PATH, RFC 9162 §2.1.3.1): the
/// sibling hashes from the leaf up, `None` if `index` is not a leaf.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    infallible(inclusion_proof_of(
        index as u64,
        leaves.len() as u64,
        &mut &*leaves,
    ))
}

/// The consistency proof between the tree of the first `old_size` leaves of `leaves` and the
/// tree of all of them (PROOF, RFC 9162 §2.1.4.1); `None` unless `0 < old_size <= len`. Equal
/// sizes give the empty proof.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    infallible(consistency_proof_of(
        old_size as u64,
        leaves.len() as u64,
        &mut &*leaves,
    ))
}

/// Why a proof does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofFailure {
    /// The index is not a leaf of a tree of that size.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old size is above the new one.
    #[error("the old tree size {old} is larger than the new tree size {new}")]
    OldLarger {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// The proof has more or fewer hashes than the sizes call for.
    #[error("the proof has the wrong number of hashes for these sizes")]
    WrongLength,
    /// The recomputed root is not the root given.
    #[error("the proof leads to root {computed}, not to {expected}")]
    RootMismatch {
        /// The root the proof leads to (hex).
        computed: String,
        /// The root given (hex).
        expected: String,
    },
    /// The proof leads to another old root than the one given.
    #[error("the proof leads to old root {computed}, not to {expected}")]
    OldRootMismatch {
        /// The old root the proof leads to (hex).
        computed: String,
        /// The old root given (hex).
        expected: String,
    },
}

/// How one hash of an inclusion proof is combined on the way up: `true` when the proof's hash
/// is the left child (`HASH(0x01 || p || r)`), `false` when it is the right one.
pub type InclusionWalk = Vec<bool>;

/// The walk of RFC 9162 §2.1.3.2 for leaf `index` of a tree of `size` leaves and a proof of
/// `proof_len` hashes: which side each hash joins. `Err` when the index is not a leaf or the
/// length is wrong. The walk depends only on these three numbers: a proof that holds for two
/// sizes whose walks are equal proves nothing about which of the two is the tree's size; the
/// signature of a checkpoint (which names size and root together) is what binds it.
///
/// # Errors
///
/// [`ProofFailure::IndexOutOfRange`] or [`ProofFailure::WrongLength`].
pub fn inclusion_walk(
    index: u64,
    size: u64,
    proof_len: usize,
) -> Result<InclusionWalk, ProofFailure> {
    if index >= size {
        return Err(ProofFailure::IndexOutOfRange { index, size });
    }
    walk_up(index, size - 1, proof_len)
}

/// The common loop of RFC 9162 §2.1.3.2 step 4 and §2.1.4.2 step 6, from `fn_` and `sn` over
/// `steps` hashes: for each, true when it joins on the left ("LSB(fn) is set, or fn is equal to
/// sn"). `Err` when `sn` reaches 0 early or is not 0 at the end.
fn walk_up(mut fn_: u64, mut sn: u64, steps: usize) -> Result<Vec<bool>, ProofFailure> {
    let mut walk = Vec::with_capacity(steps);
    for _ in 0..steps {
        if sn == 0 {
            return Err(ProofFailure::WrongLength);
        }
        let on_the_left = fn_ & 1 == 1 || fn_ == sn;
        walk.push(on_the_left);
        if on_the_left && fn_ & 1 == 0 {
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofFailure::WrongLength);
    }
    Ok(walk)
}

/// Check that `leaf` is the leaf hash at `index` in the tree of `size` leaves whose root is
/// `root`, by the algorithm of RFC 9162 §2.1.3.2.
///
/// # Errors
///
/// [`ProofFailure`] naming why the proof does not hold.
pub fn check_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    expected_root: &Hash,
) -> Result<(), ProofFailure> {
    let walk = inclusion_walk(index, size, proof.len())?;
    let r = proof.iter().zip(walk).fold(*leaf, |r, (p, p_is_left)| {
        if p_is_left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        }
    });
    if r != *expected_root {
        return Err(ProofFailure::RootMismatch {
            computed: hex::encode(r),
            expected: hex::encode(expected_root),
        });
    }
    Ok(())
}

/// How one hash of a consistency path is combined (RFC 9162 §2.1.4.2, step 6): into both roots
/// as their left sibling, or into the new root only as its right sibling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsistencyStep {
    /// `fr = HASH(0x01 || c || fr)` and `sr = HASH(0x01 || c || sr)`.
    LeftOfBoth,
    /// `sr = HASH(0x01 || sr || c)`.
    RightOfNew,
}

/// The walk of RFC 9162 §2.1.4.2 for sizes `0 < old_size < new_size` and a path of `path_len`
/// hashes (the proof, with the old root first when `old_size` is a power of two), one step per
/// hash after the first. As for [`inclusion_walk`], only a checkpoint's signature binds the
/// sizes beyond their walk.
///
/// # Errors
///
/// [`ProofFailure::WrongLength`] when the path does not fit the sizes.
pub fn consistency_walk(
    old_size: u64,
    new_size: u64,
    path_len: usize,
) -> Result<Vec<ConsistencyStep>, ProofFailure> {
    if path_len == 0 || old_size == 0 || old_size >= new_size {
        return Err(ProofFailure::WrongLength);
    }
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    Ok(walk_up(fn_, sn, path_len - 1)?
        .into_iter()
        .map(|on_the_left| {
            if on_the_left {
                ConsistencyStep::LeftOfBoth
            } else {
                ConsistencyStep::RightOfNew
            }
        })
        .collect())
}

/// Check that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root` (only appended to), by the algorithm of RFC 9162
/// §2.1.4.2. Equal sizes hold with the empty proof when the roots are equal; every tree extends
/// the empty one (size 0, root `SHA-256("")`) with the empty proof.
///
/// # Errors
///
/// [`ProofFailure`] naming why the proof does not hold.
pub fn check_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofFailure> {
    if old_size > new_size {
        return Err(ProofFailure::OldLarger {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        let expected_old = if old_size == 0 {
            Sha256::digest([]).into()
        } else {
            *new_root
        };
        if !proof.is_empty() {
            return Err(ProofFailure::WrongLength);
        }
        if *old_root != expected_old {
            return Err(ProofFailure::OldRootMismatch {
                computed: hex::encode(expected_old),
                expected: hex::encode(old_root),
            });
        }
        return Ok(());
    }
    // When the old tree is a whole subtree (its size a power of two), its root starts the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let walk = consistency_walk(old_size, new_size, path.len())?;
    let (mut fr, mut sr) = (path[0], path[0]);
    for (c, step) in path[1..].iter().zip(walk) {
        match step {
            ConsistencyStep::LeftOfBoth => {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
            }
            ConsistencyStep::RightOfNew => sr = node_hash(&sr, c),
        }
    }
    if fr != *old_root {
        return Err(ProofFailure::OldRootMismatch {
            computed: hex::encode(fr),
            expected: hex::encode(old_root),
        });
    }
    if sr != *new_root {
        return Err(ProofFailure::RootMismatch {
            computed: hex::encode(sr),
            expected: hex::encode(new_root),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive tree: every level built bottom-up, an odd last node carried up unchanged (the
    /// same tree as the RFC's split rule). Levels from the leaves (index 0) to the root.
    fn levels(leaves: &[Hash]) -> Vec<Vec<Hash>> {
        let mut out = vec![leaves.to_vec()];
        while out.last().map_or(0, Vec::len) > 1 {
            let below = out.last().cloned().unwrap_or_default();
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [alone] => *alone,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            out.push(above);
        }
        out
    }

    fn naive_root(leaves: &[Hash]) -> Hash {
        if leaves.is_empty() {
            return Sha256::digest([]).into();
        }
        levels(leaves).last().map(|top| top[0]).unwrap_or_default()
    }

    /// The naive audit path: at each level the sibling, when there is one.
    fn naive_inclusion(index: usize, leaves: &[Hash]) -> Vec<Hash> {
        let mut proof = Vec::new();
        let mut i = index;
        for level in levels(leaves).iter().take_while(|level| level.len() > 1) {
            let sibling = i ^ 1;
            if sibling < level.len() {
                proof.push(level[sibling]);
            }
            i /= 2;
        }
        proof
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn roots_match_the_certificate_transparency_test_vectors() {
        // The leaves and roots of the Certificate Transparency project's Merkle tree tests
        // (merkle_tree_test.cc / merkle_test.go): the roots of the first 1..=8 leaves.
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let hashed: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        for (n, expected) in roots.iter().enumerate() {
            assert_eq!(
                hex::encode(root(&hashed[..=n])),
                *expected,
                "{} leaves",
                n + 1
            );
        }
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn proofs_of_every_leaf_and_size_up_to_64_match_the_naive_tree_and_check() {
        for n in 1..=64 {
            let all = leaves(n);
            let expected_root = naive_root(&all);
            assert_eq!(root(&all), expected_root, "{n} leaves");
            for i in 0..n {
                let proof = inclusion_proof(i, &all).unwrap();
                assert_eq!(proof, naive_inclusion(i, &all), "leaf {i} of {n}");
                check_inclusion(&all[i], i as u64, n as u64, &proof, &expected_root).unwrap();
            }
            for m in 1..=n {
                let proof = consistency_proof(m, &all).unwrap();
                let old_root = naive_root(&all[..m]);
                check_consistency(m as u64, n as u64, &old_root, &expected_root, &proof)
                    .unwrap_or_else(|err| panic!("{m} → {n}: {err}"));
            }
        }
        assert_eq!(inclusion_proof(3, &leaves(3)), None);
        assert_eq!(consistency_proof(0, &leaves(3)), None);
        assert_eq!(consistency_proof(4, &leaves(3)), None);
    }

    #[test]
    fn the_empty_tree_is_extended_by_every_tree_and_sizes_out_of_order_fail() {
        let all = leaves(5);
        let empty = root(&[]);
        check_consistency(0, 5, &empty, &root(&all), &[]).unwrap();
        assert!(check_consistency(0, 5, &root(&all), &root(&all), &[]).is_err());
        assert!(check_consistency(6, 5, &root(&all), &root(&all), &[]).is_err());
        assert!(check_inclusion(&all[0], 5, 5, &[], &root(&all)).is_err());
        assert!(check_inclusion(&all[0], 0, 0, &[], &root(&all)).is_err());
    }

    fn flip(hash: &Hash, bit: usize) -> Hash {
        let mut out = *hash;
        out[bit / 8 % 32] ^= 1 << (bit % 8);
        out
    }

    /// A source that keeps every perfect subtree's hash (as the catalog's `merkle_nodes` does)
    /// and counts the reads.
    struct KeptSubtrees {
        levels: Vec<Vec<Hash>>,
        reads: usize,
    }

    impl KeptSubtrees {
        fn of(leaves: &[Hash]) -> KeptSubtrees {
            let mut levels = vec![leaves.to_vec()];
            while levels.last().map_or(0, Vec::len) > 1 {
                let below = levels.last().cloned().unwrap_or_default();
                // Only complete pairs: a perfect subtree has both halves.
                let above: Vec<Hash> = below
                    .chunks_exact(2)
                    .map(|pair| node_hash(&pair[0], &pair[1]))
                    .collect();
                if above.is_empty() {
                    break;
                }
                levels.push(above);
            }
            KeptSubtrees { levels, reads: 0 }
        }
    }

    impl PerfectSubtrees for KeptSubtrees {
        type Error = String;

        fn perfect_subtree(&mut self, level: u32, index: u64) -> Result<Hash, String> {
            self.reads += 1;
            self.levels
                .get(level as usize)
                .and_then(|hashes| hashes.get(index as usize))
                .copied()
                .ok_or(format!("no subtree at level {level}, index {index}"))
        }
    }

    /// The bound on reads the catalog's proofs promise: a root takes one read per set bit of
    /// the size; a proof at most two per level.
    fn log2_ceil(n: u64) -> usize {
        (64 - n.saturating_sub(1).leading_zeros()) as usize
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Roots and proofs from kept perfect subtrees equal the ones hashed from the leaves, in
        /// O(log n) reads.
        #[test]
        fn kept_subtrees_give_the_same_roots_and_proofs_in_logarithmic_reads(
            n in 1usize..=3000, pick in any::<usize>(), old in any::<usize>()
        ) {
            let leaves: Vec<Hash> = (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let mut kept = KeptSubtrees::of(&leaves);
            let size = n as u64;
            prop_assert_eq!(root_of(size, &mut kept), Ok(root(&leaves)));
            prop_assert_eq!(kept.reads, size.count_ones() as usize);
            let index = pick % n;
            kept.reads = 0;
            prop_assert_eq!(
                inclusion_proof_of(index as u64, size, &mut kept),
                Ok(inclusion_proof(index, &leaves))
            );
            prop_assert!(kept.reads <= 2 * log2_ceil(size) + 1, "{} reads for {n}", kept.reads);
            let old = old % n + 1;
            kept.reads = 0;
            prop_assert_eq!(
                consistency_proof_of(old as u64, size, &mut kept),
                Ok(consistency_proof(old, &leaves))
            );
            prop_assert!(kept.reads <= 3 * log2_ceil(size) + 2, "{} reads for {old} of {n}", kept.reads);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_inclusion_proof_checks_and_every_single_change_fails(
            n in 1usize..=2000, pick in any::<usize>(), bit in 0usize..256, other in any::<u64>()
        ) {
            let all = leaves(n);
            let i = pick % n;
            let r = root(&all);
            let proof = inclusion_proof(i, &all).unwrap();
            prop_assert!(check_inclusion(&all[i], i as u64, n as u64, &proof, &r).is_ok());
            prop_assert!(check_inclusion(&flip(&all[i], bit), i as u64, n as u64, &proof, &r).is_err());
            prop_assert!(check_inclusion(&all[i], i as u64, n as u64, &proof, &flip(&r, bit)).is_err());
            for at in 0..proof.len() {
                let mut bad = proof.clone();
                bad[at] = flip(&bad[at], bit);
                prop_assert!(check_inclusion(&all[i], i as u64, n as u64, &bad, &r).is_err());
            }
            // A changed index or size fails, unless its walk is the very same (then only the
            // checkpoint's signature can tell the sizes apart: see `inclusion_walk`).
            let walk = inclusion_walk(i as u64, n as u64, proof.len()).unwrap();
            let flipped_index = (i as u64) ^ (1 << (bit % 12));
            let flipped_size = (n as u64) ^ (1 << (bit % 12));
            for (index, size) in [(flipped_index, n as u64), (i as u64, flipped_size), (other % 4000, n as u64), (i as u64, 1 + other % 4000)] {
                if (index, size) == (i as u64, n as u64) {
                    continue;
                }
                let holds = check_inclusion(&all[i], index, size, &proof, &r).is_ok();
                let same_walk = inclusion_walk(index, size, proof.len()).ok() == Some(walk.clone());
                prop_assert!(!holds || (same_walk && index == i as u64), "index {} size {} of {} {}", index, size, i, n);
            }
            let mut short = proof.clone();
            if short.pop().is_some() {
                prop_assert!(check_inclusion(&all[i], i as u64, n as u64, &short, &r).is_err());
            }
            let mut long = proof.clone();
            long.push(r);
            prop_assert!(check_inclusion(&all[i], i as u64, n as u64, &long, &r).is_err());
        }

        #[test]
        fn every_consistency_proof_checks_and_every_single_change_fails(
            n in 1usize..=2000, pick in any::<usize>(), bit in 0usize..256, other in any::<u64>()
        ) {
            let all = leaves(n);
            let m = 1 + pick % n;
            let (old, new) = (root(&all[..m]), root(&all));
            let proof = consistency_proof(m, &all).unwrap();
            prop_assert!(check_consistency(m as u64, n as u64, &old, &new, &proof).is_ok());
            prop_assert!(check_consistency(m as u64, n as u64, &flip(&old, bit), &new, &proof).is_err());
            prop_assert!(check_consistency(m as u64, n as u64, &old, &flip(&new, bit), &proof).is_err());
            for at in 0..proof.len() {
                let mut bad = proof.clone();
                bad[at] = flip(&bad[at], bit);
                prop_assert!(check_consistency(m as u64, n as u64, &old, &new, &bad).is_err());
            }
            // A changed size fails, unless the walk is the very same (see `consistency_walk`).
            let path_len = proof.len() + usize::from((m as u64).is_power_of_two());
            let walk = consistency_walk(m as u64, n as u64, path_len).ok();
            let flipped_old = (m as u64) ^ (1 << (bit % 12));
            let flipped_new = (n as u64) ^ (1 << (bit % 12));
            for (old_size, new_size) in [(flipped_old, n as u64), (m as u64, flipped_new), (1 + other % 4000, n as u64), (m as u64, other % 4000)] {
                if (old_size, new_size) == (m as u64, n as u64) {
                    continue;
                }
                let holds = check_consistency(old_size, new_size, &old, &new, &proof).is_ok();
                let len = proof.len() + usize::from(old_size.is_power_of_two());
                let same_walk = walk.is_some() && consistency_walk(old_size, new_size, len).ok() == walk;
                prop_assert!(!holds || same_walk, "old {} new {} for {} {}", old_size, new_size, m, n);
            }
        }
    }
}
