//! What the Stratum V2 tests share: a node running the `stratum-v2`
//! module (and a recorder of the events it publishes), and a Template
//! Distribution client built on the reference crates, as a pool's
//! template receiver is: `noise_sv2` and `codec_sv2` through the module's
//! own `wire` (the same crates, the initiator's side), the messages of
//! `common_messages_sv2` and `template_distribution_sv2`, encoded and
//! decoded by `binary_sv2`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use binary_sv2::{Str0255, B064K};
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Witness};
use blvm_node::cli::RpcClient;
use common_messages_sv2::{Protocol, SetupConnection, SetupConnectionError, SetupConnectionSuccess};
use serde_json::{json, Value};
use stratum_v2::wire::{self, Frame, Writer};
use template_distribution_sv2::{
    CoinbaseOutputConstraints, NewTemplate, RequestTransactionData, RequestTransactionDataError,
    RequestTransactionDataSuccess, SetNewPrevHash, SubmitSolution,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::harness::{bins, free_port, install_recorder, temp_dir, NodeProcess, TempDir, DEADLINE};

/// The events the recorder follows: the node's `BlockMined` and what the
/// module publishes (and `ModuleLoaded`, whose own announcement says the
/// recorder is subscribed).
pub const RECORDED: &str = "ModuleLoaded,BlockMined,MiningJobCreated,StratumClientConnected,\
                            StratumClientDisconnected,StratumV2MessageReceived";

/// `OP_TRUE`, whose P2WSH the tests mine to and spend with the script
/// alone as witness.
pub fn op_true() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

/// The P2WSH(`OP_TRUE`) address on regtest.
pub fn payee() -> String {
    bitcoin::Address::p2wsh(&op_true(), bitcoin::Network::Regtest).to_string()
}

/// A node with the module, and what a test needs of it.
pub struct Sv2Node {
    /// Removed at the end.
    pub dir: TempDir,
    /// The node.
    pub node: NodeProcess,
    /// Its JSON-RPC.
    pub rpc: RpcClient,
    /// Where the module was told to listen.
    pub listen: SocketAddr,
    /// The node's metrics address.
    pub metrics: SocketAddr,
}

/// Starts a node whose modules are the `stratum-v2` module (its shipped
/// manifest, passed through `manifest`) with `config` (lines of its
/// `[modules.stratum-v2]` section, `listen` added) and the recorder.
pub fn start(tag: &str, config: &str, manifest: impl FnOnce(String) -> String) -> Sv2Node {
    let dir = temp_dir(tag);
    let datadir = dir.join("data");
    let modules = datadir.join("modules");
    let module = modules.join("stratum-v2");
    std::fs::create_dir_all(&module).expect("module dir");
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/stratum-v2/module.toml"))
            .expect("the shipped manifest");
    std::fs::write(module.join("module.toml"), manifest(shipped)).expect("manifest");
    std::fs::copy(bins().join("stratum-v2"), module.join("stratum-v2")).expect("binary");
    install_recorder(
        &modules,
        "recorder",
        "\"subscribe_events\", \"read_chain_state\", \"read_network\"",
        &format!("events = \"{RECORDED}\"\n"),
    );
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = format!(
        "block_interval = 0\nmetrics_bind = \"127.0.0.1:0\"\n[modules.stratum-v2]\nlisten = \"{listen}\"\n{config}\n\
         [sandbox]\ndisk_mb = 8\n"
    );
    let mut node = NodeProcess::start(&datadir, &conf);
    let rpc = RpcClient::from_cookie(node.rpc_addr(), &datadir.join(".cookie")).expect("cookie");
    let metrics = node.metrics_addr();
    node.wait_line("the recorder subscribed", |l| {
        l.contains("recorded ") && l.contains("ModuleLoaded recorder") && l.contains("module=\"recorder\"")
    });
    Sv2Node {
        dir,
        node,
        rpc,
        listen,
        metrics,
    }
}

impl Sv2Node {
    /// Waits for the module's `listening` line.
    pub fn wait_listening(&mut self) {
        let listen = self.listen.to_string();
        self.node.wait_line("stratum-v2 listening", |l| {
            l.contains("stratum-v2 listening on") && l.contains(&listen)
        });
    }

    /// `stratumv2_status`.
    pub fn status(&self) -> Value {
        self.rpc.call("stratumv2_status", json!([])).expect("stratumv2_status")
    }

    /// The authority key the module prints, decoded.
    pub fn authority(&self) -> [u8; 32] {
        let status = self.status();
        let text = status["authority_public_key"].as_str().expect("a key");
        stratum_v2::authority::decode_public_key(text).expect("a valid key")
    }

    /// Waits until `pred` holds of the status (polled), returns it.
    #[track_caller]
    pub fn wait_status(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.status();
            if pred(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no status with {what} within {DEADLINE:?}: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mines `n` blocks to [`payee`]; their hashes.
    pub fn mine(&self, n: u32) -> Vec<String> {
        crate::harness::mine_to(&self.rpc, n, &payee())
    }

    /// The block `hash` from the RPC.
    pub fn block(&self, hash: &str) -> Block {
        let hex = self.rpc.call("getblock", json!([hash, 0])).expect("getblock");
        bitcoin::consensus::encode::deserialize_hex(hex.as_str().expect("hex")).expect("a block")
    }

    /// The tip's hash, as Core prints it.
    pub fn tip(&self) -> String {
        self.rpc
            .call("getbestblockhash", json!([]))
            .expect("tip")
            .as_str()
            .expect("hash")
            .to_owned()
    }

    /// A transaction spending the first output of `block`'s coinbase
    /// (P2WSH(`OP_TRUE`)), paying `fee`.
    pub fn spend_of(&self, block: &Block, fee: u64) -> Transaction {
        let coinbase = &block.txdata[0];
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(coinbase.compute_txid(), 0),
                script_sig: ScriptBuf::new(),
                sequence: bitcoin::Sequence::MAX,
                witness: Witness::from_slice(&[op_true().as_bytes()]),
            }],
            output: vec![TxOut {
                value: coinbase.output[0].value - Amount::from_sat(fee),
                script_pubkey: coinbase.output[0].script_pubkey.clone(),
            }],
        }
    }

    /// Sends `tx` to the node's mempool; its txid.
    pub fn send(&self, tx: &Transaction) -> String {
        let hex = bitcoin::consensus::encode::serialize_hex(tx);
        self.rpc
            .call("sendrawtransaction", json!([hex]))
            .expect("accepted")
            .as_str()
            .expect("txid")
            .to_owned()
    }

    /// Waits for the recorder's line about `event` (and `also`).
    #[track_caller]
    pub fn wait_recorded(&mut self, event: &str, also: &str) -> String {
        let event = format!(" {event}");
        self.node.wait_line(&format!("the recorder's {event}"), |l| {
            l.contains("recorded ") && l.contains(&event) && l.contains(also) && l.contains("module=\"recorder\"")
        })
    }

    /// `GET /metrics`: the body.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.metrics).expect("connects to the metrics address");
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.metrics).expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response read");
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}

/// A `NewTemplate`, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplateMsg {
    pub template_id: u64,
    pub future: bool,
    pub version: u32,
    pub coinbase_tx_version: u32,
    pub coinbase_prefix: Vec<u8>,
    pub coinbase_tx_input_sequence: u32,
    pub coinbase_tx_value_remaining: u64,
    pub coinbase_tx_outputs_count: u32,
    pub coinbase_tx_outputs: Vec<u8>,
    pub coinbase_tx_locktime: u32,
    pub merkle_path: Vec<[u8; 32]>,
}

/// A `SetNewPrevHash`, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrevHashMsg {
    pub template_id: u64,
    pub prev_hash: [u8; 32],
    pub header_timestamp: u32,
    pub n_bits: u32,
    pub target: [u8; 32],
}

impl PrevHashMsg {
    /// The prev hash as Core prints it.
    pub fn display(&self) -> String {
        bitcoin::BlockHash::from_byte_array(self.prev_hash).to_string()
    }
}

/// What the module sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    SetupSuccess {
        used_version: u16,
        flags: u32,
    },
    SetupError {
        flags: u32,
        code: String,
    },
    NewTemplate(NewTemplateMsg),
    SetNewPrevHash(PrevHashMsg),
    TxData {
        template_id: u64,
        transactions: Vec<Vec<u8>>,
    },
    TxDataError {
        template_id: u64,
        code: String,
    },
    Other {
        msg_type: u8,
    },
}

fn undecodable<T>(msg_type: u8) -> impl Fn(binary_sv2::Error) -> T {
    move |e| panic!("message 0x{msg_type:02x} does not decode: {e:?}")
}

fn decode(frame: Frame) -> Msg {
    let mut p = frame.payload;
    let t = frame.msg_type;
    match frame.msg_type {
        0x01 => {
            let m: SetupConnectionSuccess = binary_sv2::from_bytes(&mut p).unwrap_or_else(undecodable(t));
            Msg::SetupSuccess {
                used_version: m.used_version,
                flags: m.flags,
            }
        }
        0x02 => {
            let m: SetupConnectionError<'_> = binary_sv2::from_bytes(&mut p).unwrap_or_else(undecodable(t));
            Msg::SetupError {
                flags: m.flags,
                code: String::from_utf8_lossy(m.error_code.as_bytes()).into_owned(),
            }
        }
        0x71 => {
            let m: NewTemplate<'_> = binary_sv2::from_bytes(&mut p).unwrap_or_else(undecodable(t));
            Msg::NewTemplate(NewTemplateMsg {
                template_id: m.template_id,
                future: m.future_template,
                version: m.version,
                coinbase_tx_version: m.coinbase_tx_version,
                coinbase_prefix: m.coinbase_prefix.as_bytes().to_vec(),
                coinbase_tx_input_sequence: m.coinbase_tx_input_sequence,
                coinbase_tx_value_remaining: m.coinbase_tx_value_remaining,
                coinbase_tx_outputs_count: m.coinbase_tx_outputs_count,
                coinbase_tx_outputs: m.coinbase_tx_outputs.as_bytes().to_vec(),
                coinbase_tx_locktime: m.coinbase_tx_locktime,
                merkle_path: m.merkle_path.iter().map(|h| *h.as_array()).collect(),
            })
        }
        0x72 => {
            let m: SetNewPrevHash<'_> = binary_sv2::from_bytes(&mut p).unwrap_or_else(undecodable(t));
            Msg::SetNewPrevHash(PrevHashMsg {
                template_id: m.template_id,
                prev_hash: *m.prev_hash.as_array(),
                header_timestamp: m.header_timestamp,
                n_bits: m.n_bits,
                target: *m.target.as_array(),
            })
        }
        0x74 => {
            let m: RequestTransactionDataSuccess<'_> = binary_sv2::from_bytes(&mut p).unwrap_or_else(undecodable(t));
            Msg::TxData {
                template_id: m.template_id,
                transactions: m.transaction_list.iter().map(|t| t.as_bytes().to_vec()).collect(),
            }
        }
        0x75 => {
            let m: RequestTransactionDataError<'_> = binary_sv2::from_bytes(&mut p).unwrap_or_else(undecodable(t));
            Msg::TxDataError {
                template_id: m.template_id,
                code: String::from_utf8_lossy(m.error_code.as_bytes()).into_owned(),
            }
        }
        msg_type => Msg::Other { msg_type },
    }
}

/// A Template Distribution client.
pub struct Client {
    frames: mpsc::Receiver<Result<Frame, stratum_v2::Error>>,
    /// The sending half (public for tests that send what a client should not).
    pub writer: Writer,
    /// When the last message arrived.
    pub arrived: Instant,
    /// This side's address: the `peer` of the module's status.
    pub local: SocketAddr,
}

impl Client {
    /// Connects to `addr` and completes the Noise handshake, checking the
    /// module's certificate against `authority`.
    pub async fn connect(addr: SocketAddr, authority: [u8; 32]) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        let local = stream.local_addr().expect("local address");
        let (reader, writer) = wire::connect(stream, Some(authority))
            .await
            .expect("the Noise handshake");
        Client {
            frames: reader.spawn(64),
            writer,
            arrived: Instant::now(),
            local,
        }
    }

    /// Sends `SetupConnection` for `protocol` (a discriminant), versions
    /// `min..=max`, `flags`; the answer.
    pub async fn setup_with(&mut self, protocol: u8, min: u16, max: u16, flags: u32) -> Msg {
        let vendor = b"blvm-test-client";
        let host = b"127.0.0.1";
        let m = SetupConnection {
            protocol: Protocol::try_from(protocol).unwrap_or(Protocol::TemplateDistributionProtocol),
            min_version: min,
            max_version: max,
            flags,
            endpoint_host: Str0255::new(host).expect("host"),
            endpoint_port: 8442,
            vendor: Str0255::new(vendor).expect("vendor"),
            hardware_version: Str0255::new(b"").expect("empty"),
            firmware: Str0255::new(b"0.1").expect("firmware"),
            device_id: Str0255::new(b"test").expect("device"),
        };
        self.writer.send(0x00, m).await.expect("SetupConnection sent");
        self.recv().await
    }

    /// A good `SetupConnection`; checks the success.
    pub async fn setup(&mut self) {
        let answer = self.setup_with(2, 2, 2, 0).await;
        assert_eq!(
            answer,
            Msg::SetupSuccess {
                used_version: 2,
                flags: 0
            }
        );
    }

    /// Sends `CoinbaseOutputConstraints`.
    pub async fn constraints(&mut self, size: u32, sigops: u16) {
        let m = CoinbaseOutputConstraints {
            coinbase_output_max_additional_size: size,
            coinbase_output_max_additional_sigops: sigops,
        };
        self.writer.send(0x70, m).await.expect("constraints sent");
    }

    /// Sends `RequestTransactionData`.
    pub async fn request_transactions(&mut self, template_id: u64) {
        self.writer
            .send(0x73, RequestTransactionData { template_id })
            .await
            .expect("request sent");
    }

    /// Sends `SubmitSolution`.
    pub async fn submit(&mut self, template_id: u64, header: &bitcoin::block::Header, coinbase: &Transaction) {
        let coinbase = serialize(coinbase);
        let m = SubmitSolution {
            template_id,
            version: header.version.to_consensus() as u32,
            header_timestamp: header.time,
            header_nonce: header.nonce,
            coinbase_tx: B064K::new(&coinbase).expect("a coinbase under 64 KiB"),
        };
        self.writer.send(0x76, m).await.expect("solution sent");
    }

    /// This client in the module's status.
    pub fn in_status<'a>(&self, status: &'a Value) -> &'a Value {
        let peer = self.local.to_string();
        status["clients"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["peer"] == peer.as_str()))
            .unwrap_or_else(|| panic!("{peer} is not in the status: {status:#}"))
    }

    /// The next message, within the deadline.
    pub async fn recv(&mut self) -> Msg {
        let frame = tokio::time::timeout(DEADLINE, self.frames.recv())
            .await
            .unwrap_or_else(|_| panic!("no message within {DEADLINE:?}"))
            .expect("the reader is running")
            .unwrap_or_else(|e| panic!("the connection failed: {e}"));
        self.arrived = Instant::now();
        decode(frame)
    }

    /// The next message, which must be a `NewTemplate`.
    pub async fn template(&mut self) -> NewTemplateMsg {
        match self.recv().await {
            Msg::NewTemplate(t) => t,
            other => panic!("expected NewTemplate, got {other:?}"),
        }
    }

    /// The next message, which must be a `SetNewPrevHash`.
    pub async fn prev_hash(&mut self) -> PrevHashMsg {
        match self.recv().await {
            Msg::SetNewPrevHash(p) => p,
            other => panic!("expected SetNewPrevHash, got {other:?}"),
        }
    }

    /// A future `NewTemplate` and its `SetNewPrevHash`.
    pub async fn new_tip(&mut self) -> (NewTemplateMsg, PrevHashMsg) {
        let t = self.template().await;
        assert!(t.future, "a new tip's template is a future one: {t:?}");
        let p = self.prev_hash().await;
        assert_eq!(p.template_id, t.template_id, "SetNewPrevHash names the future template");
        (t, p)
    }

    /// Waits for the module to close the connection; fails on a message.
    pub async fn closed(&mut self) -> String {
        loop {
            match tokio::time::timeout(DEADLINE, self.frames.recv()).await {
                Err(_) => panic!("still open after {DEADLINE:?}"),
                Ok(None) => return "reader ended".into(),
                Ok(Some(Err(e))) => return e.to_string(),
                Ok(Some(Ok(frame))) => {
                    let m = decode(frame);
                    // An error answer may come before the close.
                    if !matches!(m, Msg::SetupError { .. }) {
                        panic!("expected the connection to close, got {m:?}");
                    }
                }
            }
        }
    }
}

/// The coinbase a pool would write for `t`: the template's prefix, then a
/// tag and an extranonce push; one output paying everything to
/// P2WSH(`OP_TRUE`), then the template's outputs; the witness reserved
/// value, as the reference implementation writes it.
pub fn coinbase(t: &NewTemplateMsg, extranonce: u32) -> Transaction {
    let mut script = t.coinbase_prefix.clone();
    script.push(8);
    script.extend_from_slice(b"blvm-sv2");
    script.push(4);
    script.extend_from_slice(&extranonce.to_le_bytes());
    let mut outputs = vec![TxOut {
        value: Amount::from_sat(t.coinbase_tx_value_remaining),
        script_pubkey: bitcoin::Address::p2wsh(&op_true(), bitcoin::Network::Regtest).script_pubkey(),
    }];
    let mut rest = t.coinbase_tx_outputs.as_slice();
    for _ in 0..t.coinbase_tx_outputs_count {
        let out: TxOut = bitcoin::consensus::Decodable::consensus_decode(&mut rest).expect("a template output");
        outputs.push(out);
    }
    assert!(rest.is_empty(), "the outputs and their count agree");
    Transaction {
        version: bitcoin::transaction::Version(t.coinbase_tx_version as i32),
        lock_time: bitcoin::absolute::LockTime::from_consensus(t.coinbase_tx_locktime),
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(script),
            sequence: bitcoin::Sequence(t.coinbase_tx_input_sequence),
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: outputs,
    }
}

/// Grinds a header for `t` on `p` with `coinbase` until it meets the
/// target (trivial on regtest).
pub fn grind(t: &NewTemplateMsg, p: &PrevHashMsg, coinbase: &Transaction) -> bitcoin::block::Header {
    let merkle_root = stratum_v2::template::merkle_root(coinbase.compute_txid(), &t.merkle_path);
    let mut header = bitcoin::block::Header {
        version: bitcoin::block::Version::from_consensus(t.version as i32),
        prev_blockhash: bitcoin::BlockHash::from_byte_array(p.prev_hash),
        merkle_root,
        time: p.header_timestamp,
        bits: bitcoin::CompactTarget::from_consensus(p.n_bits),
        nonce: 0,
    };
    let target = bitcoin::Target::from_le_bytes(p.target);
    assert_eq!(target, header.target(), "the target is the one n_bits encodes");
    while header.validate_pow(target).is_err() {
        header.nonce += 1;
    }
    header
}

/// The block a solution makes, as the node should store it.
pub fn solved_block(header: bitcoin::block::Header, coinbase: Transaction, transactions: &[Vec<u8>]) -> Block {
    let mut txdata = vec![coinbase];
    txdata.extend(
        transactions
            .iter()
            .map(|t| deserialize::<Transaction>(t).expect("a transaction")),
    );
    Block { header, txdata }
}

/// `p50` and `p99` of `samples`, milliseconds.
pub fn percentiles(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}
