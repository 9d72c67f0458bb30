//! Faults striking the world: crashes, resets, silent peers, partitions.

use crate::setup::Fault;

use super::{Ev, World, add_counters};

impl World {
    pub(super) fn strike(&mut self, fault: Fault) {
        match fault {
            Fault::Crash { node, down_for } => {
                self.record(format_args!("FAULT node{node} crashes for {down_for:?}"));
                self.crash(node);
                self.schedule.push(self.now + down_for, Ev::Restart(node));
            }
            Fault::Reset { client } => {
                self.record(format_args!("FAULT c{client} reset"));
                let Some(id) = self.clients[client].socket else {
                    return;
                };
                let to_client = self.now + self.packet_delay(client);
                let to_server = self.now + self.packet_delay(client);
                self.schedule.push(to_client, Ev::EndToClient(id));
                self.schedule.push(to_server, Ev::EndToServer(id));
            }
            Fault::Vanish { client } => {
                self.record(format_args!("FAULT c{client} vanishes"));
                if self.clients[client]
                    .session
                    .as_ref()
                    .is_some_and(|s| s.is_connected())
                {
                    self.silence(client);
                } else {
                    self.clients[client].vanish_pending = true;
                }
            }
            Fault::Regrant { client, granted } => {
                self.record(format_args!("FAULT c{client} regrant {granted}"));
                self.regrant(client, granted);
            }
            Fault::BackplaneOutage { until } => {
                self.record(format_args!("FAULT backplane unreachable until {until}"));
                if self.store.is_some() {
                    self.store_outage(until);
                }
            }
            Fault::BackplanePartition { node, until } => {
                self.record(format_args!(
                    "FAULT node{node} cut off from the backplane until {until}"
                ));
                if let Some(link) = self.links.get_mut(node) {
                    link.partitioned_until = link.partitioned_until.max(until);
                }
            }
            Fault::Partition { client, until } => {
                self.record(format_args!("FAULT c{client} partitioned until {until}"));
                let state = &mut self.clients[client];
                state.partitioned_until = state.partitioned_until.max(until);
            }
        }
    }

    /// The client's current connection goes silent both ways.
    pub(super) fn silence(&mut self, client: usize) {
        self.clients[client].vanish_pending = false;
        let Some(id) = self.clients[client].socket else {
            return;
        };
        if let Some(socket) = self.sockets.get_mut(&id) {
            socket.silent = true;
        }
    }

    /// The node's process dies with its memory, every shard of it and its
    /// router; the kernel resets its sockets, so every client hears the end
    /// of its stream.
    fn crash(&mut self, node: usize) {
        self.store_forgets(node);
        if let Some(shards) = &mut self.shards {
            shards.stop(node);
        }
        for core in self.setup.cores_of(node) {
            let state = &mut self.nodes[core];
            if let Some(server) = state.server.take() {
                add_counters(&mut self.retired, &server.counters());
            }
            state.incarnation += 1;
            state.timer_at = None;
            let sockets = std::mem::take(&mut state.sockets);
            for id in sockets.into_values() {
                self.close_node_end(id);
            }
        }
    }
}
