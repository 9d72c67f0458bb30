//! How far a writer is through the frames one [`Server::poll_transmit`]
//! handed out: what is left, as slices for one vectored write, and the
//! advance by what a write took. Every runtime writes the same way.
//!
//! [`Server::poll_transmit`]: super::Server::poll_transmit

use std::io::IoSlice;

use bytes::Bytes;

/// A writer's place in a batch of frames: the frame it is in and the bytes
/// of it already written. Keep it across writes (it holds no borrow, so an
/// idle connection's task keeps no slices), and fill the slices of each
/// write anew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCursor {
    frame: usize,
    offset: usize,
}

impl WriteCursor {
    /// Fills `slices` with what is left of `frames`, in order, as many as
    /// fit; gives how many it filled (0 once everything is written).
    pub fn slices<'a>(&self, frames: &'a [Bytes], slices: &mut [IoSlice<'a>]) -> usize {
        let Some(first) = frames.get(self.frame) else {
            return 0;
        };
        let left = std::iter::once(&first[self.offset..])
            .chain(frames[self.frame + 1..].iter().map(|frame| &frame[..]));
        let mut filled = 0;
        for (slot, bytes) in slices.iter_mut().zip(left) {
            *slot = IoSlice::new(bytes);
            filled += 1;
        }
        filled
    }

    /// A write took `written` bytes of what [`WriteCursor::slices`] gave.
    pub fn advance(&mut self, frames: &[Bytes], mut written: usize) {
        while let Some(frame) = frames.get(self.frame) {
            let left = frame.len() - self.offset;
            if written < left {
                self.offset += written;
                return;
            }
            written -= left;
            self.frame += 1;
            self.offset = 0;
        }
    }

    /// Whether every byte of `frames` is written.
    pub fn is_done(&self, frames: &[Bytes]) -> bool {
        self.frame >= frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(cursor: &WriteCursor, frames: &[Bytes], room: usize) -> Vec<Vec<u8>> {
        let mut slices = vec![IoSlice::new(&[]); room];
        let filled = cursor.slices(frames, &mut slices);
        slices[..filled]
            .iter()
            .map(|slice| slice.to_vec())
            .collect()
    }

    #[test]
    fn partial_writes_resume_inside_a_frame_and_across_frames() {
        let frames = [
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"f"),
        ];
        let mut cursor = WriteCursor::default();
        assert_eq!(left(&cursor, &frames, 2), [b"abc".to_vec(), b"de".to_vec()]);
        cursor.advance(&frames, 2);
        assert_eq!(
            left(&cursor, &frames, 8),
            [b"c".to_vec(), b"de".to_vec(), b"f".to_vec()]
        );
        cursor.advance(&frames, 2);
        assert_eq!(left(&cursor, &frames, 8), [b"e".to_vec(), b"f".to_vec()]);
        assert!(!cursor.is_done(&frames));
        cursor.advance(&frames, 2);
        assert!(cursor.is_done(&frames));
        assert_eq!(left(&cursor, &frames, 8), Vec::<Vec<u8>>::new());
    }
}
