//! Request params as their receiver decodes them: the first byte picks a
//! row of the method table (`Method::ALL`, what the hub routes) or one of
//! the SDK's invocations (`rpc_call`, `module_call`, `timer_fired`); the
//! rest are the params. They travel in a real request frame through the
//! codec and `Frame::decode` (the params the receiver gets must be exactly
//! the bytes sent) and are decoded as that row's params type with
//! `Request::params`, the call both the hub's routes and the SDK's
//! `Invocation::params` make. Property: params that decode re-encode (as
//! the SDK encodes them) to bytes that decode to the same value, and
//! encode again to the same bytes. Methods without params (the hub never
//! decodes theirs) are checked as `Empty`, what the SDK sends for them.
//!
//! The match below names every method: one added to the table fails to
//! compile here until its params type is added.
#![no_main]

use std::fmt::Debug;

use blvm_fuzz::self_equal;
use blvm_module_protocol::codec::FrameDecoder;
use blvm_module_protocol::frame::{decode_body, encode, Frame};
use blvm_module_protocol::methods::chain::{ByHash, ByHeight, ByTxid, OutPoint};
use blvm_module_protocol::methods::events::{AckEvents, DurableSubscription, EventTypes};
use blvm_module_protocol::methods::filesystem::{CreateDir, RemoveDir};
use blvm_module_protocol::methods::invocation::{ModuleCall, RpcCall, TimerFired, MODULE_CALL, RPC_CALL, TIMER_FIRED};
use blvm_module_protocol::methods::mempool::{FeeEstimateParams, SubmitTransaction};
use blvm_module_protocol::methods::metrics::{ReadMetrics, ReportMetrics};
use blvm_module_protocol::methods::mining::{BlockTemplateParams, SubmitBlock};
use blvm_module_protocol::methods::modules::{CallModule, PublishEvent, RegisterModuleApi};
use blvm_module_protocol::methods::rpc::{RegisterRpcEndpoint, UnregisterRpcEndpoint};
use blvm_module_protocol::methods::storage::{Batch, Put, Scan, TreeKey, TreeName};
use blvm_module_protocol::methods::timers::{CancelTimer, ScheduleTimer};
use blvm_module_protocol::{Empty, Method, Request};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The SDK's invocations with params, after the method table's rows.
const INVOCATIONS: &[&str] = &[RPC_CALL, MODULE_CALL, TIMER_FIRED];

/// The hub's decode of `method`'s params (`api/routes.rs`).
fn hub(method: Method, request: &Request) {
    match method {
        Method::GetBlock | Method::GetBlockHeader => check::<ByHash>(request),
        Method::GetBlockByHeight | Method::GetBlockHash => check::<ByHeight>(request),
        Method::GetTransaction
        | Method::HasTransaction
        | Method::GetMempoolTransaction
        | Method::CheckTransactionInMempool => check::<ByTxid>(request),
        Method::GetUtxo => check::<OutPoint>(request),
        Method::GetFeeEstimate => check::<FeeEstimateParams>(request),
        Method::GetBlockTemplate => check::<BlockTemplateParams>(request),
        Method::SubmitTransaction => check::<SubmitTransaction>(request),
        Method::SubmitBlock => check::<SubmitBlock>(request),
        Method::SubscribeEvents | Method::UnsubscribeEvents => check::<EventTypes>(request),
        Method::SubscribeDurable => check::<DurableSubscription>(request),
        Method::AckEvents => check::<AckEvents>(request),
        Method::StorageGet | Method::StorageDelete => check::<TreeKey>(request),
        Method::StorageScan => check::<Scan>(request),
        Method::StoragePut => check::<Put>(request),
        Method::StorageBatch => check::<Batch>(request),
        Method::StorageCreateTree | Method::StorageDropTree => check::<TreeName>(request),
        Method::ReportMetrics => check::<ReportMetrics>(request),
        Method::ReadMetrics => check::<ReadMetrics>(request),
        Method::RegisterModuleApi => check::<RegisterModuleApi>(request),
        Method::CallModule => check::<CallModule>(request),
        Method::PublishEvent => check::<PublishEvent>(request),
        Method::FsCreateDir => check::<CreateDir>(request),
        Method::FsRemoveDir => check::<RemoveDir>(request),
        Method::RegisterRpcEndpoint => check::<RegisterRpcEndpoint>(request),
        Method::UnregisterRpcEndpoint => check::<UnregisterRpcEndpoint>(request),
        Method::TimerSchedule => check::<ScheduleTimer>(request),
        Method::TimerCancel => check::<CancelTimer>(request),
        Method::Ping
        | Method::GetChainTip
        | Method::GetBlockHeight
        | Method::GetChainInfo
        | Method::GetMempoolTransactions
        | Method::GetMempoolSize
        | Method::GetNetworkStats
        | Method::GetNetworkPeers
        | Method::StorageListTrees
        | Method::StorageUsage
        | Method::DiscoverModules
        | Method::FsUsage
        | Method::TimerList => check::<Empty>(request),
    }
}

/// The SDK's decode of an invocation's params (`Invocation::params`,
/// `rpc_call`, `timer_fired`).
fn sdk(method: &str, request: &Request) {
    match method {
        RPC_CALL => check::<RpcCall>(request),
        MODULE_CALL => check::<ModuleCall>(request),
        _ => check::<TimerFired>(request),
    }
}

fn check<T: DeserializeOwned + Serialize + PartialEq + Debug>(request: &Request) {
    let Ok(params) = request.params::<T>() else {
        return;
    };
    let mut bytes = Vec::new();
    encode::body(&mut bytes, "params", &params).expect("decoded params re-encode");
    let again: T = decode_body("params", &bytes).expect("re-encoded params decode");
    if self_equal(&params) {
        assert_eq!(again, params, "decode(encode(params)) == params");
    }
    let mut twice = Vec::new();
    encode::body(&mut twice, "params", &again).expect("params re-encode");
    assert_eq!(twice, bytes, "the encoding of decoded params is stable");
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, params)) = data.split_first() else {
        return;
    };
    let row = usize::from(pick) % (Method::ALL.len() + INVOCATIONS.len());
    let method = Method::ALL.get(row).copied();
    let name = match method {
        Some(m) => m.name(),
        None => INVOCATIONS[row - Method::ALL.len()],
    };
    let mut wire = Vec::new();
    encode::request_raw(&mut wire, 7, name, params);
    let mut buf = BytesMut::from(&wire[..]);
    let request = match FrameDecoder::default().next_frame(&mut buf) {
        Ok(Some(Frame::Request(request))) => request,
        Ok(Some(other)) => panic!("a request frame decodes as a request: {other:?}"),
        Ok(None) => panic!("a whole frame is complete"),
        // Not one MessagePack value: the frame is refused, the connection
        // ends.
        Err(_) => return,
    };
    assert_eq!(request.id, 7);
    assert_eq!(request.method, name);
    assert_eq!(&request.params[..], params, "the receiver gets the params as sent");
    match method {
        Some(m) => hub(m, &request),
        None => sdk(name, &request),
    }
});
