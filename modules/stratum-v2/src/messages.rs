//! The messages of the Template Distribution Protocol: those a client
//! sends, decoded into plain values, and those the module sends, built
//! from a [`Template`].

use binary_sv2::{Seq0255, Seq064K, Str0255, B016M, B0255, B064K, U256};
use common_messages_sv2::{
    SetupConnection, SetupConnectionError, SetupConnectionSuccess, MESSAGE_TYPE_SETUP_CONNECTION,
    MESSAGE_TYPE_SETUP_CONNECTION_ERROR, MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
    SV2_TEMPLATE_DISTRIBUTION_PROTOCOL_DISCRIMINANT,
};
use template_distribution_sv2::{
    CoinbaseOutputConstraints, NewTemplate, RequestTransactionData, RequestTransactionDataError,
    RequestTransactionDataSuccess, SetNewPrevHash, SubmitSolution, MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS,
    MESSAGE_TYPE_NEW_TEMPLATE, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_ERROR,
    MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_SUCCESS, MESSAGE_TYPE_SET_NEW_PREV_HASH, MESSAGE_TYPE_SUBMIT_SOLUTION,
};

use crate::template::{Solution, Template};
use crate::wire::{Frame, Writer};
use crate::Error;

/// The Template Distribution Protocol's version, the only one there is.
pub const TDP_VERSION: u16 = 2;

/// A client's `SetupConnection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The subprotocol asked for (2: template distribution).
    pub protocol: u8,
    /// The lowest version the client speaks.
    pub min_version: u16,
    /// The highest.
    pub max_version: u16,
    /// Optional features asked for (none exists in TDP).
    pub flags: u32,
    /// The address the client connected to.
    pub endpoint_host: String,
    /// Its port.
    pub endpoint_port: u16,
    /// The client's vendor (`pool_sv2` sends an empty one).
    pub vendor: String,
    /// Its hardware version.
    pub hardware_version: String,
    /// Its firmware.
    pub firmware: String,
    /// Its device id.
    pub device_id: String,
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `SetupConnection`.
    SetupConnection(Setup),
    /// `CoinbaseOutputConstraints`: room the client's coinbase outputs need.
    CoinbaseOutputConstraints {
        /// Bytes its outputs add to the coinbase.
        max_additional_size: u32,
        /// Sigops they add.
        max_additional_sigops: u16,
    },
    /// `RequestTransactionData`.
    RequestTransactionData {
        /// The template asked about.
        template_id: u64,
    },
    /// `SubmitSolution`.
    SubmitSolution(Solution),
    /// A message this side of the protocol does not receive.
    Unknown {
        /// Its extension type.
        ext_type: u16,
        /// Its message type.
        msg_type: u8,
    },
}

fn text(s: &Str0255<'_>) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

fn undecodable(msg_type: u8) -> impl Fn(binary_sv2::Error) -> Error {
    move |e| Error::Decode {
        msg_type,
        why: format!("{e:?}"),
    }
}

/// Decodes a client's frame. A `SetupConnection` for a subprotocol that
/// does not exist decodes with that protocol number, for the caller to
/// answer `unsupported-protocol`.
///
/// # Errors
///
/// [`Error::Decode`] when a known message's payload does not decode.
pub fn decode(frame: &Frame) -> Result<ClientMessage, Error> {
    let mut payload = frame.payload.clone();
    let t = frame.msg_type;
    if frame.ext_type & 0x7fff != 0 {
        return Ok(ClientMessage::Unknown {
            ext_type: frame.ext_type,
            msg_type: t,
        });
    }
    Ok(match t {
        MESSAGE_TYPE_SETUP_CONNECTION => {
            // The protocol is the first byte; the crate refuses unknown
            // ones outright, the spec answers them with an error.
            let protocol = *payload.first().ok_or_else(|| Error::Decode {
                msg_type: t,
                why: "empty".into(),
            })?;
            if protocol > 2 {
                payload[0] = SV2_TEMPLATE_DISTRIBUTION_PROTOCOL_DISCRIMINANT;
            }
            let m: SetupConnection<'_> = binary_sv2::from_bytes(&mut payload).map_err(undecodable(t))?;
            ClientMessage::SetupConnection(Setup {
                protocol: if protocol > 2 { protocol } else { m.protocol as u8 },
                min_version: m.min_version,
                max_version: m.max_version,
                flags: m.flags,
                endpoint_host: text(&m.endpoint_host),
                endpoint_port: m.endpoint_port,
                vendor: text(&m.vendor),
                hardware_version: text(&m.hardware_version),
                firmware: text(&m.firmware),
                device_id: text(&m.device_id),
            })
        }
        MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS => {
            let m: CoinbaseOutputConstraints = binary_sv2::from_bytes(&mut payload).map_err(undecodable(t))?;
            ClientMessage::CoinbaseOutputConstraints {
                max_additional_size: m.coinbase_output_max_additional_size,
                max_additional_sigops: m.coinbase_output_max_additional_sigops,
            }
        }
        MESSAGE_TYPE_REQUEST_TRANSACTION_DATA => {
            let m: RequestTransactionData = binary_sv2::from_bytes(&mut payload).map_err(undecodable(t))?;
            ClientMessage::RequestTransactionData {
                template_id: m.template_id,
            }
        }
        MESSAGE_TYPE_SUBMIT_SOLUTION => {
            let m: SubmitSolution<'_> = binary_sv2::from_bytes(&mut payload).map_err(undecodable(t))?;
            ClientMessage::SubmitSolution(Solution {
                template_id: m.template_id,
                version: m.version,
                header_timestamp: m.header_timestamp,
                header_nonce: m.header_nonce,
                coinbase_tx: m.coinbase_tx.as_bytes().to_vec(),
            })
        }
        _ => ClientMessage::Unknown {
            ext_type: frame.ext_type,
            msg_type: t,
        },
    })
}

fn encode_err(what: &'static str) -> impl Fn(binary_sv2::Error) -> Error {
    move |e| Error::Encode {
        what,
        why: format!("{e:?}"),
    }
}

/// Sends `SetupConnection.Success` for `version`, no flags.
///
/// # Errors
///
/// The socket's.
pub async fn setup_success(w: &mut Writer, version: u16) -> Result<usize, Error> {
    let m = SetupConnectionSuccess {
        used_version: version,
        flags: 0,
    };
    w.send(MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS, m).await
}

/// Sends `SetupConnection.Error` with `code` (and the `flags` refused).
///
/// # Errors
///
/// The socket's.
pub async fn setup_error(w: &mut Writer, flags: u32, code: &str) -> Result<usize, Error> {
    let m = SetupConnectionError {
        flags,
        error_code: Str0255::new(code.as_bytes()).map_err(encode_err("error_code"))?,
    };
    w.send(MESSAGE_TYPE_SETUP_CONNECTION_ERROR, m).await
}

/// Sends `NewTemplate` for `t`.
///
/// # Errors
///
/// [`Error::Encode`] for a field out of its type's range, the socket's.
pub async fn new_template(w: &mut Writer, t: &Template, future: bool) -> Result<usize, Error> {
    let outputs = t.serialized_outputs();
    let m = NewTemplate {
        template_id: t.id,
        future_template: future,
        version: t.version,
        coinbase_tx_version: t.coinbase_tx_version,
        coinbase_prefix: B0255::new(&t.coinbase_prefix).map_err(encode_err("coinbase_prefix"))?,
        coinbase_tx_input_sequence: t.coinbase_tx_input_sequence,
        coinbase_tx_value_remaining: t.coinbase_tx_value_remaining,
        coinbase_tx_outputs_count: t.coinbase_tx_outputs.len() as u32,
        coinbase_tx_outputs: B064K::new(&outputs).map_err(encode_err("coinbase_tx_outputs"))?,
        coinbase_tx_locktime: t.coinbase_tx_locktime,
        merkle_path: Seq0255::new(t.merkle_path.iter().map(U256::from).collect()).map_err(encode_err("merkle_path"))?,
    };
    w.send(MESSAGE_TYPE_NEW_TEMPLATE, m).await
}

/// Sends `SetNewPrevHash` for `t` (a future template sent before).
///
/// # Errors
///
/// The socket's.
pub async fn set_new_prev_hash(w: &mut Writer, t: &Template) -> Result<usize, Error> {
    let prev = bitcoin::hashes::Hash::to_byte_array(t.prev_hash);
    let target = t.target_le();
    let m = SetNewPrevHash {
        template_id: t.id,
        prev_hash: U256::from(&prev),
        header_timestamp: t.time,
        n_bits: t.bits.to_consensus(),
        target: U256::from(&target),
    };
    w.send(MESSAGE_TYPE_SET_NEW_PREV_HASH, m).await
}

/// Sends `RequestTransactionData.Success`: `t`'s transactions, whole.
///
/// # Errors
///
/// [`Error::Encode`] past 65535 transactions, the socket's.
pub async fn transaction_data(w: &mut Writer, t: &Template) -> Result<usize, Error> {
    let raw: Vec<Vec<u8>> = t.transactions.iter().map(bitcoin::consensus::serialize).collect();
    let list = raw
        .iter()
        .map(|tx| B016M::new(tx))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode_err("transaction"))?;
    let m = RequestTransactionDataSuccess {
        template_id: t.id,
        excess_data: B064K::new(&[]).map_err(encode_err("excess_data"))?,
        transaction_list: Seq064K::new(list).map_err(encode_err("transaction_list"))?,
    };
    w.send(MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_SUCCESS, m).await
}

/// Sends `RequestTransactionData.Error` for `template_id` with `code`
/// (`stale-template-id`, `template-id-not-found`).
///
/// # Errors
///
/// The socket's.
pub async fn transaction_data_error(w: &mut Writer, template_id: u64, code: &str) -> Result<usize, Error> {
    let m = RequestTransactionDataError {
        template_id,
        error_code: Str0255::new(code.as_bytes()).map_err(encode_err("error_code"))?,
    };
    w.send(MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_ERROR, m).await
}
