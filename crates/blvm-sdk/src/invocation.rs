//! Requests the node sends to the module: JSON-RPC endpoint calls,
//! inter-module calls and timer fires.
//!
//! Each [`Invocation`] must be answered once, with
//! [`Invocation::respond`] or [`Invocation::reject`]; one dropped without an
//! answer is rejected with `internal` so the node's caller never hangs.

use blvm_module_protocol::frame::encode;
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

    /// Decodes the params.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, SdkError> {
        Ok(self.request.params()?)
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
