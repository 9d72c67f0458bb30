use super::*;

fn inflate_all(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut inflater = Inflater::new(Between::Nothing);
    let mut out = Vec::new();
    inflater.inflate(compressed, &mut out, limit)?;
    inflater.finish(&mut out, limit)?;
    Ok(out)
}

#[test]
fn a_message_round_trips_at_every_size() {
    let mut deflater = Deflater::new();
    for len in [0, 1, 200, 70_000, 300_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let compressed = deflater.deflate(&payload);
        assert!(!compressed.ends_with(&TAIL), "{len}");
        assert_eq!(inflate_all(&compressed, len).unwrap(), payload, "{len}");
    }
}

#[test]
fn the_rfc_example_inflates() {
    // RFC 7692 section 7.2.3.1: "Hello" compressed.
    let compressed = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflate_all(&compressed, 5).unwrap(), b"Hello");
}

#[test]
fn a_message_inflates_with_a_window_kept_from_an_earlier_one() {
    // RFC 7692 section 7.2.3.2: the second "Hello" refers to the first.
    let mut inflater = Inflater::new(Between::Window);
    let mut first = Vec::new();
    inflater
        .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut first, 100)
        .unwrap();
    inflater.finish(&mut first, 100).unwrap();
    assert!(inflater.holds_window());
    let mut second = Vec::new();
    inflater
        .inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut second, 100)
        .unwrap();
    inflater.finish(&mut second, 100).unwrap();
    assert_eq!((&first[..], &second[..]), (&b"Hello"[..], &b"Hello"[..]));
}

#[test]
fn without_context_takeover_no_window_outlives_a_message() {
    let mut inflater = Inflater::new(Between::Nothing);
    let mut out = Vec::new();
    inflater
        .inflate(&Deflater::new().deflate(b"hello"), &mut out, 10)
        .unwrap();
    assert!(inflater.holds_window());
    inflater.finish(&mut out, 10).unwrap();
    assert!(!inflater.holds_window());
}

#[test]
fn a_kept_state_is_reset_between_messages() {
    let mut deflater = Deflater::new();
    let mut inflater = Inflater::new(Between::State);
    for text in [&b"first message"[..], b"second message"] {
        let mut out = Vec::new();
        inflater
            .inflate(&deflater.deflate(text), &mut out, 100)
            .unwrap();
        inflater.finish(&mut out, 100).unwrap();
        assert_eq!(out, text);
        assert!(inflater.holds_window());
    }
}

#[test]
fn a_final_block_ends_the_message_and_the_tail_is_ignored() {
    // RFC 7692 section 7.2.3.4: "Hello" in a block with BFINAL set.
    let compressed = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(inflate_all(&compressed, 5).unwrap(), b"Hello");
}

#[test]
fn a_bomb_stops_one_byte_past_the_limit() {
    let bomb = Deflater::new().deflate(&vec![0; 10 * 1024 * 1024]);
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    let mut inflater = Inflater::new(Between::Nothing);
    let mut out = Vec::new();
    assert_eq!(
        inflater.inflate(&bomb, &mut out, 1000),
        Err(InflateError::TooBig)
    );
    assert_eq!(out.len(), 1001);
    assert!(out.capacity() <= INFLATE_CHUNK);
}

#[test]
fn a_message_of_exactly_the_limit_passes() {
    let payload = vec![7; 5000];
    let compressed = Deflater::new().deflate(&payload);
    assert_eq!(inflate_all(&compressed, 5000).unwrap(), payload);
    assert_eq!(inflate_all(&compressed, 4999), Err(InflateError::TooBig));
}

#[test]
fn corrupt_data_is_refused() {
    // BTYPE 11 is reserved.
    assert_eq!(inflate_all(&[0xff, 0xff], 100), Err(InflateError::Corrupt));
}

#[test]
fn fed_in_pieces_the_result_is_the_same() {
    let payload =
        br#"{"type":"publication","channel":"room:1","data":{"text":"hello hello hello"}}"#;
    let compressed = Deflater::new().deflate(payload);
    let mut inflater = Inflater::new(Between::Nothing);
    let mut out = Vec::new();
    for byte in &compressed {
        inflater
            .inflate(std::slice::from_ref(byte), &mut out, 1000)
            .unwrap();
    }
    inflater.finish(&mut out, 1000).unwrap();
    assert_eq!(out, payload);
}
