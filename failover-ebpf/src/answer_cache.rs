//! Each CPU's cache of the answer sets it answered lately, so that a hot
//! name is answered without a hash map lookup: with return-thunk
//! mitigations every kernel call and return costs tens of nanoseconds,
//! and a hash map lookup makes several (hash, bucket walk, memcmp), where
//! a per-CPU array slot is a few inlined instructions.
//!
//! Direct mapped, by a hash of the key, for names of the first record
//! bucket (up to 32 wire bytes; longer ones always go to their map). A
//! slot holds a copy of one (name, type)'s answer set, the key it was
//! found under and the version of the record maps (`RECORD_VERSION`)
//! read *before* the lookup. The agent moves the version on after every
//! change, so a slot holding the current version was looked up after the
//! last change that has been announced: a change empties every CPU's
//! cache at once, and a slot never answers with a set the maps no longer
//! hold for longer than the agent takes from its write to its version
//! bump. A miss (another name in the slot) costs the lookup it saves.

use failover_common::RECORD_BUCKETS;

use crate::maps::{CachedAnswer, KEY_ROOM, Scratch};

pub use failover_common::{
    ANSWER_CACHE_KEY_WORDS as KEY_WORDS, ANSWER_CACHE_SLOTS as CACHE_SLOTS,
    answer_cache_slot as slot,
};

const _: () = assert!(KEY_WORDS * 8 <= KEY_ROOM);

/// The version no slot is valid for.
pub const NEVER: u64 = u64::MAX;

/// The query's key words: the name of `scratch.key` with `qtype` put
/// after the first bucket's 32 bytes (where its record map has it).
#[inline(always)]
pub fn key(scratch: &mut Scratch, qtype: u16) -> [u64; KEY_WORDS] {
    let n = RECORD_BUCKETS[0];
    let [first, second] = qtype.to_ne_bytes();
    scratch.key[n] = first;
    scratch.key[n + 1] = second;
    let words = scratch.key.as_ptr() as *const u64;
    let mut key = [0u64; KEY_WORDS];
    let mut w = 0;
    while w < KEY_WORDS {
        // The key starts the map value: 8-aligned. (An unaligned read
        // would be split into bytes.)
        key[w] = unsafe { *words.add(w) };
        w += 1;
    }
    key
}

/// Does `slot` hold the answer for `key` at `version`?
#[inline(always)]
pub fn holds(slot: &CachedAnswer, key: &[u64; KEY_WORDS], version: u64) -> bool {
    let mut differ = slot.version ^ version;
    let mut w = 0;
    while w < KEY_WORDS {
        differ |= slot.key[w] ^ key[w];
        w += 1;
    }
    differ == 0
}

/// Marks `slot`, whose set was just copied in, as holding `key` at
/// `version`.
#[inline(always)]
pub fn fill(slot: &mut CachedAnswer, key: &[u64; KEY_WORDS], version: u64) {
    slot.key = *key;
    slot.version = version;
}
