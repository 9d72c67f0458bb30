//! `tether connect`, the binary's own client, against a node of each
//! runtime.

use crate::harness::{Runtime, TETHER, config, dev_auth};
use tether_testkit::process::Process;

/// A listener started in the background (no input at all) stays connected
/// and prints what is published until Ctrl-C, which closes it normally.
fn connect_listens_after_its_input_ends(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let url = format!("ws://{}/ws", server.addr);
    let mut listener = Process::start(
        TETHER,
        &["connect", &url, "--token", "bob", "--subscribe", "chat"],
    );
    listener.wait_for_line(r#""event":"subscribed""#);
    server.publish("chat", r#""from the backend""#);
    listener.wait_for_line(r#""payload":"from the backend""#);

    listener.signal("INT");
    let closed = listener.wait_for_line(r#""event":"disconnected""#);
    assert!(closed.contains(r#""code":1000"#), "{closed}");
    assert!(closed.contains(r#""will_reconnect":false"#), "{closed}");
    assert_eq!(listener.wait().code(), Some(0));
}

runtime_tests! {
    connect_listens_after_its_input_ends => smol, blocking, tokio;
}
