//! The per-user bound on channels new to the node,
//! `max_new_channels_per_user`: each user has a fixed one-minute window,
//! opened by the first new channel it brings into existence, within which
//! it may bring at most that many distinct channels (using one of them again
//! counts nothing); the window ends exactly one minute after it opened.
//! Windows are kept only while they last, so the bound costs at most
//! `max_new_channels_per_user` names per user active in the last minute,
//! and leaving does not reset it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::envelope::Channel;
use crate::time::Instant;

/// How long one user's window lasts.
pub(super) const NEW_CHANNEL_WINDOW: Duration = Duration::from_secs(60);

/// The open windows, per user.
#[derive(Debug, Default)]
pub(super) struct NewChannels {
    windows: BTreeMap<String, Window>,
    /// `(end, user)` of every open window, in the order they end as long as
    /// time does not go backwards.
    ends: VecDeque<(Instant, String)>,
}

#[derive(Debug)]
struct Window {
    ends: Instant,
    channels: BTreeSet<Channel>,
}

impl NewChannels {
    /// Counts `channel`, new to the node, for `user` at `now` and returns
    /// `true`; or returns `false` and counts nothing when `user` already
    /// brought `limit` other channels into existence in its current window.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        user: &str,
        channel: &Channel,
        limit: usize,
    ) -> bool {
        self.forget_ended(now);
        match self.windows.get_mut(user) {
            Some(window) if window.channels.contains(channel) => true,
            Some(window) if window.channels.len() >= limit => false,
            Some(window) => {
                window.channels.insert(channel.clone());
                true
            }
            None => {
                let ends = now + NEW_CHANNEL_WINDOW;
                let channels = BTreeSet::from([channel.clone()]);
                self.windows
                    .insert(user.to_owned(), Window { ends, channels });
                self.ends.push_back((ends, user.to_owned()));
                true
            }
        }
    }

    fn forget_ended(&mut self, now: Instant) {
        while let Some((end, _)) = self.ends.front()
            && *end <= now
        {
            let Some((end, user)) = self.ends.pop_front() else {
                return;
            };
            if self.windows.get(&user).is_some_and(|w| w.ends == end) {
                self.windows.remove(&user);
            }
        }
    }
}
