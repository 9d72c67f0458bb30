//! The node's counters and their Prometheus text rendering (PROTOCOL.md
//! section 9). Counting happens where the events happen; rendering is pure.

use std::fmt::Write;

/// Counters of one server node since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// WebSocket connections upgraded.
    pub connections_total: u64,
    /// Text messages received from clients.
    pub messages_received_total: u64,
    /// Frames handed to sockets.
    pub messages_sent_total: u64,
    /// Channel messages dropped by backpressure.
    pub messages_dropped_total: u64,
    /// Connections terminated for an unanswered heartbeat.
    pub heartbeat_timeouts_total: u64,
    /// Connections closed 4001 or 4003.
    pub auth_failures_total: u64,
    /// Connections closed 4008.
    pub slow_consumer_closes_total: u64,
    /// Failures of the link to the backplane, reconnections included.
    pub backplane_errors_total: u64,
    /// Requests the backplane refused while its link stayed up.
    pub backplane_request_errors_total: u64,
    /// TCP accepts the operating system failed (no file descriptor left).
    pub accept_errors_total: u64,
}

/// Point-in-time values rendered next to the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Open WebSocket connections.
    pub connections: u64,
    /// TCP connections the node holds: WebSockets, plain HTTP requests and
    /// connections still lingering in their close.
    pub sockets: u64,
    /// Channels with at least one subscriber on this node.
    pub channels: u64,
    /// 1 while the node is draining for shutdown.
    pub draining: u64,
    /// 1 while the backplane is reachable (always 1 in memory mode).
    pub backplane_up: u64,
    /// Channels holding history in the node's memory (0 with a backplane).
    pub history_channels: u64,
    /// Bytes of history in the node's memory, frames and bookkeeping (0
    /// with a backplane).
    pub history_bytes: u64,
}

/// Renders the counters and gauges in the Prometheus text exposition format.
pub fn render(counters: &Counters, gauges: &Gauges) -> String {
    let metrics: [(&str, &str, &str, u64); 17] = [
        (
            "tether_connections",
            "gauge",
            "Open WebSocket connections.",
            gauges.connections,
        ),
        (
            "tether_sockets",
            "gauge",
            "TCP connections held by the node.",
            gauges.sockets,
        ),
        (
            "tether_connections_total",
            "counter",
            "WebSocket connections upgraded.",
            counters.connections_total,
        ),
        (
            "tether_messages_received_total",
            "counter",
            "Text messages received from clients.",
            counters.messages_received_total,
        ),
        (
            "tether_messages_sent_total",
            "counter",
            "Frames written to clients.",
            counters.messages_sent_total,
        ),
        (
            "tether_messages_dropped_total",
            "counter",
            "Channel messages dropped by backpressure.",
            counters.messages_dropped_total,
        ),
        (
            "tether_heartbeat_timeouts_total",
            "counter",
            "Connections terminated for an unanswered heartbeat.",
            counters.heartbeat_timeouts_total,
        ),
        (
            "tether_auth_failures_total",
            "counter",
            "Connections closed for missing or rejected auth.",
            counters.auth_failures_total,
        ),
        (
            "tether_slow_consumer_closes_total",
            "counter",
            "Connections closed as slow consumers.",
            counters.slow_consumer_closes_total,
        ),
        (
            "tether_channels",
            "gauge",
            "Channels with subscribers on this node.",
            gauges.channels,
        ),
        (
            "tether_history_channels",
            "gauge",
            "Channels holding history in the node's memory.",
            gauges.history_channels,
        ),
        (
            "tether_history_bytes",
            "gauge",
            "Bytes of history in the node's memory, bookkeeping included.",
            gauges.history_bytes,
        ),
        (
            "tether_backplane_errors_total",
            "counter",
            "Backplane link failures and failed reconnections.",
            counters.backplane_errors_total,
        ),
        (
            "tether_backplane_request_errors_total",
            "counter",
            "Requests the backplane refused while its link stayed up.",
            counters.backplane_request_errors_total,
        ),
        (
            "tether_accept_errors_total",
            "counter",
            "TCP accepts the operating system failed.",
            counters.accept_errors_total,
        ),
        (
            "tether_backplane_up",
            "gauge",
            "Whether the backplane is reachable.",
            gauges.backplane_up,
        ),
        (
            "tether_draining",
            "gauge",
            "Whether the node is shutting down.",
            gauges.draining,
        ),
    ];
    let mut text = String::with_capacity(2048);
    for (name, kind, help, value) in metrics {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_of_the_protocol_with_its_value() {
        let counters = Counters {
            messages_dropped_total: 7,
            ..Counters::default()
        };
        let gauges = Gauges {
            connections: 3,
            ..Gauges::default()
        };
        let text = render(&counters, &gauges);
        for name in [
            "tether_connections",
            "tether_connections_total",
            "tether_messages_received_total",
            "tether_messages_sent_total",
            "tether_messages_dropped_total",
            "tether_heartbeat_timeouts_total",
            "tether_auth_failures_total",
            "tether_slow_consumer_closes_total",
            "tether_channels",
            "tether_history_channels",
            "tether_history_bytes",
            "tether_backplane_errors_total",
            "tether_backplane_request_errors_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert!(text.contains("\ntether_messages_dropped_total 7\n"));
        assert!(text.contains("\ntether_connections 3\n"));
    }
}
