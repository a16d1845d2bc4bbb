//! The byte reader under every hand-written decoder of this crate (the
//! wire message, session sync and config sync payloads): a cursor over a
//! byte slice that returns [`Error::Truncated`] instead of indexing out of
//! bounds, so a decoder built on it cannot panic on any input, and that
//! says whether the input ended exactly where the format says.
//!
//! Each codec keeps its own `DecodeError` (its messages name its format)
//! and converts this module's [`Error`] into it with `?`.

use std::fmt;
use std::net::Ipv4Addr;

/// Why reading stopped. `what` names the field, for the peer's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The field `what` needs `need` bytes, `have` are left.
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// `.0` bytes left after the last field.
    TrailingBytes(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what, need, have } => {
                write!(f, "truncated in {what}: needs {need} bytes, has {have}")
            }
            Error::TrailingBytes(n) => write!(f, "{n} bytes after the message"),
        }
    }
}

impl std::error::Error for Error {}

/// A cursor over `&[u8]`; integers are big-endian (network order).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The bytes not read yet, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let Some((head, rest)) = self.rest.split_at_checked(n) else {
            return Err(Error::Truncated {
                what,
                need: n,
                have: self.rest.len(),
            });
        };
        self.rest = rest;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let Some((head, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(Error::Truncated {
                what,
                need: N,
                have: self.rest.len(),
            });
        };
        self.rest = rest;
        Ok(*head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        self.array(what).map(u32::from_be_bytes)
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        self.array(what).map(u64::from_be_bytes)
    }

    pub fn ipv4(&mut self, what: &'static str) -> Result<Ipv4Addr, Error> {
        self.array::<4>(what).map(Ipv4Addr::from)
    }

    /// Exactly `len` bytes are left: checked before allocating for a
    /// count read from the input, so a lying count cannot make a decoder
    /// reserve memory it will not fill.
    pub fn expect_remaining(&self, len: usize, what: &'static str) -> Result<(), Error> {
        match self.rest.len() {
            have if have < len => Err(Error::Truncated {
                what,
                need: len,
                have,
            }),
            have if have > len => Err(Error::TrailingBytes(have - len)),
            _ => Ok(()),
        }
    }

    /// The input ended exactly here: one encoding per message, so a
    /// longer body is an error, never ignored.
    pub fn finish(self) -> Result<(), Error> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(Error::TrailingBytes(n)),
        }
    }
}

/// Appends a count as u16 BE, saturating: callers bound their batches far
/// below `u16::MAX` items, and a saturated count fails the peer's length
/// check instead of silently wrapping to a small one.
pub fn put_u16_count(out: &mut Vec<u8>, n: usize) {
    let n = u16::try_from(n).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BYTES: [u8; 15] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    #[test]
    fn reads_big_endian_in_order_and_consumes_exactly() {
        let mut r = Reader::new(&BYTES);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u16("b"), Ok(0x0203));
        assert_eq!(r.u32("c"), Ok(0x0405_0607));
        assert_eq!(r.remaining(), 8);
        assert_eq!(r.rest(), &BYTES[7..]);
        assert_eq!(r.u64("d"), Ok(0x0809_0A0B_0C0D_0E0F));
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.finish(), Ok(()));

        let mut r = Reader::new(&BYTES);
        assert_eq!(r.ipv4("addr"), Ok(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(r.bytes(3, "three"), Ok(&BYTES[4..7]));
        assert_eq!(r.array::<2>("two"), Ok([8, 9]));
        assert_eq!(r.bytes(0, "none"), Ok(&[][..]));
        assert_eq!(r.clone().finish(), Err(Error::TrailingBytes(6)));
        assert_eq!(r.expect_remaining(6, "tail"), Ok(()));
        assert_eq!(r.expect_remaining(5, "tail"), Err(Error::TrailingBytes(1)));
        assert_eq!(
            r.expect_remaining(7, "tail"),
            Err(Error::Truncated {
                what: "tail",
                need: 7,
                have: 6
            })
        );
        assert_eq!(r.bytes(6, "tail"), Ok(&BYTES[9..]));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn truncation_at_each_width_names_the_field_and_consumes_nothing() {
        for have in 0..8 {
            let input = &BYTES[..have];
            let truncated = |need| Error::Truncated {
                what: "f",
                need,
                have,
            };
            let mut r = Reader::new(input);
            if have < 1 {
                assert_eq!(r.u8("f"), Err(truncated(1)));
            }
            if have < 2 {
                assert_eq!(r.u16("f"), Err(truncated(2)));
            }
            if have < 4 {
                assert_eq!(r.u32("f"), Err(truncated(4)));
                assert_eq!(r.ipv4("f"), Err(truncated(4)));
            }
            assert_eq!(r.u64("f"), Err(truncated(8)));
            assert_eq!(r.bytes(have + 1, "f"), Err(truncated(have + 1)));
            assert_eq!(r.array::<9>("f"), Err(truncated(9)));
            // A failed read leaves the cursor where it was.
            assert_eq!(r.remaining(), have);
            assert_eq!(r.rest(), input);
        }
        let mut r = Reader::new(&BYTES[..3]);
        assert_eq!(r.u16("x"), Ok(0x0102));
        assert_eq!(
            r.u16("y"),
            Err(Error::Truncated {
                what: "y",
                need: 2,
                have: 1
            })
        );
        assert_eq!(
            r.bytes(usize::MAX, "huge").map(|_| ()),
            Err(Error::Truncated {
                what: "huge",
                need: usize::MAX,
                have: 1
            })
        );
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        let mut out = Vec::new();
        put_u16_count(&mut out, 7);
        put_u16_count(&mut out, 70_000);
        assert_eq!(out, [0, 7, 0xFF, 0xFF]);
    }

    proptest! {
        /// Any sequence of reads on any input: no panic, and the bytes
        /// consumed plus the bytes left always add up to the input.
        #[test]
        fn no_read_sequence_panics_on_any_input(
            input in prop::collection::vec(any::<u8>(), 0..64),
            reads in prop::collection::vec(0u8..8, 0..24),
        ) {
            let mut r = Reader::new(&input);
            let mut consumed = 0;
            for op in reads {
                let before = r.remaining();
                let ok = match op {
                    0 => r.u8("f").is_ok(),
                    1 => r.u16("f").is_ok(),
                    2 => r.u32("f").is_ok(),
                    3 => r.u64("f").is_ok(),
                    4 => r.ipv4("f").is_ok(),
                    5 => r.bytes(before / 2 + 1, "f").is_ok(),
                    6 => r.expect_remaining(before, "f").is_ok(),
                    _ => r.array::<3>("f").is_ok(),
                };
                prop_assert!(ok || r.remaining() == before);
                consumed += before - r.remaining();
                prop_assert_eq!(consumed + r.remaining(), input.len());
                prop_assert_eq!(r.rest(), &input[consumed..]);
            }
            let left = r.remaining();
            prop_assert_eq!(r.finish().is_ok(), left == 0);
        }
    }
}
