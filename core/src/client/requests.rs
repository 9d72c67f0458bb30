//! The table of requests awaiting a reply: ids, deadlines and what became of
//! each one.
//!
//! Ids are `r1`, `r2`, ... from one counter that lives as long as the session,
//! so an id is never reused, not even across reconnects: a late reply from an
//! old connection can never resolve a newer request. A request sent again
//! after a reconnect (a publication) is the same request and keeps its id.

use std::collections::BTreeMap;

use crate::envelope::RequestId;
use crate::time::Instant;

/// Where a pending request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Waiting in the offline queue; a dropped connection does not fail it.
    Queued,
    /// Written to the current connection; a dropped connection fails it.
    InFlight,
}

/// Requests awaiting a reply, keyed by the number in their id.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    last_id: u64,
    pending: BTreeMap<u64, Pending>,
}

/// One request awaiting its reply.
#[derive(Clone, Debug)]
struct Pending {
    deadline: Instant,
    stage: Stage,
    /// The text to send again when the connection that carried it drops.
    resend: Option<String>,
}

impl Requests {
    /// Allocates the next request number; every message the session sends
    /// with an id takes one, requests and subscriptions alike.
    pub(crate) fn next_number(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Records request `number` as awaiting a reply until `deadline`; with
    /// `resend`, a drop of the connection that carried it queues that text
    /// again instead of failing it.
    pub(crate) fn track(
        &mut self,
        number: u64,
        deadline: Instant,
        stage: Stage,
        resend: Option<String>,
    ) {
        let pending = Pending {
            deadline,
            stage,
            resend,
        };
        self.pending.insert(number, pending);
    }

    /// The id of request number `number`: `r` and the number.
    pub(crate) fn id(number: u64) -> RequestId {
        RequestId::new(format!("r{number}")).expect("r and at most 20 digits is a valid id")
    }

    /// The number inside an id this table handed out, if it is one of ours.
    pub(crate) fn parse_id(text: &str) -> Option<u64> {
        let digits = text.strip_prefix('r')?;
        if digits.starts_with('0') || digits.starts_with('+') {
            return None;
        }
        digits.parse().ok()
    }

    /// Marks a queued request as written to the connection.
    pub(crate) fn mark_in_flight(&mut self, number: u64) {
        if let Some(pending) = self.pending.get_mut(&number) {
            pending.stage = Stage::InFlight;
        }
    }

    /// Whether request `number` awaits its reply.
    pub(crate) fn is_pending(&self, number: u64) -> bool {
        self.pending.contains_key(&number)
    }

    /// Removes a request that got its reply; false if it was not pending
    /// (already resolved, timed out, or never ours).
    pub(crate) fn resolve(&mut self, number: u64) -> bool {
        self.pending.remove(&number).is_some()
    }

    /// The earliest deadline of any pending request.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|pending| pending.deadline).min()
    }

    /// Removes and returns, in id order, every request whose deadline is at
    /// or before `now`, with the stage it was in.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(u64, Stage)> {
        self.take(|pending| pending.deadline <= now)
    }

    /// Moves every request written to the connection that just dropped and
    /// that may be sent again back to the queued stage; returns them with
    /// their texts, in id order.
    pub(crate) fn requeue_resendable(&mut self) -> Vec<(u64, String)> {
        self.pending
            .iter_mut()
            .filter(|(_, pending)| pending.stage == Stage::InFlight)
            .filter_map(|(number, pending)| {
                let text = pending.resend.clone()?;
                pending.stage = Stage::Queued;
                Some((*number, text))
            })
            .collect()
    }

    /// Removes and returns, in id order, every request written to the
    /// connection that just dropped.
    pub(crate) fn drop_in_flight(&mut self) -> Vec<u64> {
        self.take(|pending| pending.stage == Stage::InFlight)
            .into_iter()
            .map(|(number, _)| number)
            .collect()
    }

    /// Removes and returns, in id order, every pending request.
    pub(crate) fn drain(&mut self) -> Vec<u64> {
        self.take(|_| true)
            .into_iter()
            .map(|(number, _)| number)
            .collect()
    }

    fn take(&mut self, mut select: impl FnMut(&Pending) -> bool) -> Vec<(u64, Stage)> {
        let taken: Vec<(u64, Stage)> = self
            .pending
            .iter()
            .filter(|(_, pending)| select(pending))
            .map(|(number, pending)| (*number, pending.stage))
            .collect();
        for (number, _) in &taken {
            self.pending.remove(number);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(requests: &mut Requests, deadline: Instant, stage: Stage) -> u64 {
        let number = requests.next_number();
        requests.track(number, deadline, stage, None);
        number
    }

    #[test]
    fn ids_count_up_and_round_trip() {
        let mut requests = Requests::default();
        let a = insert(&mut requests, Instant::from_millis(10), Stage::Queued);
        let b = insert(&mut requests, Instant::from_millis(5), Stage::InFlight);
        assert_eq!((a, b), (1, 2));
        assert_eq!(Requests::id(b).as_str(), "r2");
        assert_eq!(Requests::parse_id("r2"), Some(2));
        for foreign in ["2", "r", "r02", "r+2", "x2", "r-1"] {
            assert_eq!(Requests::parse_id(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn expire_takes_exactly_the_due_requests() {
        let mut requests = Requests::default();
        insert(&mut requests, Instant::from_millis(10), Stage::Queued);
        insert(&mut requests, Instant::from_millis(5), Stage::InFlight);
        assert_eq!(requests.next_deadline(), Some(Instant::from_millis(5)));
        assert!(requests.expire(Instant::from_millis(4)).is_empty());
        assert_eq!(
            requests.expire(Instant::from_millis(5)),
            [(2, Stage::InFlight)]
        );
        assert_eq!(requests.next_deadline(), Some(Instant::from_millis(10)));
        assert!(!requests.resolve(2));
        assert!(requests.resolve(1));
        assert_eq!(requests.next_deadline(), None);
    }

    #[test]
    fn a_drop_fails_only_what_was_written() {
        let mut requests = Requests::default();
        let queued = insert(&mut requests, Instant::from_millis(10), Stage::Queued);
        let sent = insert(&mut requests, Instant::from_millis(10), Stage::Queued);
        requests.mark_in_flight(sent);
        assert_eq!(requests.drop_in_flight(), [sent]);
        assert_eq!(requests.drain(), [queued]);
    }

    #[test]
    fn a_drop_requeues_what_may_be_sent_again() {
        let mut requests = Requests::default();
        let deadline = Instant::from_millis(10);
        let plain = insert(&mut requests, deadline, Stage::InFlight);
        let resendable = requests.next_number();
        requests.track(resendable, deadline, Stage::InFlight, Some("p".into()));
        let queued = requests.next_number();
        requests.track(queued, deadline, Stage::Queued, Some("q".into()));
        assert_eq!(requests.requeue_resendable(), [(resendable, "p".into())]);
        assert_eq!(requests.drop_in_flight(), [plain]);
        assert_eq!(requests.drain(), [resendable, queued]);
    }
}
