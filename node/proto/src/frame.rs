//! Framing: every frame is a `u32` little-endian payload length, then the payload. Header frames
//! carry one SCALE message; data frames carry a tag byte ([`TAG_DATA`](crate::TAG_DATA) or
//! [`TAG_MISSING`](crate::TAG_MISSING)) and raw bytes. A reader bounds the announced length by
//! the limit for the frame's position before allocating anything.
use codec::{Decode, Encode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Framing and decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
	/// Transport failure (includes the peer closing the stream).
	#[error("io: {0}")]
	Io(#[from] std::io::Error),
	/// A frame longer than allowed for its position.
	#[error("frame of {len} bytes exceeds limit {max}")]
	TooLarge {
		/// Announced length.
		len: usize,
		/// Allowed maximum.
		max: usize,
	},
	/// A frame that does not decode.
	#[error("undecodable frame: {0}")]
	Decode(#[from] codec::Error),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
	w: &mut W,
	payload: &[u8],
) -> Result<(), WireError> {
	w.write_all(&(payload.len() as u32).to_le_bytes()).await?;
	w.write_all(payload).await?;
	Ok(())
}

/// Writes one data frame (tag + bytes) without copying the bytes.
pub async fn write_data_frame<W: AsyncWrite + Unpin>(
	w: &mut W,
	tag: u8,
	data: &[u8],
) -> Result<(), WireError> {
	let len = (data.len() + 1) as u32;
	let mut head = [0u8; 5];
	head[..4].copy_from_slice(&len.to_le_bytes());
	head[4] = tag;
	w.write_all(&head).await?;
	w.write_all(data).await?;
	Ok(())
}

/// Reads one frame of at most `max` bytes into `buf` (reused between frames).
pub async fn read_frame_into<R: AsyncRead + Unpin>(
	r: &mut R,
	max: usize,
	buf: &mut Vec<u8>,
) -> Result<(), WireError> {
	let mut len = [0u8; 4];
	r.read_exact(&mut len).await?;
	let len = u32::from_le_bytes(len) as usize;
	if len > max {
		return Err(WireError::TooLarge { len, max });
	}
	buf.resize(len, 0);
	r.read_exact(buf).await?;
	Ok(())
}

/// Reads and decodes one SCALE frame of at most `max` bytes.
pub async fn read_msg<R: AsyncRead + Unpin, T: Decode>(
	r: &mut R,
	max: usize,
) -> Result<T, WireError> {
	let mut buf = Vec::new();
	read_frame_into(r, max, &mut buf).await?;
	Ok(T::decode(&mut &buf[..])?)
}

/// Writes one SCALE frame.
pub async fn write_msg<W: AsyncWrite + Unpin, T: Encode>(
	w: &mut W,
	msg: &T,
) -> Result<(), WireError> {
	write_frame(w, &msg.encode()).await
}
