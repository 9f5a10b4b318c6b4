//! The registry's rules without processes: names, shadowing, the cap,
//! dormant methods. Calls to real modules are in the node's tests.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::*;

/// A JSON-RPC server that serves `getblockcount` itself.
#[derive(Default)]
struct Table(Mutex<BTreeSet<String>>);

impl RpcEndpointSink for Table {
    fn add(&self, endpoint: &Endpoint) -> Result<(), String> {
        if endpoint.method == "getblockcount" || !self.0.lock().unwrap().insert(endpoint.method.clone()) {
            return Err(format!("`{}` is a node method", endpoint.method));
        }
        Ok(())
    }
    fn remove(&self, method: &str) {
        self.0.lock().unwrap().remove(method);
    }
}

fn service(max: usize) -> (RpcEndpointService, Arc<Table>) {
    let service = RpcEndpointService::new(RpcEndpointLimits {
        max_endpoints: max,
        ..RpcEndpointLimits::default()
    });
    let table = Arc::new(Table::default());
    service.set_sink(table.clone());
    (service, table)
}

fn reg(method: &str) -> RegisterRpcEndpoint {
    RegisterRpcEndpoint {
        method: method.into(),
        args: "( verbose )".into(),
        help: "Does it.".into(),
    }
}

fn served(table: &Table) -> Vec<String> {
    table.0.lock().unwrap().iter().cloned().collect()
}

#[test]
fn a_node_method_or_another_modules_method_is_never_shadowed() {
    let (s, table) = service(4);
    let e = s.register("a-1", "a", &reg("getblockcount")).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::AlreadyRegistered, "`getblockcount` is a node method")
    );
    s.register("a-1", "a", &reg("a_status")).unwrap();
    let e = s.register("b-1", "b", &reg("a_status")).unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyRegistered);
    assert!(e.message.contains("module `a`"), "{}", e.message);
    assert!(
        !s.unregister(
            "b",
            &UnregisterRpcEndpoint {
                method: "a_status".into()
            }
        )
        .removed
    );
    assert_eq!(served(&table), ["a_status"]);
}

#[test]
fn names_follow_the_rule_and_the_cap_holds() {
    let (s, _) = service(2);
    for bad in ["GetInfo", "a-b", "", "_x"] {
        assert_eq!(
            s.register("a-1", "a", &reg(bad)).unwrap_err().code,
            ErrorCode::InvalidParams,
            "{bad}"
        );
    }
    let r = s.register("a-1", "a", &reg("a_one")).unwrap();
    assert_eq!((r.endpoints, r.max_endpoints, r.timeout_ms), (1, 2, 10_000));
    s.register("a-1", "a", &reg("a_two")).unwrap();
    // Registering one again is not one more.
    assert_eq!(s.register("a-1", "a", &reg("a_two")).unwrap().endpoints, 2);
    assert_eq!(
        s.register("a-1", "a", &reg("a_three")).unwrap_err().code,
        ErrorCode::QuotaExceeded
    );
}

#[test]
fn the_help_text_starts_with_the_usage_line() {
    let (s, _) = service(2);
    s.register("a-1", "a", &reg("a_one")).unwrap();
    let methods = lock(&s.methods);
    assert_eq!(methods["a_one"].help, "a_one ( verbose )\n\nDoes it.");
}

#[test]
fn a_closed_connection_makes_its_methods_dormant_until_registered_again_and_unload_forgets_them() {
    let (s, table) = service(4);
    s.register("a-1", "a", &reg("a_one")).unwrap();
    s.connection_closed("a-1");
    assert!(served(&table).is_empty());
    assert!(matches!(s.dormant("a_one"), Some(EndpointError::NotRunning { .. })));
    assert!(matches!(
        s.call("a_one", "[]".into()),
        Err(EndpointError::NotRunning { .. })
    ));
    // Reserved for its module meanwhile.
    assert_eq!(
        s.register("b-1", "b", &reg("a_one")).unwrap_err().code,
        ErrorCode::AlreadyRegistered
    );
    s.register("a-2", "a", &reg("a_one")).unwrap();
    assert_eq!(served(&table), ["a_one"]);
    s.forget_module("a");
    assert!(served(&table).is_empty());
    assert!(s.dormant("a_one").is_none());
    assert!(s.endpoints_of("a").is_empty());
}
