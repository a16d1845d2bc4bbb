//! Byte mutations for no-panic sweeps: small edits of a genuine input
//! reach the decoder's deep paths, which random bytes rarely do (they fail
//! at the first type or length byte).
//!
//! Every edit leaves an empty input as it is where it needs a byte to work
//! on, so any input can be mutated.

use crate::Rng;

/// `input` with 1 to 4 random edits: bit flips, byte overwrites,
/// truncation, extension by 1..=`max_extension` random bytes, insertion,
/// deletion.
pub fn mutate(rng: &mut Rng, input: &[u8], max_extension: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.index(4) {
        match rng.index(6) {
            0 => flip_bit(rng, &mut v),
            1 => overwrite_byte(rng, &mut v),
            2 => truncate(rng, &mut v),
            3 => extend(rng, &mut v, max_extension),
            4 => insert_byte(rng, &mut v),
            _ => remove_byte(rng, &mut v),
        }
    }
    v
}

/// Flips one bit of one byte.
pub fn flip_bit(rng: &mut Rng, v: &mut [u8]) {
    if v.is_empty() {
        return;
    }
    let i = rng.index(v.len());
    v[i] ^= 1 << rng.index(8);
}

/// Sets one byte to a random value (possibly its own).
pub fn overwrite_byte(rng: &mut Rng, v: &mut [u8]) {
    if v.is_empty() {
        return;
    }
    let i = rng.index(v.len());
    v[i] = rng.byte();
}

/// Cuts `v` to a random length in `0..=len` (possibly its own).
pub fn truncate(rng: &mut Rng, v: &mut Vec<u8>) {
    v.truncate(rng.index(v.len() + 1));
}

/// Appends 1..=`max` random bytes (1 when `max` is 0).
pub fn extend(rng: &mut Rng, v: &mut Vec<u8>, max: usize) {
    let n = 1 + rng.index(max);
    let extra = rng.bytes(n);
    v.extend_from_slice(&extra);
}

/// Inserts one random byte anywhere, the end included.
pub fn insert_byte(rng: &mut Rng, v: &mut Vec<u8>) {
    let i = rng.index(v.len() + 1);
    v.insert(i, rng.byte());
}

/// Removes one byte.
pub fn remove_byte(rng: &mut Rng, v: &mut Vec<u8>) {
    if v.is_empty() {
        return;
    }
    v.remove(rng.index(v.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edit_happens_and_none_panics_on_any_length() {
        let mut rng = Rng::new(9);
        let genuine: Vec<u8> = (0..32).collect();
        let (mut shorter, mut longer, mut changed) = (0, 0, 0);
        for round in 0..5_000 {
            let input = &genuine[..round % 33];
            let out = mutate(&mut rng, input, 8);
            assert!(out.len() <= input.len() + 4 * 8, "{out:?}");
            match out.len().cmp(&input.len()) {
                std::cmp::Ordering::Less => shorter += 1,
                std::cmp::Ordering::Greater => longer += 1,
                std::cmp::Ordering::Equal if out != input => changed += 1,
                std::cmp::Ordering::Equal => {}
            }
        }
        assert!(shorter > 500 && longer > 500 && changed > 500);
    }

    #[test]
    fn single_edits_do_what_they_say() {
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let mut v = vec![0u8; 16];
            flip_bit(&mut rng, &mut v);
            assert_eq!(v.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
            let mut v = vec![0u8; 16];
            insert_byte(&mut rng, &mut v);
            assert_eq!(v.len(), 17);
            remove_byte(&mut rng, &mut v);
            assert_eq!(v.len(), 16);
            extend(&mut rng, &mut v, 0);
            assert_eq!(v.len(), 17);
            truncate(&mut rng, &mut v);
            assert!(v.len() <= 17);
        }
        let mut empty = Vec::new();
        flip_bit(&mut rng, &mut empty);
        overwrite_byte(&mut rng, &mut empty);
        remove_byte(&mut rng, &mut empty);
        truncate(&mut rng, &mut empty);
        assert!(empty.is_empty());
    }
}
