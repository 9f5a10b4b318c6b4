//! What the server calls: the [`RpcHandler`] trait, and [`MethodTable`], a
//! handler made of named methods that can be added and removed while the
//! server runs (modules register their endpoints after start-up).
//!
//! Handlers are synchronous: the node's methods read the store and return.
//! The server runs each call on tokio's blocking pool, so a slow method holds
//! one blocking thread, never the reactor.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::error::RpcError;
use super::params::Params;

/// Answers JSON-RPC calls: the seam between the HTTP server and the node.
pub trait RpcHandler: Send + Sync + 'static {
    /// Runs `method` with `params` and returns its `result`.
    ///
    /// # Errors
    ///
    /// The [`RpcError`] the client receives, e.g. [`RpcError::method_not_found`]
    /// for an unknown method.
    fn call(&self, method: &str, params: Params) -> Result<Value, RpcError>;
}

/// The function type behind one method of a [`MethodTable`].
pub type MethodFn = dyn Fn(Params) -> Result<Value, RpcError> + Send + Sync;

/// What answers a call of a name the table does not hold, instead of
/// "Method not found", when it knows better (a module's method while the
/// module restarts); `None`: "Method not found".
pub type FallbackFn = dyn Fn(&str) -> Option<RpcError> + Send + Sync;

/// Why [`MethodTable::register`] refused a method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MethodTableError {
    /// A method of that name is already registered (or is the built-in `help`).
    #[error("rpc method {name:?} is already registered")]
    AlreadyRegistered {
        /// The method name.
        name: String,
    },
    /// The name is empty or contains whitespace.
    #[error("invalid rpc method name {name:?}")]
    InvalidName {
        /// The method name.
        name: String,
    },
}

struct Method {
    help: String,
    // An `Arc` so a call clones it and releases the table lock before running:
    // a slow method must not block `register`/`unregister` (or other calls
    // waiting behind a queued writer).
    f: Arc<MethodFn>,
}

/// A table of named methods with built-in `help`; implements [`RpcHandler`].
///
/// Each method has a help text whose first line is its usage line, as in
/// Core (`getblock "blockhash" ( verbosity )`); `help` lists the first lines of
/// all methods, sorted, and `help <method>` returns one method's whole text.
///
/// Share it as `Arc<MethodTable>`: one clone goes to
/// [`RpcServer::bind`](super::RpcServer::bind), another stays with whoever
/// registers methods later.
#[derive(Default)]
pub struct MethodTable {
    methods: RwLock<BTreeMap<String, Method>>,
    /// Calls per method name (registered ones and `help`; unknown names are
    /// counted as `unknown`, so a client cannot grow this without bound).
    calls: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Consulted for names not in `methods`.
    fallback: RwLock<Option<Arc<FallbackFn>>>,
}

const HELP_HELP: &str = "help ( \"command\" )\n\
\n\
List all commands, or get help for a specified command.\n\
\n\
Arguments:\n\
1. command    (string, optional, default=all commands) The command to get help on\n\
\n\
Result:\n\
\"str\"    (string) The help text";

impl MethodTable {
    /// Creates a table holding only the built-in `help`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a method.
    ///
    /// # Errors
    ///
    /// [`MethodTableError::AlreadyRegistered`] if `name` is taken (including
    /// `help`); a module cannot replace a node method by registering over it.
    /// [`MethodTableError::InvalidName`] if `name` is empty or has whitespace.
    pub fn register<F>(&self, name: impl Into<String>, help: impl Into<String>, f: F) -> Result<(), MethodTableError>
    where
        F: Fn(Params) -> Result<Value, RpcError> + Send + Sync + 'static,
    {
        let name = name.into();
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(MethodTableError::InvalidName { name });
        }
        if name == "help" {
            return Err(MethodTableError::AlreadyRegistered { name });
        }
        let mut methods = self.methods.write().unwrap_or_else(|p| p.into_inner());
        if methods.contains_key(&name) {
            return Err(MethodTableError::AlreadyRegistered { name });
        }
        methods.insert(
            name,
            Method {
                help: help.into(),
                f: Arc::new(f),
            },
        );
        Ok(())
    }

    /// Removes a method; returns whether it was registered. Calls already
    /// running finish; later calls get "Method not found".
    pub fn unregister(&self, name: &str) -> bool {
        self.methods
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .is_some()
    }

    /// Sets what answers calls of unknown names ([`FallbackFn`]).
    pub fn set_fallback(&self, f: impl Fn(&str) -> Option<RpcError> + Send + Sync + 'static) {
        *self.fallback.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
    }

    /// Returns whether `name` is registered (`help` always is).
    pub fn contains(&self, name: &str) -> bool {
        name == "help"
            || self
                .methods
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(name)
    }

    /// Returns the registered method names, sorted, including `help`.
    pub fn names(&self) -> Vec<String> {
        let methods = self.methods.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = methods.keys().cloned().collect();
        names.push("help".to_owned());
        names.sort();
        names
    }

    /// Calls so far per method name (`unknown` for names not registered),
    /// for the metrics exposition.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count_call(&self, name: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        match calls.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                calls.insert(name.to_owned(), 1);
            }
        }
    }

    /// Returns `help`'s answer: one method's text, or all usage lines.
    fn help(&self, params: &Params) -> Result<Value, RpcError> {
        params.check_names(&["command"])?;
        let command: Option<String> = params.get(0, "command")?;
        let methods = self.methods.read().unwrap_or_else(|p| p.into_inner());
        let text = match command {
            Some(command) if command == "help" => HELP_HELP.to_owned(),
            Some(command) => match methods.get(&command) {
                Some(method) => method.help.trim_end().to_owned(),
                // Core answers this as a result, not an error.
                None => format!("help: unknown command: {command}"),
            },
            None => {
                let mut lines: Vec<&str> = methods
                    .iter()
                    .map(|(name, method)| method.help.lines().next().unwrap_or(name))
                    .collect();
                lines.push(HELP_HELP.lines().next().unwrap_or("help"));
                lines.sort_unstable();
                lines.join("\n")
            }
        };
        Ok(Value::String(text))
    }
}

impl std::fmt::Debug for MethodTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodTable").field("methods", &self.names()).finish()
    }
}

impl RpcHandler for MethodTable {
    fn call(&self, method: &str, params: Params) -> Result<Value, RpcError> {
        if method == "help" {
            self.count_call("help");
            return self.help(&params);
        }
        let f = {
            let methods = self.methods.read().unwrap_or_else(|p| p.into_inner());
            match methods.get(method) {
                Some(m) => Arc::clone(&m.f),
                None => {
                    drop(methods);
                    self.count_call("unknown");
                    // Cloned out, so the fallback runs with no lock held.
                    let fallback = self.fallback.read().unwrap_or_else(|p| p.into_inner()).clone();
                    return Err(fallback
                        .and_then(|f| f(method))
                        .unwrap_or_else(RpcError::method_not_found));
                }
            }
        };
        self.count_call(method);
        f(params)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn register_call_unregister() {
        let table = MethodTable::new();
        table
            .register("ping", "ping\n\nAnswers null.", |_| Ok(Value::Null))
            .unwrap();
        assert_eq!(table.call("ping", Params::default()), Ok(Value::Null));
        assert!(matches!(
            table.register("ping", "", |_| Ok(Value::Null)),
            Err(MethodTableError::AlreadyRegistered { .. })
        ));
        assert!(table.register("help", "", |_| Ok(Value::Null)).is_err());
        assert!(table.unregister("ping"));
        assert_eq!(table.call("ping", Params::default()).unwrap_err().code, -32601);
    }

    #[test]
    fn an_unknown_name_is_answered_by_the_fallback_when_it_knows_better() {
        let table = MethodTable::new();
        table.set_fallback(|name| (name == "mod_x").then(|| RpcError::new(-32001, "restarting")));
        assert_eq!(
            table.call("mod_x", Params::default()),
            Err(RpcError::new(-32001, "restarting"))
        );
        assert_eq!(table.call("other", Params::default()).unwrap_err().code, -32601);
        assert_eq!(table.call_counts()["unknown"], 2);
    }

    #[test]
    fn help_lists_and_describes() {
        let table = MethodTable::new();
        table.register("b", "b ( x )\n\nDoes b.", |_| Ok(Value::Null)).unwrap();
        table.register("a", "a\n\nDoes a.\n", |_| Ok(Value::Null)).unwrap();
        assert_eq!(
            table.call("help", Params::default()),
            Ok(json!("a\nb ( x )\nhelp ( \"command\" )"))
        );
        assert_eq!(
            table.call("help", Params::Positional(vec![json!("a")])),
            Ok(json!("a\n\nDoes a."))
        );
        assert_eq!(
            table.call("help", Params::Positional(vec![json!("zz")])),
            Ok(json!("help: unknown command: zz"))
        );
    }
}
