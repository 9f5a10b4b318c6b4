//! Module: ZeroMQ notifications as Bitcoin Core publishes them.
//!
//! Config keys are Core's options without `-zmq`: `pubhashblock`,
//! `pubrawblock`, `pubhashtx`, `pubrawtx` and `pubsequence`, each one or
//! more endpoints (comma-separated), e.g. `pubrawblock =
//! "tcp://127.0.0.1:28332"`. Topics that name the same endpoint share its
//! socket, each with its own message counter, as in Core. What is sent,
//! and when:
//!
//! - a connected block: `rawtx`/`hashtx` for each of its transactions,
//!   `sequence` `C`, then `hashblock`/`rawblock`;
//! - a disconnected block: `rawtx`/`hashtx` for each of its transactions,
//!   then `sequence` `D`;
//! - a transaction accepted into the mempool: `rawtx`/`hashtx`, then
//!   `sequence` `A`;
//! - a transaction removed from the mempool, not by a block: `sequence`
//!   `R`.
//!
//! Blocks come on the node's durable path (`subscribe_durable`): each is
//! acknowledged once its messages are sent, so blocks connected while the
//! module was down or restarting are published when it is back, in order,
//! and a reorg it missed as disconnects then connects. After a restart
//! the per-topic sequence numbers start again at 0, as Core's do.
//!
//! Two differences from Core, both from what a module sees: the mempool
//! sequence number of `A` and `R` counts the mempool additions and
//! removals this module has seen since it started (Core's counts from its
//! own start); and `hashblock`/`rawblock` follow every connected block,
//! where Core, during a reorg that connects several, sends them for the
//! last only.

mod notify;

use std::collections::BTreeMap;

use bitcoin::consensus::Decodable;
use blvm_sdk::protocol::{Event, LogLevel, LogRecord};
use blvm_sdk::{EventType, ModuleIntegration, NodeApiIpc, SdkError};
use zeromq::{Socket, SocketSend, ZmqMessage};

use notify::{sequence_body, Notifier, SequenceLabel, Topic};

/// Why the module stopped.
#[derive(Debug)]
enum Error {
    /// The node connection failed.
    Sdk(SdkError),
    /// A configured endpoint could not be bound.
    Bind(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sdk(e) => write!(f, "{e}"),
            Error::Bind(e) => write!(f, "{e}"),
        }
    }
}

impl From<SdkError> for Error {
    fn from(e: SdkError) -> Self {
        Error::Sdk(e)
    }
}

/// The sockets and their notifiers.
struct Publisher {
    sockets: Vec<zeromq::PubSocket>,
    notifiers: Vec<Notifier>,
    /// Additions and removals seen, for `sequence` `A` and `R`.
    mempool_sequence: u64,
}

impl Publisher {
    /// Binds every endpoint `config` names.
    async fn bind(config: &BTreeMap<String, String>) -> Result<(Publisher, Vec<String>), Error> {
        let mut endpoints: Vec<String> = Vec::new();
        let mut notifiers = Vec::new();
        for topic in Topic::ALL {
            let Some(value) = config.get(&topic.config_key()) else {
                continue;
            };
            for endpoint in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let socket = match endpoints.iter().position(|e| e == endpoint) {
                    Some(i) => i,
                    None => {
                        endpoints.push(endpoint.to_owned());
                        endpoints.len() - 1
                    }
                };
                notifiers.push(Notifier::new(topic, socket));
            }
        }
        let mut sockets = Vec::new();
        for endpoint in &endpoints {
            let mut socket = zeromq::PubSocket::new();
            socket
                .bind(endpoint)
                .await
                .map_err(|e| Error::Bind(format!("cannot bind {endpoint}: {e}")))?;
            sockets.push(socket);
        }
        let publisher = Publisher {
            sockets,
            notifiers,
            mempool_sequence: 0,
        };
        Ok((publisher, endpoints))
    }

    /// Sends `body` to every notifier of `topic`. A subscriber that is
    /// slow or gone loses messages, as with Core (ZeroMQ's high-water
    /// mark); the node's events are never held up.
    async fn send(&mut self, topic: Topic, body: &[u8]) {
        for notifier in self.notifiers.iter_mut().filter(|n| n.topic == topic) {
            let [name, body, seq] = notifier.message(body.to_vec());
            let mut message = ZmqMessage::from(name);
            message.push_back(body.into());
            message.push_back(seq.into());
            if let Some(socket) = self.sockets.get_mut(notifier.socket) {
                // A PUB socket without subscribers drops the message.
                let _ = socket.send(message).await;
            }
        }
    }

    fn wants(&self, topic: Topic) -> bool {
        self.notifiers.iter().any(|n| n.topic == topic)
    }

    /// `rawtx`/`hashtx` of each transaction of `block`.
    async fn transactions(&mut self, block: &bitcoin::Block) {
        if !self.wants(Topic::RawTx) && !self.wants(Topic::HashTx) {
            return;
        }
        for tx in &block.txdata {
            self.send(Topic::RawTx, &bitcoin::consensus::serialize(tx)).await;
            self.send(Topic::HashTx, &notify::reversed(tx.compute_txid().as_ref()))
                .await;
        }
    }
}

/// The block `hash` from the node, decoded.
async fn block(
    api: &NodeApiIpc,
    hash: blvm_sdk::protocol::Hash32,
) -> Result<Option<(Vec<u8>, bitcoin::Block)>, SdkError> {
    let Some(bytes) = api.get_block(hash).await? else {
        return Ok(None);
    };
    Ok(bitcoin::Block::consensus_decode(&mut bytes.as_slice())
        .ok()
        .map(|b| (bytes, b)))
}

fn log(integration: &ModuleIntegration, level: LogLevel, message: String) {
    let _ = integration.ipc().log(&LogRecord {
        level,
        target: "zmq_publisher".into(),
        message,
        fields: BTreeMap::new(),
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    run().await.map_err(|e| e.to_string())
}

async fn run() -> Result<(), Error> {
    let mut integration = ModuleIntegration::from_env().await?;
    let api = integration.node_api();
    let (mut publisher, endpoints) = Publisher::bind(&integration.welcome().config).await?;
    // Blocks on the durable path: one that arrives while the module is
    // busy, crashed or restarting is published when it comes back, and a
    // reorg it missed is published as its disconnects. Mempool changes on
    // the at-most-once path, as Core's are.
    api.subscribe_durable(&[EventType::NewBlock, EventType::BlockDisconnected], None)
        .await?;
    api.subscribe_event_names(&[
        EventType::NewTransaction.name(),
        EventType::MempoolTransactionRemoved.name(),
    ])
    .await?;
    let mut events = integration.event_receiver()?;
    let topics: Vec<String> = publisher
        .notifiers
        .iter()
        .map(|n| format!("{} on {}", n.topic.name(), endpoints[n.socket]))
        .collect();
    log(
        &integration,
        LogLevel::Info,
        format!("publishing {}", topics.join(", ")),
    );
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => {
                return Ok(integration.flush().await?);
            }
            received = events.recv() => {
                let Some(received) = received else { return Err(SdkError::ConnectionClosed.into()) };
                match &received.event {
                    Event::NewBlock(b) => {
                        match block(&api, b.block_hash).await? {
                            Some((raw, block)) => {
                                publisher.transactions(&block).await;
                                publisher.send(Topic::Sequence, &sequence_body(&b.block_hash.0, SequenceLabel::BlockConnected)).await;
                                publisher.send(Topic::HashBlock, &notify::reversed(&b.block_hash.0)).await;
                                publisher.send(Topic::RawBlock, &raw).await;
                            }
                            // Acknowledged all the same: asking again would
                            // not bring it.
                            None => log(&integration, LogLevel::Warn, format!("block {} is not in the node's store", b.block_hash)),
                        }
                    }
                    Event::BlockDisconnected(b) => {
                        if let Some((_, block)) = block(&api, b.block_hash).await? {
                            publisher.transactions(&block).await;
                        }
                        publisher.send(Topic::Sequence, &sequence_body(&b.block_hash.0, SequenceLabel::BlockDisconnected)).await;
                    }
                    Event::NewTransaction(t) => {
                        publisher.mempool_sequence += 1;
                        publisher.send(Topic::RawTx, &t.tx).await;
                        publisher.send(Topic::HashTx, &notify::reversed(&t.txid.0)).await;
                        let label = SequenceLabel::Accepted(publisher.mempool_sequence);
                        publisher.send(Topic::Sequence, &sequence_body(&t.txid.0, label)).await;
                    }
                    Event::MempoolTransactionRemoved(t) => {
                        publisher.mempool_sequence += 1;
                        if t.reason != "block" {
                            let label = SequenceLabel::Removed(publisher.mempool_sequence);
                            publisher.send(Topic::Sequence, &sequence_body(&t.txid.0, label)).await;
                        }
                    }
                    _ => {}
                }
                // Published (a PUB socket sends or drops at once): the
                // block is done.
                if let Some(durable) = &received.durable {
                    api.ack_events(durable.seq).await?;
                }
            }
        }
    }
}
