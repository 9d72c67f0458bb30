//! Negotiating permessage-deflate (RFC 7692 section 5 and 7.1) in the
//! `Sec-WebSocket-Extensions` fields of the handshake, for both ends.
//!
//! The server accepts the first offer it can honour and always answers
//! with `server_no_context_takeover` and `client_no_context_takeover`
//! (section 7.1.1 lets it add both unasked): every message it sends is
//! compressed on its own, so one compressed frame serves every connection,
//! and no connection keeps a window between messages. That one frame is
//! compressed with the largest window, so an offer whose
//! `server_max_window_bits` is below 15 is declined (section 7.1.2.1 lets a
//! server decline it) and the next offer is tried.
//!
//! The client offers `permessage-deflate; client_no_context_takeover;
//! client_max_window_bits`: it compresses every message on its own anyway,
//! and inflates with any window the server uses, kept between messages
//! unless the server says `server_no_context_takeover`.

use httparse::Header;

use super::headers::tokens;

/// The extension's name.
const NAME: &str = "permessage-deflate";

/// An extension parameter: its name and its value, if it has one.
type Param<'a> = (&'a [u8], Option<&'a [u8]>);

/// The server's answer to an offer it accepts.
const ACCEPT: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The answer to an offer that asked for `server_max_window_bits=15`:
/// section 7.1.2.1 wants the parameter back in the answer.
const ACCEPT_WINDOW_15: &str = "permessage-deflate; server_no_context_takeover; \
     client_no_context_takeover; server_max_window_bits=15";

/// What the client offers.
pub(super) const OFFER: &str =
    "permessage-deflate; client_no_context_takeover; client_max_window_bits";

/// The `Sec-WebSocket-Extensions` value that accepts the first acceptable
/// permessage-deflate offer in `headers`, or `None` when no offer is
/// acceptable (the handshake then goes on without compression).
pub(super) fn accept_deflate(headers: &[Header<'_>]) -> Option<&'static str> {
    tokens(headers, "Sec-WebSocket-Extensions").find_map(|offer| {
        let (name, params) = split_offer(offer)?;
        if !name.eq_ignore_ascii_case(NAME.as_bytes()) {
            return None;
        }
        server_answer(&params)
    })
}

/// The answer to one permessage-deflate offer with `params`, or `None` if
/// it must be declined.
fn server_answer(params: &[Param<'_>]) -> Option<&'static str> {
    if has_duplicates(params) {
        // Section 7: an offer naming a parameter twice is declined.
        return None;
    }
    let mut answer = ACCEPT;
    for &(name, value) in params {
        match (name, value) {
            (b"server_no_context_takeover" | b"client_no_context_takeover", None) => {}
            // A hint about the client's window: the inflater takes any.
            (b"client_max_window_bits", None) => {}
            (b"client_max_window_bits", Some(bits)) => {
                window_bits(bits)?;
            }
            (b"server_max_window_bits", Some(bits)) if window_bits(bits)? == 15 => {
                answer = ACCEPT_WINDOW_15;
            }
            // A smaller server window, a missing value or an unknown
            // parameter: declined.
            _ => return None,
        }
    }
    Some(answer)
}

/// What the server agreed to, as the client must honour it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflate {
    /// The server keeps its compression context between messages: the
    /// client must keep its inflate window too.
    pub server_keeps_context: bool,
    /// The client may compress what it sends: the server accepts the
    /// client's largest window (no `client_max_window_bits` below 15).
    pub client_may_compress: bool,
}

/// Why a server's `Sec-WebSocket-Extensions` answer is refused: the client
/// offered no such thing (RFC 6455 section 4.1, item 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Unexpected;

/// Reads the server's answer to [`OFFER`] from `headers`: `None` when it
/// accepted nothing, the agreement when it accepted permessage-deflate, and
/// an error for anything not offered.
pub(super) fn agreed_deflate(headers: &[Header<'_>]) -> Result<Option<Deflate>, Unexpected> {
    let mut answers = tokens(headers, "Sec-WebSocket-Extensions");
    let Some(answer) = answers.next() else {
        return Ok(None);
    };
    if answers.next().is_some() {
        return Err(Unexpected);
    }
    let (name, params) = split_offer(answer).ok_or(Unexpected)?;
    if !name.eq_ignore_ascii_case(NAME.as_bytes()) || has_duplicates(&params) {
        return Err(Unexpected);
    }
    let mut deflate = Deflate {
        server_keeps_context: true,
        client_may_compress: true,
    };
    for &(name, value) in &params {
        match (name, value) {
            (b"server_no_context_takeover", None) => deflate.server_keeps_context = false,
            (b"client_no_context_takeover", None) => {}
            (b"server_max_window_bits", Some(bits)) => {
                window_bits(bits).ok_or(Unexpected)?;
            }
            (b"client_max_window_bits", Some(bits)) => {
                let bits = window_bits(bits).ok_or(Unexpected)?;
                deflate.client_may_compress = bits == 15;
            }
            _ => return Err(Unexpected),
        }
    }
    Ok(Some(deflate))
}

/// An element of the extension list: its name and its `;`-separated
/// parameters, each a name and an optional value (quotes removed, section
/// 7.1: a quoted value is allowed). `None` when a part is empty.
fn split_offer(element: &[u8]) -> Option<(&[u8], Vec<Param<'_>>)> {
    let mut parts = element.split(|&b| b == b';').map(<[u8]>::trim_ascii);
    let name = parts.next().filter(|name| !name.is_empty())?;
    let mut params = Vec::new();
    for part in parts {
        let mut pair = part.splitn(2, |&b| b == b'=');
        let key = pair
            .next()
            .map(<[u8]>::trim_ascii)
            .filter(|k| !k.is_empty())?;
        let value = match pair.next().map(<[u8]>::trim_ascii) {
            None => None,
            Some([b'"', inner @ .., b'"']) => Some(inner),
            Some(value) => Some(value),
        };
        params.push((key, value));
    }
    Some((name, params))
}

fn has_duplicates(params: &[Param<'_>]) -> bool {
    params
        .iter()
        .enumerate()
        .any(|(i, (name, _))| params[..i].iter().any(|(earlier, _)| earlier == name))
}

/// A window size, 8 to 15, written without leading zeros (section 7.1.2).
fn window_bits(value: &[u8]) -> Option<u8> {
    match value {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
