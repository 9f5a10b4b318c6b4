//! One client, from the Noise handshake to its disconnection.
//!
//! 1. Noise handshake (within [`wire::HANDSHAKE_TIMEOUT`]), then a
//!    `SetupConnection` within the same time: only the template
//!    distribution subprotocol, version 2, no flags; anything else is
//!    answered `SetupConnection.Error` (`unsupported-protocol`,
//!    `protocol-version-mismatch`, `unsupported-feature-flags`) and the
//!    connection closed.
//! 2. Nothing is sent until the client's `CoinbaseOutputConstraints` says
//!    how much room its coinbase outputs need (as Bitcoin Core's Template
//!    Provider does); then a future `NewTemplate` and its `SetNewPrevHash`.
//!    Later constraints get a new template at once.
//! 3. A new tip: a future `NewTemplate` and its `SetNewPrevHash`, at once.
//!    Mempool changes: a non-future `NewTemplate` when its fees beat the
//!    last one's by `fee_delta_sat`, at most once per
//!    `template_interval_ms`.
//! 4. `RequestTransactionData`: the template's transactions, or the error
//!    `template-id-not-found` (never sent, or long gone) or
//!    `stale-template-id` (of an earlier tip).
//! 5. `SubmitSolution`: the block is rebuilt and submitted to the node;
//!    one for a stale or unknown template is counted and not submitted.
//! 6. A message this side does not receive closes the connection (one of
//!    an unknown extension is ignored, as the spec says); so does a frame
//!    over [`wire::MAX_FRAME`] or one that does not decrypt.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bitcoin::consensus::serialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::messages::{self, ClientMessage, TDP_VERSION};
use crate::provider::{self, Provider, Tip};
use crate::status::LastSolution;
use crate::template::{Solution, Template};
use crate::wire::{self, Frame, Writer};
use crate::Error;

/// Templates remembered per client, for `RequestTransactionData` and
/// solutions.
pub const KEPT_TEMPLATES: usize = 64;

/// How a connection ended.
struct End {
    reason: String,
    /// For a protocol error of the client's.
    refused: bool,
}

impl End {
    fn refused(reason: impl Into<String>) -> End {
        End {
            reason: reason.into(),
            refused: true,
        }
    }
}

impl From<Error> for End {
    fn from(e: Error) -> End {
        let refused = !matches!(e, Error::Closed | Error::Io(_) | Error::Node(_));
        End {
            reason: e.to_string(),
            refused,
        }
    }
}

/// Serves the client on `stream` until it leaves or breaks the protocol.
pub async fn serve(provider: Arc<Provider>, stream: TcpStream, peer: SocketAddr) {
    let Some(id) = provider.client_connected(peer) else {
        tracing::warn!(%peer, "too many clients ({}); connection closed", provider::MAX_CLIENTS);
        return;
    };
    let _ = stream.set_nodelay(true);
    let end = match run(&provider, id, stream, peer).await {
        Ok(end) | Err(end) => end,
    };
    if end.refused {
        tracing::warn!(%peer, reason = %end.reason, "client closed");
    } else {
        tracing::info!(%peer, reason = %end.reason, "client left");
    }
    provider.client_gone(id, &end.reason, end.refused);
}

async fn next_frame(
    provider: &Provider,
    peer: SocketAddr,
    frames: &mut mpsc::Receiver<Result<Frame, Error>>,
) -> Result<Frame, End> {
    let frame = frames.recv().await.ok_or(Error::Closed)??;
    provider.message_received(peer, &frame);
    Ok(frame)
}

async fn run(provider: &Arc<Provider>, id: u64, stream: TcpStream, peer: SocketAddr) -> Result<End, End> {
    let responder = provider.authority.responder(provider.config.cert_validity)?;
    let (reader, mut writer) = wire::accept(stream, responder).await?;
    let mut frames = reader.spawn(16);
    let first = tokio::time::timeout(wire::HANDSHAKE_TIMEOUT, next_frame(provider, peer, &mut frames))
        .await
        .map_err(|_| End::refused("no SetupConnection in time"))??;
    let ClientMessage::SetupConnection(setup) = messages::decode(&first)? else {
        return Err(End::refused(format!(
            "the first message was 0x{:02x}, not SetupConnection",
            first.msg_type
        )));
    };
    let refusal = if setup.protocol != common_messages_sv2::SV2_TEMPLATE_DISTRIBUTION_PROTOCOL_DISCRIMINANT {
        Some((0, common_messages_sv2::ERROR_CODE_SETUP_CONNECTION_UNSUPPORTED_PROTOCOL))
    } else if !(setup.min_version..=setup.max_version).contains(&TDP_VERSION) {
        Some((
            0,
            common_messages_sv2::ERROR_CODE_SETUP_CONNECTION_PROTOCOL_VERSION_MISMATCH,
        ))
    } else if setup.flags != 0 {
        Some((
            setup.flags,
            common_messages_sv2::ERROR_CODE_SETUP_CONNECTION_UNSUPPORTED_FEATURE_FLAGS,
        ))
    } else {
        None
    };
    if let Some((flags, code)) = refusal {
        messages::setup_error(&mut writer, flags, code).await?;
        return Err(End::refused(format!(
            "SetupConnection refused: {code} (protocol {}, versions {}..={}, flags 0x{:08x})",
            setup.protocol, setup.min_version, setup.max_version, setup.flags
        )));
    }
    messages::setup_success(&mut writer, TDP_VERSION).await?;
    provider.client_setup(id, &setup);
    tracing::info!(%peer, vendor = %setup.vendor, "client set up for template distribution");

    let mut conn = Conn {
        provider: Arc::clone(provider),
        id,
        peer,
        writer,
        templates: VecDeque::new(),
        tip: None,
        reserve: None,
        last_sent: None,
        dirty: false,
    };
    let mut tips = provider.tips();
    tips.borrow_and_update();
    let mut mempool = provider.mempool();
    mempool.borrow_and_update();
    loop {
        let wake = conn.next_check();
        tokio::select! {
            frame = next_frame(provider, peer, &mut frames) => conn.handle(frame?).await?,
            changed = tips.changed() => {
                changed.map_err(|_| Error::Closed)?;
                let tip = *tips.borrow_and_update();
                conn.new_tip(tip).await?;
            }
            changed = mempool.changed() => {
                changed.map_err(|_| Error::Closed)?;
                mempool.borrow_and_update();
                conn.dirty = true;
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                conn.mempool_update().await?;
            }
        }
    }
}

/// A set-up client.
struct Conn {
    provider: Arc<Provider>,
    id: u64,
    peer: SocketAddr,
    writer: Writer,
    /// The templates sent, newest last.
    templates: VecDeque<Arc<Template>>,
    /// The tip of the last `SetNewPrevHash` sent.
    tip: Option<bitcoin::BlockHash>,
    /// From its `CoinbaseOutputConstraints`.
    reserve: Option<(u32, u32)>,
    /// When the last template went, and its fees.
    last_sent: Option<(Instant, u64)>,
    /// The mempool changed since the last template.
    dirty: bool,
}

impl Conn {
    /// When to look at the mempool again, if it changed.
    fn next_check(&self) -> Option<Instant> {
        let (at, _) = self.last_sent?;
        (self.dirty && self.reserve.is_some()).then(|| at + self.provider.config.template_interval)
    }

    fn find(&self, template_id: u64) -> Option<&Arc<Template>> {
        self.templates.iter().rev().find(|t| t.id == template_id)
    }

    /// A template for this client, or `None` (logged) when the node has
    /// none to give.
    async fn template(&self) -> Option<Template> {
        let reserve = self.reserve?;
        match self.provider.template(reserve).await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "no template from the node");
                None
            }
        }
    }

    async fn send_template(&mut self, t: Template, future: bool) -> Result<Arc<Template>, Error> {
        messages::new_template(&mut self.writer, &t, future).await?;
        self.provider.template_sent(self.id, &t);
        self.last_sent = Some((Instant::now(), t.fees));
        self.dirty = false;
        let t = Arc::new(t);
        if self.templates.len() == KEPT_TEMPLATES {
            self.templates.pop_front();
        }
        self.templates.push_back(Arc::clone(&t));
        Ok(t)
    }

    /// A future template and its `SetNewPrevHash`.
    async fn send_tip(&mut self, t: Template, since: Option<Tip>) -> Result<(), Error> {
        let t = self.send_template(t, true).await?;
        messages::set_new_prev_hash(&mut self.writer, &t).await?;
        let on_it = since.filter(|tip| tip.hash.0 == bitcoin::hashes::Hash::to_byte_array(t.prev_hash));
        self.provider.prev_hash_sent(on_it.map(|tip| tip.seen.elapsed()));
        self.tip = Some(t.prev_hash);
        Ok(())
    }

    async fn new_tip(&mut self, tip: Option<Tip>) -> Result<(), Error> {
        let Some(t) = self.template().await else { return Ok(()) };
        if Some(t.prev_hash) == self.tip {
            return Ok(());
        }
        self.send_tip(t, tip).await
    }

    async fn mempool_update(&mut self) -> Result<(), Error> {
        self.dirty = false;
        if let Some(t) = self.template().await {
            let last_fees = self.last_sent.map_or(0, |(_, fees)| fees);
            if Some(t.prev_hash) != self.tip {
                // A new tip, seen before its notice (which then finds
                // the client on it already).
                let tip = *self.provider.tips().borrow();
                self.send_tip(t, tip).await?;
            } else if t.fees >= last_fees.saturating_add(self.provider.config.fee_delta_sat) {
                tracing::debug!(peer = %self.peer, fees = t.fees, last_fees, "fees improved: a new template");
                self.send_template(t, false).await?;
            }
        }
        self.provider.update_client(self.id, |c| c.mempool_updates += 1);
        Ok(())
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), End> {
        match messages::decode(&frame)? {
            ClientMessage::SetupConnection(_) => return Err(End::refused("a second SetupConnection")),
            ClientMessage::CoinbaseOutputConstraints {
                max_additional_size,
                max_additional_sigops,
            } => {
                let reserve = provider::reserve(max_additional_size, max_additional_sigops);
                self.reserve = Some(reserve);
                self.provider.update_client(self.id, |c| {
                    c.coinbase_output_max_additional_size = Some(max_additional_size);
                    c.coinbase_output_max_additional_sigops = Some(max_additional_sigops);
                    c.reserved_weight = Some(reserve.0);
                    c.reserved_sigops = Some(reserve.1);
                });
                if let Some(t) = self.template().await {
                    if self.tip == Some(t.prev_hash) {
                        self.send_template(t, false).await?;
                    } else {
                        // Not for a new block: no latency to measure.
                        self.send_tip(t, None).await?;
                    }
                }
            }
            ClientMessage::RequestTransactionData { template_id } => match self.find(template_id).cloned() {
                None => {
                    messages::transaction_data_error(
                        &mut self.writer,
                        template_id,
                        template_distribution_sv2::ERROR_CODE_REQUEST_TRANSACTION_DATA_TEMPLATE_ID_NOT_FOUND,
                    )
                    .await?;
                }
                Some(t) if Some(t.prev_hash) != self.tip => {
                    messages::transaction_data_error(
                        &mut self.writer,
                        template_id,
                        template_distribution_sv2::ERROR_CODE_REQUEST_TRANSACTION_DATA_STALE_TEMPLATE_ID,
                    )
                    .await?;
                }
                Some(t) => {
                    messages::transaction_data(&mut self.writer, &t).await?;
                }
            },
            ClientMessage::SubmitSolution(solution) => self.solution(solution).await?,
            ClientMessage::Unknown { ext_type, msg_type } if ext_type & 0x7fff != 0 => {
                tracing::debug!(peer = %self.peer, ext_type, msg_type, "a message of an unknown extension ignored");
            }
            ClientMessage::Unknown { msg_type, .. } => {
                return Err(End::refused(format!(
                    "message 0x{msg_type:02x} is not one a template provider receives"
                )));
            }
        }
        Ok(())
    }

    async fn solution(&mut self, solution: Solution) -> Result<(), Error> {
        let Some(t) = self.find(solution.template_id).cloned() else {
            tracing::warn!(peer = %self.peer, template_id = solution.template_id, "a solution for an unknown template: not submitted");
            self.provider.solution(self.id, "unknown_template", None);
            return Ok(());
        };
        if Some(t.prev_hash) != self.tip {
            tracing::warn!(peer = %self.peer, template_id = t.id, "a solution for a stale template: not submitted");
            self.provider.solution(self.id, "stale", None);
            return Ok(());
        }
        let block = match t.block(&solution) {
            Ok(block) => block,
            Err(e) => {
                tracing::warn!(peer = %self.peer, template_id = t.id, error = %e, "a solution that makes no block");
                self.provider.solution(self.id, "invalid", None);
                return Ok(());
            }
        };
        let hash = block.block_hash();
        let (status, reason) = self.provider.submit_block(serialize(&block)).await?;
        let accepted = status == blvm_sdk::protocol::methods::mining::SubmitBlockResult::ACCEPTED;
        if accepted {
            tracing::info!(peer = %self.peer, template_id = t.id, height = t.height, %hash, "solution accepted: block submitted");
        } else {
            tracing::warn!(peer = %self.peer, template_id = t.id, %hash, %status, reason = ?reason, "solution not accepted by the node");
        }
        let last = LastSolution {
            client: self.peer.to_string(),
            template_id: t.id,
            block_hash: hash.to_string(),
            height: t.height,
            status,
            reason,
        };
        self.provider
            .solution(self.id, if accepted { "accepted" } else { "not_accepted" }, Some(last));
        Ok(())
    }
}
