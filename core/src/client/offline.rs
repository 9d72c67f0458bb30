//! The bounded queue of messages written while there is no authenticated
//! connection to carry them.

use std::collections::VecDeque;

/// One encoded message waiting for the next `auth_ack`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Queued {
    /// The JSON text, already encoded (and carrying its `id`, if any).
    pub(crate) text: String,
    /// The request number this message belongs to, if it is a request.
    pub(crate) request: Option<u64>,
}

/// First in, first out, at most `capacity` messages.
#[derive(Debug)]
pub(crate) struct OfflineQueue {
    items: VecDeque<Queued>,
    capacity: usize,
}

/// The queue already holds `capacity` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

impl OfflineQueue {
    /// An empty queue holding at most `capacity` messages.
    pub(crate) fn new(capacity: usize) -> Self {
        OfflineQueue {
            items: VecDeque::new(),
            capacity,
        }
    }

    /// Whether one more message would be refused.
    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.capacity
    }

    /// Appends a message, or refuses it when the queue is full.
    pub(crate) fn push(&mut self, item: Queued) -> Result<(), Full> {
        if self.is_full() {
            return Err(Full);
        }
        self.items.push_back(item);
        Ok(())
    }

    /// Puts `items`, in their order, before everything queued: requests
    /// that a dropped connection carried and that go out again first. They
    /// were accepted once, so the bound does not refuse them; it counts them
    /// against what is queued after them.
    pub(crate) fn requeue(&mut self, items: impl DoubleEndedIterator<Item = Queued>) {
        for item in items.rev() {
            self.items.push_front(item);
        }
    }

    /// Forgets the message of a request that no longer needs sending (it
    /// timed out while waiting).
    pub(crate) fn remove_request(&mut self, number: u64) {
        self.items.retain(|item| item.request != Some(number));
    }

    /// Takes every message, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Queued> + '_ {
        self.items.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str, request: Option<u64>) -> Queued {
        Queued {
            text: text.into(),
            request,
        }
    }

    #[test]
    fn keeps_order_refuses_past_capacity_and_drops_timed_out_requests() {
        let mut queue = OfflineQueue::new(3);
        queue.push(item("a", None)).unwrap();
        queue.push(item("b", Some(1))).unwrap();
        queue.push(item("c", None)).unwrap();
        assert_eq!(queue.push(item("d", None)), Err(Full));
        queue.remove_request(1);
        queue.push(item("d", None)).unwrap();
        let texts: Vec<String> = queue.drain().map(|queued| queued.text).collect();
        assert_eq!(texts, ["a", "c", "d"]);
        assert!(!queue.is_full());
    }

    #[test]
    fn requeued_messages_go_first_even_past_capacity() {
        let mut queue = OfflineQueue::new(1);
        queue.push(item("c", None)).unwrap();
        queue.requeue([item("a", Some(1)), item("b", Some(2))].into_iter());
        assert!(queue.is_full());
        let texts: Vec<String> = queue.drain().map(|queued| queued.text).collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }
}
