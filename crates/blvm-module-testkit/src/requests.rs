//! [`RequestLog`]: every request the module under test sent, as the
//! node's hub took it, with the error it was answered with at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use blvm_module_host::{Caller, RequestTap};
use blvm_module_protocol::{ErrorCode, Request};
use bytes::Bytes;
use tokio::sync::Notify;

/// One request a module sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentRequest {
    /// The module's name.
    pub module: String,
    /// The method name, as sent (it may name no method).
    pub method: String,
    /// The params, raw MessagePack.
    pub params: Bytes,
    /// The code it was answered with at once (unknown method, missing
    /// capability, bad params…); `None` when it succeeded or waits.
    pub error: Option<ErrorCode>,
}

impl SentRequest {
    /// The params decoded as `T` (the method's params type of
    /// `blvm_module_protocol::methods`).
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, blvm_module_protocol::DecodeError> {
        blvm_module_protocol::frame::decode_body("params", &self.params)
    }
}

/// The requests of every module of one harness, in the order the hub took
/// them; a [`RequestTap`].
#[derive(Default)]
pub struct RequestLog {
    sent: Mutex<Vec<SentRequest>>,
    added: Notify,
}

impl RequestLog {
    /// An empty log.
    pub fn new() -> Arc<RequestLog> {
        Arc::new(RequestLog::default())
    }

    /// The requests `module` has sent so far.
    pub fn of(&self, module: &str) -> Vec<SentRequest> {
        self.lock().iter().filter(|r| r.module == module).cloned().collect()
    }

    /// Waits until `module` has sent `count` requests for which `pred`
    /// holds, at most `deadline`; returns them, or `None` at the deadline.
    pub async fn wait_for(
        &self,
        module: &str,
        count: usize,
        deadline: Duration,
        pred: impl Fn(&SentRequest) -> bool,
    ) -> Option<Vec<SentRequest>> {
        let wait = async {
            loop {
                // Armed before looking: a request added between the look
                // and the wait still wakes us.
                let added = self.added.notified();
                let found: Vec<SentRequest> = self
                    .lock()
                    .iter()
                    .filter(|r| r.module == module && pred(r))
                    .take(count)
                    .cloned()
                    .collect();
                if found.len() == count {
                    return found;
                }
                added.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SentRequest>> {
        // Every update is one push.
        self.sent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RequestTap for RequestLog {
    fn request(&self, caller: &Caller<'_>, request: &Request, error: Option<ErrorCode>) {
        self.lock().push(SentRequest {
            module: caller.module_name.to_owned(),
            method: request.method.clone(),
            params: request.params.clone(),
            error,
        });
        self.added.notify_waiters();
    }
}
