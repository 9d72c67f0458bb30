//! The channels the application wants to be in, and the last position seen
//! in each: what is re-subscribed after a reconnect, and what filters
//! duplicate deliveries.

use std::collections::BTreeMap;

use crate::envelope::{Channel, Position};

/// Tracked channels, in name order (so re-subscriptions go out in a
/// deterministic order).
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    channels: BTreeMap<String, Subscription>,
}

/// One tracked channel.
#[derive(Debug)]
struct Subscription {
    channel: Channel,
    /// The epoch of the channel and the highest offset delivered from it;
    /// `None` until the first `subscribed`.
    position: Option<Position>,
    /// The number of the `subscribe` sent on the current connection and not
    /// yet answered.
    pending: Option<u64>,
}

impl Subscriptions {
    /// Starts tracking `channel`; false if it already was.
    pub(crate) fn add(&mut self, channel: Channel) -> bool {
        let name = channel.as_str().to_owned();
        if self.channels.contains_key(&name) {
            return false;
        }
        let subscription = Subscription {
            channel,
            position: None,
            pending: None,
        };
        self.channels.insert(name, subscription);
        true
    }

    /// Stops tracking `channel`; false if it was not tracked.
    pub(crate) fn remove(&mut self, channel: &Channel) -> bool {
        self.channels.remove(channel.as_str()).is_some()
    }

    /// Every tracked channel with the position to resume from, in name
    /// order.
    pub(crate) fn resume_points(&self) -> Vec<(Channel, Option<Position>)> {
        self.channels
            .values()
            .map(|sub| (sub.channel.clone(), sub.position.clone()))
            .collect()
    }

    /// Records that `subscribe` number `number` was sent for `channel`.
    pub(crate) fn set_pending(&mut self, channel: &Channel, number: u64) {
        if let Some(sub) = self.channels.get_mut(channel.as_str()) {
            sub.pending = Some(number);
        }
    }

    /// Forgets every unanswered `subscribe`: the connection that carried
    /// them is gone and the next one sends them again.
    pub(crate) fn clear_pending(&mut self) {
        for sub in self.channels.values_mut() {
            sub.pending = None;
        }
    }

    /// The server refused `subscribe` number `number`: stops tracking its
    /// channel and returns it.
    pub(crate) fn refuse(&mut self, number: u64) -> Option<Channel> {
        let name = self
            .channels
            .iter()
            .find(|(_, sub)| sub.pending == Some(number))
            .map(|(name, _)| name.clone())?;
        self.channels.remove(&name).map(|sub| sub.channel)
    }

    /// The server confirmed a subscription at `epoch`/`offset`. A new epoch
    /// replaces the position (the old offsets mean nothing any more); the
    /// same epoch keeps the higher offset, since replayed messages may have
    /// moved it already.
    pub(crate) fn confirm(&mut self, channel: &Channel, epoch: &str, offset: u64) {
        let Some(sub) = self.channels.get_mut(channel.as_str()) else {
            return;
        };
        sub.pending = None;
        match &mut sub.position {
            Some(position) if position.epoch == epoch => {
                position.offset = position.offset.max(offset);
            }
            position => {
                *position = Some(Position {
                    epoch: epoch.to_owned(),
                    offset,
                });
            }
        }
    }

    /// Whether a publication at `offset` on `channel` is new: false for one
    /// at or below the last offset seen (a duplicate around a reconnect),
    /// true otherwise, advancing the position. Untracked channels (raw
    /// subscriptions the application made itself) are not filtered.
    pub(crate) fn accept(&mut self, channel: &Channel, offset: u64) -> bool {
        let position = self
            .channels
            .get_mut(channel.as_str())
            .and_then(|sub| sub.position.as_mut());
        match position {
            Some(position) if offset <= position.offset => false,
            Some(position) => {
                position.offset = offset;
                true
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> Channel {
        Channel::new(name).unwrap()
    }

    #[test]
    fn filters_offsets_already_seen_in_the_same_epoch() {
        let mut subs = Subscriptions::default();
        assert!(subs.add(channel("news")));
        assert!(!subs.add(channel("news")));
        subs.confirm(&channel("news"), "e1", 4);
        assert!(!subs.accept(&channel("news"), 4));
        assert!(subs.accept(&channel("news"), 5));
        assert!(!subs.accept(&channel("news"), 5));
        assert!(subs.accept(&channel("elsewhere"), 1));
        let points = subs.resume_points();
        assert_eq!(points[0].1.as_ref().map(|p| p.offset), Some(5));
    }

    #[test]
    fn a_new_epoch_resets_the_position() {
        let mut subs = Subscriptions::default();
        subs.add(channel("news"));
        subs.confirm(&channel("news"), "e1", 9);
        subs.confirm(&channel("news"), "e1", 7);
        assert!(!subs.accept(&channel("news"), 9));
        subs.confirm(&channel("news"), "e2", 0);
        assert!(subs.accept(&channel("news"), 1));
    }

    #[test]
    fn a_refused_subscription_stops_being_tracked() {
        let mut subs = Subscriptions::default();
        subs.add(channel("a"));
        subs.add(channel("b"));
        subs.set_pending(&channel("b"), 7);
        assert_eq!(subs.refuse(6), None);
        assert_eq!(subs.refuse(7), Some(channel("b")));
        let names: Vec<Channel> = subs.resume_points().into_iter().map(|p| p.0).collect();
        assert_eq!(names, [channel("a")]);
    }
}
