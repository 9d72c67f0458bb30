//! The check at the end of a run, a convergence bound after the last
//! fault: every client is back and subscribed, presence everywhere equals
//! the truth, and the nodes hold nothing for connections that are gone.

use std::collections::{BTreeMap, BTreeSet};

use tether_core::Channel;

use super::World;
use crate::grants;

impl World {
    pub(super) fn check_convergence(&mut self) {
        self.record(format_args!("converged?"));
        let unsettled = self.checker.unsettled();
        if unsettled > 0 {
            self.violation(format!("{unsettled} requests never settled"));
        }
        self.check_clients();
        let local = self.local_channels();
        for node in 0..self.nodes.len() {
            self.check_node(node, &local);
        }
        self.check_rejoins();
        for node in 0..self.setup.nodes {
            if self.router_store_up(node) == Some(false) {
                self.violation(format!("router{node}'s link to the backplane is down"));
            }
        }
    }

    /// Whose presence a client of `node` sees: its node's alone, or the
    /// whole cluster's or sharded node's (scope 0).
    fn presence_scope(&self, node: usize) -> usize {
        if self.store.is_some() || self.sharded() {
            0
        } else {
            node
        }
    }

    /// The channels client `index` must be in at the end: those of its
    /// spec, less the feeds when its current token does not grant them.
    fn channels_of(&self, index: usize) -> impl Iterator<Item = &Channel> {
        let granted = self.clients[index].grants;
        self.setup.clients[index]
            .channels
            .iter()
            .filter(move |channel| granted || !grants::is_feed(channel.as_str()))
    }

    /// The channels each node has local subscribers in: those of the
    /// clients whose current connection it holds.
    fn local_channels(&self) -> BTreeSet<(usize, String)> {
        let mut local = BTreeSet::new();
        for index in 0..self.setup.clients.len() {
            let Some(socket) = self.clients[index]
                .socket
                .and_then(|id| self.sockets.get(&id))
            else {
                continue;
            };
            for channel in self.channels_of(index) {
                local.insert((socket.node, channel.as_str().to_owned()));
            }
        }
        local
    }

    /// Every client is connected and live in its channels, and sees the
    /// true presence there: per node and channel, or per channel over a
    /// cluster.
    fn check_clients(&mut self) {
        let mut truth: BTreeMap<(usize, String), BTreeSet<String>> = BTreeMap::new();
        let mut problems = Vec::new();
        for (index, spec) in self.setup.clients.iter().enumerate() {
            let connected = self.clients[index]
                .session
                .as_ref()
                .is_some_and(|session| session.is_connected());
            if !connected {
                problems.push(format!("client {index} is not connected"));
                continue;
            }
            for channel in self.channels_of(index) {
                let (live, _) = self.checker.presence_view(index, channel.as_str());
                if !live {
                    problems.push(format!("client {index} is not live in {channel}"));
                }
                truth
                    .entry((self.presence_scope(spec.node), channel.as_str().to_owned()))
                    .or_default()
                    .insert(spec.user.clone());
            }
        }
        for (index, spec) in self.setup.clients.iter().enumerate() {
            for channel in self.channels_of(index) {
                let (live, seen) = self.checker.presence_view(index, channel.as_str());
                let key = (self.presence_scope(spec.node), channel.as_str().to_owned());
                let expected: Vec<String> = truth
                    .get(&key)
                    .map(|users| users.iter().cloned().collect())
                    .unwrap_or_default();
                if live && seen != expected {
                    problems.push(format!(
                        "client {index} sees {seen:?} in {channel}, the truth is {expected:?}"
                    ));
                }
            }
        }
        for problem in problems {
            self.violation(problem);
        }
    }

    /// The node holds exactly the connections of live clients, its gauges
    /// say so, and its link to the backplane (if any) is up.
    fn check_node(&mut self, node: usize, local: &BTreeSet<(usize, String)>) {
        let Some(server) = &self.nodes[node].server else {
            self.violation(format!("node{node} is down at the end"));
            return;
        };
        let mut problems = Vec::new();
        if !server.is_backplane_up() {
            problems.push(format!("node{node}'s link to the backplane is down"));
        }
        for (conn, id) in &self.nodes[node].sockets {
            let socket = &self.sockets[id];
            let current = self.clients[socket.client].socket == Some(*id);
            if !socket.client_open || socket.silent || !current {
                problems.push(format!(
                    "node{node} still holds {conn} of client {}, which is gone",
                    socket.client
                ));
            }
        }
        // A shard's metrics are its node's: the connections of every shard
        // of the node, and each of their channels once.
        let (sockets, channels) = if self.sharded() {
            let (home, _) = self.setup.place(node);
            let sockets = self
                .setup
                .cores_of(home)
                .map(|core| self.nodes[core].sockets.len())
                .sum::<usize>();
            let names: BTreeSet<&String> = local
                .iter()
                .filter(|(core, _)| self.setup.place(*core).0 == home)
                .map(|(_, name)| name)
                .collect();
            (sockets as u64, names.len() as u64)
        } else {
            let sockets = self.nodes[node].sockets.len();
            let channels = local.iter().filter(|(n, _)| *n == node).count();
            (sockets as u64, channels as u64)
        };
        let metrics = server.metrics_text();
        for (name, expected) in [
            ("tether_connections", sockets),
            ("tether_sockets", sockets),
            ("tether_channels", channels),
        ] {
            let value = gauge(&metrics, name);
            if value != Some(expected) {
                problems.push(format!(
                    "node{node}: {name} is {value:?}, expected {expected}"
                ));
            }
        }
        for problem in problems {
            self.violation(problem);
        }
    }
}

/// The value of a metric in Prometheus text.
fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::gauge;

    #[test]
    fn reads_a_metric_by_its_exact_name() {
        let text =
            "# TYPE tether_connections gauge\ntether_connections 3\ntether_connections_total 9\n";
        assert_eq!(gauge(text, "tether_connections"), Some(3));
        assert_eq!(gauge(text, "tether_connections_total"), Some(9));
        assert_eq!(gauge(text, "tether_channels"), None);
    }
}
