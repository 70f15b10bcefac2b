//! Lowercase hex: `0x`-prefixed as polkadot.js writes bytes ([`hex`]), plain for file names and
//! logs ([`hex_plain`]), and a strict parser ([`unhex`]). The one hex codec of the project.
use alloc::{string::String, vec::Vec};

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Why a hex string was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HexError {
	/// An odd number of digits.
	OddLength,
	/// A character that is not a hex digit (signs included: `+1` is refused).
	BadDigit,
}

impl core::fmt::Display for HexError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		f.write_str(match self {
			HexError::OddLength => "odd number of hex digits",
			HexError::BadDigit => "bad hex",
		})
	}
}

/// Lowercase hex of `b` without a prefix.
pub fn hex_plain(b: &[u8]) -> String {
	let mut s = String::with_capacity(2 * b.len());
	push_hex(&mut s, b);
	s
}

/// `0x`-prefixed lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
	let mut s = String::with_capacity(2 + 2 * b.len());
	s.push_str("0x");
	push_hex(&mut s, b);
	s
}

fn push_hex(s: &mut String, b: &[u8]) {
	for x in b {
		s.push(DIGITS[(x >> 4) as usize] as char);
		s.push(DIGITS[(x & 15) as usize] as char);
	}
}

/// Bytes from hex, with or without `0x`; odd lengths and non-hex characters are refused.
pub fn unhex(s: &str) -> Result<Vec<u8>, HexError> {
	let s = s.strip_prefix("0x").unwrap_or(s).as_bytes();
	if !s.len().is_multiple_of(2) {
		return Err(HexError::OddLength);
	}
	s.chunks_exact(2).map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

fn digit(c: u8) -> Result<u8, HexError> {
	match c {
		b'0'..=b'9' => Ok(c - b'0'),
		b'a'..=b'f' => Ok(c - b'a' + 10),
		b'A'..=b'F' => Ok(c - b'A' + 10),
		_ => Err(HexError::BadDigit),
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn round_trip() {
		let bytes = [0u8, 1, 0xab, 0xff];
		assert_eq!(hex(&bytes), "0x0001abff");
		assert_eq!(hex_plain(&bytes), "0001abff");
		assert_eq!(unhex(&hex(&bytes)), Ok(bytes.to_vec()));
		assert_eq!(unhex("0001ABff"), Ok(bytes.to_vec()));
	}

	#[test]
	fn bad_hex_is_refused() {
		assert_eq!(unhex("0xabc"), Err(HexError::OddLength));
		assert_eq!(unhex("zz"), Err(HexError::BadDigit));
		assert_eq!(unhex("0x+1"), Err(HexError::BadDigit));
	}
}
