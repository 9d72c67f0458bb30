//! The compressed frame of a publication (permessage-deflate), made once
//! per publication and shared by every connection that agreed on it, as
//! the plain frame is shared by the others: encode once, deliver many.

use bytes::Bytes;

use crate::deflate::Deflater;
use crate::frame::{Opcode, compressed_frame, text_frame_payload};

/// The node's compressor, allocated the first time a publication is
/// compressed: one per node, none per connection.
#[derive(Debug, Default)]
pub(super) struct NodeDeflater(Option<Deflater>);

/// The compressed form of the frame being delivered, lent to the hub's
/// outbox for one call.
#[derive(Debug)]
pub(super) struct Compressed<'a> {
    deflater: &'a mut NodeDeflater,
    /// The last plain frame compressed and its compressed frame. Holding
    /// the plain frame keeps its allocation alive, so that a frame at the
    /// same address and of the same length is the same frame.
    last: Option<(Bytes, Bytes)>,
}

impl<'a> Compressed<'a> {
    /// Nothing compressed yet in this call.
    pub(super) fn new(deflater: &'a mut NodeDeflater) -> Self {
        Compressed {
            deflater,
            last: None,
        }
    }

    /// The frame that carries the text frame `plain` to a connection that
    /// agreed on permessage-deflate: `plain` itself when its payload is
    /// below `min_size`, else its compressed form, made on the first
    /// delivery of `plain` and shared by the next ones.
    pub(super) fn frame(&mut self, plain: &Bytes, min_size: usize) -> Bytes {
        let payload = text_frame_payload(plain);
        if payload.len() < min_size {
            return plain.clone();
        }
        if let Some((last, compressed)) = &self.last
            && last.as_ptr() == plain.as_ptr()
            && last.len() == plain.len()
        {
            return compressed.clone();
        }
        let deflater = self.deflater.0.get_or_insert_with(Deflater::new);
        let compressed = compressed_frame(Opcode::Text, &deflater.deflate(&payload), None);
        self.last = Some((plain.clone(), compressed.clone()));
        compressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::text_frame;

    #[test]
    fn a_frame_is_compressed_once_for_every_delivery() {
        let mut deflater = NodeDeflater::default();
        let mut compressed = Compressed::new(&mut deflater);
        let plain = text_frame(&[b'a'; 300]);
        let first = compressed.frame(&plain, 128);
        let second = compressed.frame(&plain.clone(), 128);
        assert_eq!(first[0], 0xc1);
        assert_eq!(first.as_ptr(), second.as_ptr());
        let other = text_frame(&[b'b'; 300]);
        assert_ne!(compressed.frame(&other, 128), first);
    }

    #[test]
    fn a_payload_below_the_threshold_goes_plain() {
        let mut deflater = NodeDeflater::default();
        let mut compressed = Compressed::new(&mut deflater);
        let plain = text_frame(&[b'a'; 127]);
        let frame = compressed.frame(&plain, 128);
        assert_eq!(frame.as_ptr(), plain.as_ptr());
        assert_eq!(frame[0], 0x81);
        assert!(deflater.0.is_none());
    }
}
