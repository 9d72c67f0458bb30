//! What only the smol client offers: running its driver task on an
//! executor the application runs.

use tether_core::{CloseCode, Event};
use tether_smol::client::Client;

use crate::harness::{TEST_LIMIT, together};
use crate::script::Server;

#[test]
fn dropping_the_client_on_its_own_executor_closes_normally() {
    tether_testkit::bounded(TEST_LIMIT, || {
        let server = Server::bind();
        let executor = smol::Executor::new();
        let client = Client::connect_on(&executor, server.config());
        let (closed, wait_closed) = smol::channel::bounded(1);
        let serve = || {
            let mut peer = server.accept();
            peer.authenticate("alice");
            peer.finish_close(CloseCode::NORMAL);
            closed.send_blocking(()).expect("the executor waits");
        };
        let play = || {
            // The executor keeps running the driver task until the server's
            // script has seen the whole close.
            smol::block_on(executor.run(async move {
                let connected = client.next_event().await;
                assert!(
                    matches!(connected, Some(Event::Connected { .. })),
                    "{connected:?}"
                );
                drop(client);
                wait_closed.recv().await.expect("the script ends");
            }));
        };
        together(serve, play);
    });
}
