//! A connection's outbound queue: complete frames waiting for the socket,
//! measured in bytes, with the backpressure policy of PROTOCOL.md section 8.
//!
//! Frames are shared `Bytes`: a publication framed once sits in every
//! subscriber's queue as the same buffer. The queue decides, per frame, to
//! keep, drop or coalesce it; the connection decides what an overflow means
//! (close 4008). The queue allocates nothing until the first frame arrives.
//!
//! The driver takes whole frames in batches ([`OutboundQueue::pop_batch`])
//! only as fast as its socket accepts them, and comes back for the next batch
//! only once the previous one is written: so the batch in the driver's hands
//! still counts as queued until that next call. What the queue holds is then
//! exactly what the peer has not taken, which is what backpressure measures;
//! a peer that stops reading cannot hide its backlog in a stuck write.
//!
//! Accounting invariant, checked by the tests: bytes `enqueued` minus bytes
//! `written` minus bytes `superseded` by coalescing or discarded on
//! termination equals [`OutboundQueue::len_bytes`].

use std::collections::VecDeque;

use bytes::Bytes;

/// The key under which `latest_only` publications of one channel coalesce:
/// handed out by the hub, one per channel, never reused for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoalesceKey(pub(crate) u64);

/// What the queue did with a frame offered to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameAdmission {
    /// Appended to the queue.
    Queued,
    /// Took the place of an undelivered frame with the same coalesce key.
    Coalesced,
    /// Not queued: the queue was above `high_water` (channel messages only).
    Dropped,
    /// Not queued: it would take the queue past `hard_limit`.
    OverHardLimit,
}

/// Byte and message counters of one queue, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Bytes accepted into the queue.
    pub enqueued: u64,
    /// Bytes the driver wrote to the socket.
    pub written: u64,
    /// Frames handed to the driver for the socket.
    pub written_frames: u64,
    /// Bytes removed unwritten: replaced by a newer coalesced frame, or
    /// discarded when the connection was terminated.
    pub superseded: u64,
    /// Channel messages dropped above `high_water`.
    pub dropped_messages: u64,
    /// Channel messages replaced by a newer one of the same channel.
    pub coalesced_messages: u64,
}

/// The byte thresholds of the backpressure policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Above this many queued bytes, channel messages are dropped.
    pub high_water: usize,
    /// No frame is queued past this many bytes.
    pub hard_limit: usize,
}

#[derive(Clone, Debug)]
struct Queued {
    frame: Bytes,
    coalesce: Option<CoalesceKey>,
}

/// Frames waiting for the socket, oldest first.
#[derive(Clone, Debug, Default)]
pub struct OutboundQueue {
    frames: VecDeque<Queued>,
    /// Bytes of `frames`.
    queued: usize,
    /// Bytes of the last batch, in the driver's hands and not yet written.
    in_flight: usize,
    stats: QueueStats,
}

impl OutboundQueue {
    /// Queues a reply, error, presence snapshot or control frame. These are
    /// never dropped; only the hard limit refuses them.
    pub fn push_control(&mut self, frame: Bytes, limits: QueueLimits) -> FrameAdmission {
        if self.len_bytes() + frame.len() > limits.hard_limit {
            return FrameAdmission::OverHardLimit;
        }
        self.append(frame, None);
        FrameAdmission::Queued
    }

    /// Queues a frame the protocol itself requires (handshake response,
    /// heartbeat Ping, close frame, HTTP answer) behind everything already
    /// queued, whatever the limits: each is a few bytes and the connection
    /// sends a bounded number of them.
    pub fn push_protocol(&mut self, frame: Bytes) {
        self.append(frame, None);
    }

    /// Offers a channel publication. With a coalesce key it replaces the
    /// undelivered frame of the same key, if any, wherever the queue stands;
    /// without one it is dropped while the queue is above `high_water`.
    pub fn push_publication(
        &mut self,
        frame: &Bytes,
        coalesce: Option<CoalesceKey>,
        limits: QueueLimits,
    ) -> FrameAdmission {
        if let Some(key) = coalesce
            && let Some(index) = self.undelivered_position(key)
        {
            let old_len = self.frames[index].frame.len();
            if self.len_bytes() - old_len + frame.len() > limits.hard_limit {
                return FrameAdmission::OverHardLimit;
            }
            let old = std::mem::replace(&mut self.frames[index].frame, frame.clone());
            self.queued = self.queued - old.len() + frame.len();
            self.stats.enqueued += frame.len() as u64;
            self.stats.superseded += old.len() as u64;
            self.stats.coalesced_messages += 1;
            return FrameAdmission::Coalesced;
        }
        if coalesce.is_none() && self.is_above_high_water(limits) {
            self.stats.dropped_messages += 1;
            return FrameAdmission::Dropped;
        }
        if self.len_bytes() + frame.len() > limits.hard_limit {
            return FrameAdmission::OverHardLimit;
        }
        self.append(frame.clone(), coalesce);
        FrameAdmission::Queued
    }

    /// Moves frames, oldest first, into `out` until they add up to at least
    /// `budget` bytes or the queue is empty; returns the bytes moved. They
    /// count as not yet written until [`Self::handle_written`].
    pub fn pop_batch(&mut self, budget: usize, out: &mut Vec<Bytes>) -> usize {
        let mut moved = 0;
        let mut frames = 0;
        while moved < budget {
            let Some(queued) = self.frames.pop_front() else {
                break;
            };
            moved += queued.frame.len();
            frames += 1;
            out.push(queued.frame);
        }
        self.queued -= moved;
        self.in_flight += moved;
        self.stats.written_frames += frames;
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
        moved
    }

    /// `bytes` of the frames handed out are written (at most what is in
    /// flight counts).
    pub fn handle_written(&mut self, bytes: usize) {
        let bytes = bytes.min(self.in_flight);
        self.in_flight -= bytes;
        self.stats.written += bytes as u64;
    }

    /// Throws away everything unwritten (the connection was terminated).
    pub fn discard(&mut self) {
        self.stats.superseded += self.len_bytes() as u64;
        self.queued = 0;
        self.in_flight = 0;
        self.frames = VecDeque::new();
    }

    /// Bytes not yet written: queued, plus the batch in the driver's hands.
    pub fn len_bytes(&self) -> usize {
        self.queued + self.in_flight
    }

    /// Whether no frame waits to be handed to the driver.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Whether more than `high_water` bytes are not yet written.
    pub fn is_above_high_water(&self, limits: QueueLimits) -> bool {
        self.len_bytes() > limits.high_water
    }

    #[cfg(test)]
    /// The queue's counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    fn append(&mut self, frame: Bytes, coalesce: Option<CoalesceKey>) {
        self.queued += frame.len();
        self.stats.enqueued += frame.len() as u64;
        self.frames.push_back(Queued { frame, coalesce });
    }

    /// The index of the queued frame with `key`.
    fn undelivered_position(&self, key: CoalesceKey) -> Option<usize> {
        self.frames
            .iter()
            .position(|queued| queued.coalesce == Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: QueueLimits = QueueLimits {
        high_water: 100,
        hard_limit: 400,
    };

    fn frame(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    fn contents(queue: &OutboundQueue) -> Vec<u8> {
        let mut copy = queue.clone();
        let mut frames = Vec::new();
        copy.pop_batch(usize::MAX, &mut frames);
        frames.concat()
    }

    #[test]
    fn channel_messages_drop_above_high_water_but_replies_do_not() {
        let mut queue = OutboundQueue::default();
        assert_eq!(
            queue.push_publication(&frame(60, 1), None, LIMITS),
            FrameAdmission::Queued
        );
        assert_eq!(
            queue.push_publication(&frame(60, 2), None, LIMITS),
            FrameAdmission::Queued
        );
        assert_eq!(queue.len_bytes(), 120);
        assert_eq!(
            queue.push_publication(&frame(10, 3), None, LIMITS),
            FrameAdmission::Dropped
        );
        assert_eq!(
            queue.push_control(frame(10, 4), LIMITS),
            FrameAdmission::Queued
        );
        assert_eq!(queue.stats().dropped_messages, 1);
        assert_eq!(queue.len_bytes(), 130);
    }

    #[test]
    fn nothing_is_queued_past_the_hard_limit() {
        let mut queue = OutboundQueue::default();
        assert_eq!(
            queue.push_control(frame(400, 1), LIMITS),
            FrameAdmission::Queued
        );
        assert_eq!(
            queue.push_control(frame(1, 2), LIMITS),
            FrameAdmission::OverHardLimit
        );
        assert_eq!(queue.len_bytes(), 400);
    }

    #[test]
    fn latest_only_keeps_the_newest_undelivered_frame_in_place() {
        let mut queue = OutboundQueue::default();
        let ticker = Some(CoalesceKey(7));
        queue.push_publication(&frame(2, 1), ticker, LIMITS);
        queue.push_control(frame(2, 2), LIMITS);
        assert_eq!(
            queue.push_publication(&frame(3, 3), ticker, LIMITS),
            FrameAdmission::Coalesced
        );
        assert_eq!(contents(&queue), vec![3, 3, 3, 2, 2]);
        assert_eq!(queue.stats().coalesced_messages, 1);
    }

    #[test]
    fn a_frame_taken_by_the_driver_is_not_replaced() {
        let mut queue = OutboundQueue::default();
        let ticker = Some(CoalesceKey(7));
        queue.push_publication(&frame(4, 1), ticker, LIMITS);
        let mut taken = Vec::new();
        queue.pop_batch(1, &mut taken);
        assert_eq!(
            queue.push_publication(&frame(4, 2), ticker, LIMITS),
            FrameAdmission::Queued
        );
        assert_eq!(taken.concat(), vec![1, 1, 1, 1]);
        assert_eq!(contents(&queue), vec![2, 2, 2, 2]);
    }

    #[test]
    fn batches_take_whole_frames_up_to_the_budget() {
        let mut queue = OutboundQueue::default();
        queue.push_control(Bytes::from_static(b"abc"), LIMITS);
        queue.push_control(Bytes::from_static(b"de"), LIMITS);
        queue.push_control(Bytes::from_static(b"f"), LIMITS);
        let mut batch = Vec::new();
        assert_eq!(queue.pop_batch(4, &mut batch), 5);
        assert_eq!(batch.concat(), b"abcde");
        assert_eq!(contents(&queue), b"f");
        assert_eq!(queue.len_bytes(), 6, "the batch counts until it is written");
        assert_eq!(queue.stats().written, 0);
        queue.handle_written(5);
        assert_eq!(queue.len_bytes(), 1);
        assert_eq!(queue.stats().written, 5);
        batch.clear();
        assert_eq!(queue.pop_batch(4, &mut batch), 1);
        assert!(queue.is_empty());
        assert_eq!(queue.len_bytes(), 1, "taken, not yet written");
        queue.handle_written(1);
        assert_eq!(queue.pop_batch(4, &mut batch), 0);
        assert_eq!(queue.len_bytes(), 0);
        assert_eq!(queue.stats().written, 6);
        assert_eq!(queue.stats().written_frames, 3);
    }

    #[test]
    fn a_batch_stuck_in_the_driver_keeps_the_queue_above_high_water() {
        let mut queue = OutboundQueue::default();
        queue.push_publication(&frame(90, 1), None, LIMITS);
        queue.pop_batch(usize::MAX, &mut Vec::new());
        assert_eq!(
            queue.push_publication(&frame(20, 2), None, LIMITS),
            FrameAdmission::Queued
        );
        assert!(queue.is_above_high_water(LIMITS));
        assert_eq!(
            queue.push_publication(&frame(20, 3), None, LIMITS),
            FrameAdmission::Dropped
        );
    }

    #[test]
    fn a_shared_frame_is_not_copied() {
        let shared = frame(50, 9);
        let mut a = OutboundQueue::default();
        let mut b = OutboundQueue::default();
        a.push_publication(&shared, None, LIMITS);
        b.push_publication(&shared, None, LIMITS);
        let pointer = |q: &mut OutboundQueue| {
            let mut batch = Vec::new();
            q.pop_batch(1, &mut batch);
            batch[0].as_ptr()
        };
        assert_eq!(pointer(&mut a), shared.as_ptr());
        assert_eq!(pointer(&mut b), shared.as_ptr());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Control(usize),
        Publication(usize, Option<u64>),
        Write(usize),
        Discard,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..80).prop_map(Op::Control),
            (1usize..80, proptest::option::of(0u64..3)).prop_map(|(n, k)| Op::Publication(n, k)),
            (0usize..200).prop_map(Op::Write),
            Just(Op::Discard),
        ]
    }

    proptest! {
        #[test]
        fn accounting_holds_and_replies_are_never_dropped(ops in proptest::collection::vec(op(), 1..200)) {
            let mut queue = OutboundQueue::default();
            let mut controls_refused_below_hard_limit = 0;
            for op in ops {
                match op {
                    Op::Control(len) => {
                        let before = queue.len_bytes();
                        if queue.push_control(frame(len, 0), LIMITS) != FrameAdmission::Queued {
                            prop_assert!(before + len > LIMITS.hard_limit);
                            controls_refused_below_hard_limit += usize::from(before + len <= LIMITS.hard_limit);
                        }
                    }
                    Op::Publication(len, key) => {
                        queue.push_publication(&frame(len, 1), key.map(CoalesceKey), LIMITS);
                    }
                    Op::Write(budget) => {
                        queue.pop_batch(budget, &mut Vec::new());
                    }
                    Op::Discard => queue.discard(),
                }
                let stats = queue.stats();
                prop_assert_eq!(
                    stats.enqueued - stats.written - stats.superseded,
                    queue.len_bytes() as u64
                );
                prop_assert!(queue.len_bytes() <= LIMITS.hard_limit);
                prop_assert!(contents(&queue).len() <= queue.len_bytes());
            }
            prop_assert_eq!(controls_refused_below_hard_limit, 0);
        }
    }
}
