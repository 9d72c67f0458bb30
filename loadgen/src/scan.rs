//! Picks fields out of a compact JSON message without parsing it.
//!
//! A server message is searched for `"key":` and the value after it is
//! read. This is only sound for the messages the load generator itself
//! provokes: their payloads are its own (digits and `x` padding), and every
//! peer writes JSON without spaces. In exchange the receiving side costs a
//! few hundred nanoseconds per message, whatever the key order.

/// The value of `"type"`.
pub fn kind(text: &[u8]) -> Option<&[u8]> {
    let start = value_start(text, b"type")?;
    let rest = text.get(start..)?.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    Some(&rest[..end])
}

/// The unsigned integer value of the first `"key"`.
pub fn u64_field(text: &[u8], key: &[u8]) -> Option<u64> {
    let start = value_start(text, key)?;
    let digits = &text[start..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    digits[..len].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Where the value of the first `"key":` starts.
fn value_start(text: &[u8], key: &[u8]) -> Option<usize> {
    let needle_len = key.len() + 3;
    text.windows(needle_len)
        .position(|w| {
            w[0] == b'"'
                && &w[1..=key.len()] == key
                && w[key.len() + 1] == b'"'
                && w[key.len() + 2] == b':'
        })
        .map(|at| at + needle_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_any_key_order() {
        let tether = br#"{"type":"message","channel":"c","payload":{"n":7,"t":123,"pad":"xx"},"sender":"p","offset":8}"#;
        let sorted = br#"{"channel":"c","offset":8,"payload":{"n":7,"pad":"xx","t":123},"sender":"p","type":"message"}"#;
        for text in [&tether[..], &sorted[..]] {
            assert_eq!(kind(text), Some(&b"message"[..]));
            assert_eq!(u64_field(text, b"offset"), Some(8));
            assert_eq!(u64_field(text, b"n"), Some(7));
            assert_eq!(u64_field(text, b"t"), Some(123));
        }
    }

    #[test]
    fn missing_or_malformed_values_are_none() {
        assert_eq!(kind(br#"{"channel":"c"}"#), None);
        assert_eq!(u64_field(br#"{"offset":-1}"#, b"offset"), None);
        assert_eq!(
            u64_field(br#"{"offset":99999999999999999999}"#, b"offset"),
            None
        );
        assert_eq!(u64_field(br#"{"type":"pong"}"#, b"t"), None);
    }
}
