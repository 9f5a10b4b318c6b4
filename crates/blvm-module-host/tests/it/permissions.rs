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

#[test]
fn module_log_lines_are_re_emitted_under_the_module_name() {
    crate::support::captured_logs();
    let host = Host::start("log");
    let module = host.spawn(spec("chatty-logger", &[]), "log", &[]);
    module.expect("LOGGED");
    let logs = crate::support::captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("hello from the module"))
        .unwrap_or_else(|| panic!("log line not re-emitted; captured:\n{logs}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("module=\"chatty-logger\""), "{line}");
    assert!(line.contains("test_module::log"), "{line}");
    assert!(line.contains("answer") && line.contains("42"), "{line}");
}
