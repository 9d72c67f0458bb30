//! The node end of the world: connections are accepted, fed what reaches
//! them, and drained per the node's contract: events handled until none is
//! left, frames taken only while the socket has room, sockets closed when
//! the node says so and reported back.

use std::time::Duration;

use tether_core::{ConnId, ConnectRequest, Decision, Instant, Output, Rejection, Verdict};

use crate::grants;

use super::{Ev, SocketId, World, boot};

/// The queue takes the protocol's own frames (a Ping, the close frame)
/// past `hard_limit`; each is at most 127 bytes and there are at most two.
const PROTOCOL_FRAMES_PAST_THE_LIMIT: usize = 2 * 127;

impl World {
    pub(super) fn syn(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get(&id) else {
            return;
        };
        let (client, node, client_open) = (socket.client, socket.node, socket.client_open);
        if !client_open {
            self.collect(id);
            return;
        }
        let now = self.now;
        let delay = self.packet_delay(client);
        let state = &mut self.nodes[node];
        let accepted = state.server.as_mut().map(|server| server.accept(now));
        match accepted {
            Some(conn) => {
                let incarnation = state.incarnation;
                state.sockets.insert(conn, id);
                let socket = self.sockets.get_mut(&id).expect("looked up above");
                socket.conn = Some(conn);
                socket.server_open = true;
                socket.incarnation = incarnation;
                self.schedule.push(now + delay, Ev::SynAck(id));
                self.drain_node(node);
            }
            None => self.schedule.push(now + delay, Ev::Refused(id)),
        }
    }

    pub(super) fn bytes_reach_server(&mut self, id: SocketId, bytes: &[u8]) {
        let Some((node, conn)) = self.server_end(id) else {
            return;
        };
        let now = self.now;
        if let Some(server) = &mut self.nodes[node].server {
            server.handle_read(now, conn, bytes);
        }
        self.drain_node(node);
    }

    pub(super) fn end_to_server(&mut self, id: SocketId) {
        let Some((node, conn)) = self.server_end(id) else {
            return;
        };
        self.close_server_end(node, conn, id);
        self.drain_node(node);
    }

    pub(super) fn writable(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get_mut(&id) else {
            return;
        };
        socket.writable_pending = false;
        let Some((node, conn)) = self.server_end(id) else {
            return;
        };
        self.flush(node, conn, id);
        self.drain_node(node);
    }

    pub(super) fn verdict(&mut self, node: usize, incarnation: u32, conn: ConnId, token: String) {
        let now = self.now;
        let state = &mut self.nodes[node];
        if state.incarnation != incarnation {
            return;
        }
        if let Some(server) = &mut state.server {
            server.handle_auth_verdict(now, conn, Some(grants::identity(&token)));
        }
        self.drain_node(node);
    }

    pub(super) fn node_timer(&mut self, node: usize) {
        let now = self.now;
        let state = &mut self.nodes[node];
        if state.timer_at == Some(now) {
            state.timer_at = None;
        }
        if let Some(server) = &mut state.server {
            server.handle_timeout(now);
        }
        self.drain_node(node);
    }

    pub(super) fn backend_publishes(&mut self) {
        let Some(backend) = self.setup.backend.clone() else {
            return;
        };
        let now = self.now;
        let body = "x".repeat(backend.payload_len);
        let payload = format!(
            r#"{{"at":{},"body":"{body}"}}"#,
            now.since_origin().as_micros()
        );
        match self.nodes[backend.node].server.as_mut() {
            Some(server) => server.publish(now, 0, backend.channel.as_str(), &payload),
            None => self.record(format_args!("backend: node{} is down", backend.node)),
        }
        self.drain_node(backend.node);
        if now + backend.every <= backend.until {
            self.schedule.push(now + backend.every, Ev::Backend);
        }
    }

    /// A crashed node starts again: every core of it, and the router in
    /// front of them when it has shards.
    pub(super) fn restart(&mut self, node: usize) {
        let cores = self.setup.cores_of(node);
        let incarnation = self.nodes[cores.start].incarnation;
        let (servers, prefix) = boot(
            &self.setup,
            node,
            incarnation,
            &mut self.rng,
            &mut self.links,
            self.shards.as_mut(),
        );
        for (core, server) in cores.clone().zip(servers) {
            let state = &mut self.nodes[core];
            state.server = Some(server);
            state.gaps = 0;
        }
        self.record(format_args!("node{node} restarted as {prefix}"));
        self.settle(node);
        for core in cores {
            self.drain_node(core);
        }
    }

    /// Handles everything the node has to say, then checks its books and
    /// arms its next deadline.
    pub(super) fn drain_node(&mut self, node: usize) {
        let next = loop {
            let Some(server) = &mut self.nodes[node].server else {
                return;
            };
            match server.poll_output() {
                Output::Timeout(next) => {
                    if self.exchange(node) {
                        continue;
                    }
                    break next;
                }
                Output::Store(request) => match &mut self.shards {
                    Some(shards) => shards.request(node, request),
                    None => self.send_to_store(node, request),
                },
                Output::Wake(conn) => {
                    if let Some(&id) = self.nodes[node].sockets.get(&conn) {
                        self.flush(node, conn, id);
                    }
                }
                Output::Decide(Decision::Authenticate { request, .. }) => {
                    let ConnectRequest { conn, token, .. } = request;
                    let delay = Duration::from_micros(self.rng.u64(..5_000));
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule.push(
                        self.now + delay,
                        Ev::Verdict {
                            node,
                            incarnation,
                            conn,
                            token,
                        },
                    );
                }
                Output::Decide(Decision::AuthorizeApi { conn, .. }) => {
                    let now = self.now;
                    server.handle_api_verdict(now, conn, false);
                }
                // The simulated application owns no channel and no method.
                Output::Decide(Decision::Channel { id, request, .. }) => {
                    let now = self.now;
                    let answer = Err(Rejection::forbidden());
                    let conn = request.conn;
                    server.handle_verdict(now, Verdict::Channel { id, conn, answer });
                }
                Output::Decide(Decision::Rpc { id, request }) => {
                    let now = self.now;
                    let result = Err(Rejection::unknown_method());
                    let conn = request.conn;
                    server.handle_verdict(now, Verdict::Rpc { id, conn, result });
                }
                Output::Notify(_) => {}
                Output::Published { result, .. } => match result {
                    Ok(offset) => {
                        let channel = self.setup.backend.as_ref().map(|b| b.channel.clone());
                        let channel = channel.as_ref().map_or("?", |c| c.as_str());
                        self.record(format_args!("backend {channel}@{offset}"));
                    }
                    Err(error) => self.violation(format!("backend publish failed: {error}")),
                },
                Output::Closed { conn, reason, by } => {
                    self.record(format_args!("node{node} closed {conn} {reason} {by:?}"));
                }
                Output::Drained => self.record(format_args!("node{node} drained")),
            }
        };
        self.check_books(node);
        self.share_figures(node);
        self.arm_node(node, next);
    }

    pub(super) fn arm_node(&mut self, node: usize, next: Option<Instant>) {
        let state = &mut self.nodes[node];
        let Some(at) = next else {
            return;
        };
        if state.timer_at.is_none_or(|armed| at < armed) {
            state.timer_at = Some(at);
            self.schedule.push(at.max(self.now), Ev::NodeTimer(node));
        }
    }

    /// Moves the connection's frames into its socket while the socket has
    /// room, and closes the socket when the node says so.
    fn flush(&mut self, node: usize, conn: ConnId, id: SocketId) {
        loop {
            let Some(server) = &mut self.nodes[node].server else {
                return;
            };
            if server.transport(conn).closes_now() {
                self.close_server_end(node, conn, id);
                return;
            }
            let Some(socket) = self.sockets.get_mut(&id) else {
                return;
            };
            let client = socket.client;
            let link = &self.setup.clients[client].link;
            if socket.silent {
                return;
            }
            let buffer = self.setup.send_buffer;
            let room = buffer.saturating_sub(socket.down.backlog(self.now));
            if room == 0 {
                if !socket.writable_pending {
                    socket.writable_pending = true;
                    let at = socket.down.drained_to(buffer / 2);
                    self.schedule.push(at.max(self.now), Ev::Writable(id));
                }
                return;
            }
            let mut batch = Vec::new();
            let moved = server.poll_transmit(conn, room, &mut batch);
            if moved == 0 {
                return;
            }
            server.handle_written(conn, moved);
            let start = self.now.max(self.clients[client].partitioned_until);
            let bytes = bytes::Bytes::from(batch.concat());
            for (at, chunk) in socket.down.send(start, bytes, link, &mut self.rng) {
                self.schedule.push(at, Ev::ToClient(id, chunk));
            }
        }
    }

    /// The node's end of the socket closes: the node forgets it, and the
    /// client hears the end of the stream behind the bytes already sent.
    fn close_server_end(&mut self, node: usize, conn: ConnId, id: SocketId) {
        let now = self.now;
        if let Some(server) = &mut self.nodes[node].server {
            server.handle_transport_closed(now, conn);
        }
        self.nodes[node].sockets.remove(&conn);
        self.close_node_end(id);
    }

    /// The node's end of socket `id` is closed: the client hears the end
    /// over its link (unless its end is gone or silent), and the socket is
    /// collected once both ends are done.
    pub(super) fn close_node_end(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get_mut(&id) else {
            return;
        };
        socket.server_open = false;
        let client = socket.client;
        if socket.client_open && !socket.silent {
            let start = self.now.max(self.clients[client].partitioned_until);
            let link = &self.setup.clients[client].link;
            let at = socket.down.send_end(start, link, &mut self.rng);
            self.schedule.push(at, Ev::EndToClient(id));
        }
        self.collect(id);
    }

    /// The node and connection id of the socket's open node end, if it is
    /// open, not silent, and belongs to the node's current incarnation.
    fn server_end(&self, id: SocketId) -> Option<(usize, ConnId)> {
        let socket = self.sockets.get(&id)?;
        let node = &self.nodes[socket.node];
        let current = node.server.is_some() && node.incarnation == socket.incarnation;
        (socket.server_open && !socket.silent && current).then_some((socket.node, socket.conn?))
    }

    /// The node's accounting agrees with the world's: it holds exactly the
    /// sockets the world has open at its end, and no connection's queue is
    /// past `hard_limit` (but for the protocol's own few small frames).
    fn check_books(&mut self, node: usize) {
        let Some(server) = &self.nodes[node].server else {
            return;
        };
        let held = server.connection_count();
        let open = self.nodes[node].sockets.len();
        let hard_limit = server.config().hard_limit;
        let overfull: Vec<(ConnId, usize)> = self.nodes[node]
            .sockets
            .keys()
            .filter_map(|&conn| Some((conn, server.queued_bytes(conn)?)))
            .filter(|&(_, queued)| queued > hard_limit + PROTOCOL_FRAMES_PAST_THE_LIMIT)
            .collect();
        if held != open {
            self.violation(format!(
                "node{node} holds {held} connections, {open} sockets are open"
            ));
        }
        for (conn, queued) in overfull {
            self.violation(format!(
                "node{node} {conn} has {queued} bytes queued, past hard_limit {hard_limit}"
            ));
        }
    }
}
