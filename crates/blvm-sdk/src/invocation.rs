//! Requests the node sends to the module: JSON-RPC endpoint calls,
//! inter-module calls and timer fires.
//!
//! Each [`Invocation`] must be answered once, with
//! [`Invocation::respond`] or [`Invocation::reject`]; one dropped without an
//! answer is rejected with `internal` so the node's caller never hangs.

use blvm_module_protocol::frame::encode;
use blvm_module_protocol::methods::invocation::{RpcCall, RpcCallError, RpcCallResult, RPC_CALL};
use blvm_module_protocol::methods::invocation::{TimerFired, TIMER_FIRED};
use blvm_module_protocol::{ErrorCode, RemoteError, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::SdkError;
use crate::ipc::ModuleIpcClient;

/// One request from the node.
#[derive(Debug)]
pub struct Invocation {
    client: ModuleIpcClient,
    request: Request,
    answered: bool,
}

impl Invocation {
    pub(crate) fn new(client: ModuleIpcClient, request: Request) -> Self {
        Invocation {
            client,
            request,
            answered: false,
        }
    }

    /// The method: [`blvm_module_protocol::methods::invocation::RPC_CALL`],
    /// `MODULE_CALL`, `TIMER_FIRED`, or one a newer node added.
    pub fn method(&self) -> &str {
        &self.request.method
    }

    /// A `timer_fired` invocation's params (which timer, which fire, and
    /// a height timer's height); `None` for any other method, or params
    /// that do not decode. Answer it with `respond(&Empty {})`.
    pub fn timer_fired(&self) -> Option<TimerFired> {
        if self.request.method != TIMER_FIRED {
            return None;
        }
        self.request.params().ok()
    }

    /// Decodes the params.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, SdkError> {
        Ok(self.request.params()?)
    }

    /// The JSON-RPC call, when this is an `rpc_call` (a client called a
    /// method the module registered): its `method` and its `params_json`
    /// (a JSON array of positional or an object of named arguments, as the
    /// client sent them). Answer it with [`Invocation::respond_json`] or
    /// [`Invocation::respond_rpc_error`].
    pub fn rpc_call(&self) -> Option<Result<RpcCall, SdkError>> {
        (self.request.method == RPC_CALL).then(|| self.params())
    }

    /// Answers an `rpc_call` with its JSON-RPC result, `result_json` (JSON
    /// text: `"text"`, `{"height":3}`, `null`).
    pub fn respond_json(self, result_json: impl Into<String>) -> Result<(), SdkError> {
        self.respond(&RpcCallResult {
            result_json: result_json.into(),
            error: None,
        })
    }

    /// Answers an `rpc_call` with a JSON-RPC error the client receives as
    /// it is: `code` (Core's, e.g. `-8` invalid parameter, `-5` not found)
    /// and `message`.
    pub fn respond_rpc_error(self, code: i32, message: impl Into<String>) -> Result<(), SdkError> {
        self.respond(&RpcCallResult {
            result_json: String::new(),
            error: Some(RpcCallError {
                code,
                message: message.into(),
            }),
        })
    }

    /// Answers with a result.
    pub fn respond<R: Serialize>(mut self, result: &R) -> Result<(), SdkError> {
        self.answered = true;
        let mut bytes = Vec::new();
        encode::body(&mut bytes, "result", result)?;
        self.client.respond(self.request.id, Ok(bytes))
    }

    /// Answers with an error.
    pub fn reject(mut self, error: RemoteError) {
        self.answered = true;
        let _ = self.client.respond(self.request.id, Err(error));
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.client.respond(
                self.request.id,
                Err(RemoteError::new(
                    ErrorCode::Internal,
                    "the module dropped the invocation unanswered",
                )),
            );
        }
    }
}

/// The stream of invocations.
#[derive(Debug)]
pub struct InvocationReceiver {
    rx: mpsc::UnboundedReceiver<Invocation>,
}

impl InvocationReceiver {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Invocation>) -> Self {
        InvocationReceiver { rx }
    }

    /// The next invocation; `None` once the connection is closed and every
    /// received invocation has been taken.
    pub async fn recv(&mut self) -> Option<Invocation> {
        self.rx.recv().await
    }
}
