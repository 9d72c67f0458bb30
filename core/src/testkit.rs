//! Client-side helpers shared by the core's tests: what a client puts on
//! the wire, built by hand so the tests do not trust the code they test.

pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
pub(crate) const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n\r\n";

/// A masked client frame with the given opcode and payload.
pub(crate) fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame_fin(true, opcode, payload)
}

/// A masked client frame with an explicit FIN bit, for fragmentation.
pub(crate) fn client_frame_fin(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![opcode | if fin { 0x80 } else { 0 }];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// A masked client text frame carrying `json`.
pub(crate) fn text(json: &str) -> Vec<u8> {
    client_frame(0x1, json.as_bytes())
}

/// Where `needle` first occurs in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Takes every queued frame into `out` and reports each batch written, as
/// a driver whose socket takes everything does.
pub(crate) fn written_all(
    config: &crate::config::ServerConfig,
    conn: &mut crate::connection::Connection,
    out: &mut Vec<bytes::Bytes>,
) {
    loop {
        let moved = conn.poll_transmit(64 * 1024, out);
        if moved == 0 {
            return;
        }
        conn.handle_written(config, moved);
    }
}
