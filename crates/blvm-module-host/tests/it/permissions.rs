//! Capability checks on requests.

use blvm_module_protocol::Permission::{ReadChainState, SubscribeEvents};

use crate::support::{spec, Host};

#[test]
fn request_without_capability_is_denied_and_the_connection_keeps_working() {
    let host = Host::start("denied");
    // get_utxo needs read_utxo, which is not granted.
    let module = host.spawn(spec("limited", &[ReadChainState, SubscribeEvents]), "denied", &[]);
    assert_eq!(module.expect("WELCOME"), "WELCOME read_chain_state,subscribe_events");
    assert_eq!(module.expect("DENIED"), "DENIED permission_denied read_utxo");
    assert_eq!(module.next_line("ping answer"), "PING OK");
    assert_eq!(module.next_line("height answer"), "HEIGHT 438");
}
