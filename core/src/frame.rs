//! RFC 6455 framing.

use bytes::{BufMut, Bytes, BytesMut};

/// A complete, final, unmasked text frame carrying `payload`: what a server
/// sends for every application message. Built once and shared by every
/// recipient.
pub fn text_frame(payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut frame = BytesMut::with_capacity(len + 10);
    frame.put_u8(0x81);
    if len < 126 {
        frame.put_u8(len as u8);
    } else if len <= usize::from(u16::MAX) {
        frame.put_u8(126);
        frame.put_u16(len as u16);
    } else {
        frame.put_u8(127);
        frame.put_u64(len as u64);
    }
    frame.put_slice(payload);
    frame.freeze()
}
