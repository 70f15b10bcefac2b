//! `0x`-prefixed lowercase hex, as polkadot.js writes bytes.

/// `0x`-prefixed lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
	const DIGITS: &[u8; 16] = b"0123456789abcdef";
	let mut s = String::with_capacity(2 + 2 * b.len());
	s.push_str("0x");
	for x in b {
		s.push(DIGITS[(x >> 4) as usize] as char);
		s.push(DIGITS[(x & 15) as usize] as char);
	}
	s
}

/// Bytes from hex, with or without `0x`; odd lengths and non-hex digits are refused.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
	let s = s.strip_prefix("0x").unwrap_or(s);
	if !s.len().is_multiple_of(2) {
		return Err("odd number of hex digits".into());
	}
	// `from_str_radix` alone would take a sign (`+1`).
	if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
		return Err("bad hex".into());
	}
	(0..s.len())
		.step_by(2)
		.map(|i| {
			s.get(i..i + 2)
				.and_then(|b| u8::from_str_radix(b, 16).ok())
				.ok_or_else(|| "bad hex".to_string())
		})
		.collect()
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn round_trip() {
		let bytes = [0u8, 1, 0xab, 0xff];
		assert_eq!(hex(&bytes), "0x0001abff");
		assert_eq!(unhex(&hex(&bytes)), Ok(bytes.to_vec()));
		assert_eq!(unhex("0001abff"), Ok(bytes.to_vec()));
	}

	#[test]
	fn bad_hex_is_refused() {
		assert!(unhex("0xabc").is_err());
		assert!(unhex("zz").is_err());
		assert!(unhex("0x+1").is_err());
	}
}
