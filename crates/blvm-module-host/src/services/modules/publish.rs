//! Events modules publish (`publish_event`).
//!
//! A module may publish only what its manifest declares in `publishes`
//! (checked when the manifest is validated, by [`declarable`], and again
//! on every publish): catalogue events that modules may publish (payments,
//! Lightning, mining pools, mesh, Stratum V2, governance, …; never a node
//! event such as `NewBlock`) and its own custom events, named
//! `<module name>.<Event>`. The node sets the event's `origin` to the
//! publisher's name. A catalogue event's payload must decode as that
//! event's payload, so subscribers never receive one they cannot read; a
//! custom payload must be a MessagePack map.
//!
//! Publishing never blocks the publisher: the bus `try_send`s into each
//! subscriber's queue. It is rate limited per module (a token bucket,
//! [`super::ModuleCallLimits::publish_rate`]); over it, `rate_limited`.

use std::collections::HashMap;
use std::sync::Mutex;

use blvm_module_protocol::events::{Event, EventType};
use blvm_module_protocol::methods::modules::{PublishEvent, Published};
use blvm_module_protocol::{ErrorCode, RemoteError};
use bytes::Bytes;

use crate::api::events::EventManager;
use crate::ipc::rate::TokenBucket;
use crate::ipc::RequestRate;

/// The publishing rate when the operator sets none: 1 000 events/s, in
/// bursts of 1 000.
pub const DEFAULT_PUBLISH_RATE: RequestRate = RequestRate {
    per_second: 1_000,
    burst: 1_000,
};

/// The largest payload a module may publish: every subscriber's queue
/// holds a reference to it until written.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The longest event name after the module's `<name>.`.
pub const MAX_CUSTOM_NAME: usize = 64;

/// Whether `module` may declare (and so publish) `event`: `Ok(Some(ty))`
/// for a catalogue event modules may publish, `Ok(None)` for the module's
/// own `<module>.<Event>`, `Err` saying why not.
///
/// # Errors
///
/// A node event, or a name that is neither a catalogue event nor
/// `<module>.<Event>` with `Event` 1 to [`MAX_CUSTOM_NAME`] of ASCII
/// letters, digits, `_` and `-`.
pub fn declarable(module: &str, event: &str) -> Result<Option<EventType>, String> {
    if let Some(ty) = EventType::from_name(event) {
        return if ty.is_node_only() {
            Err(format!("`{event}` is a node event: only the node publishes it"))
        } else {
            Ok(Some(ty))
        };
    }
    let own = event
        .strip_prefix(module)
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|rest| {
            !rest.is_empty()
                && rest.len() <= MAX_CUSTOM_NAME
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        });
    match own {
        Some(_) => Ok(None),
        None => Err(format!(
            "`{event}` is neither a catalogue event nor one of this module's own, named `{module}.<Event>` \
             (1 to {MAX_CUSTOM_NAME} of A-Z, a-z, 0-9, `_`, `-`)"
        )),
    }
}

/// Each connection's publishing budget, by module id.
#[derive(Default)]
pub(crate) struct Publishers {
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl Publishers {
    fn allow(&self, module_id: &str, rate: RequestRate) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry(module_id.to_owned())
            .or_insert_with(|| TokenBucket::new(rate))
            .allow()
    }

    pub(crate) fn remove(&self, module_id: &str) {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).remove(module_id);
    }
}

/// Who publishes: from the connection's handshake and manifest.
pub struct Publisher<'a> {
    /// The spawn.
    pub module_id: &'a str,
    /// The module name, the event's origin.
    pub module: &'a str,
    /// The manifest's `publishes`.
    pub declared: &'a [String],
}

impl super::InterModuleService {
    /// Publishes `p` for `who` on `events`.
    ///
    /// # Errors
    ///
    /// `permission_denied` (not declared, or a node event), `rate_limited`,
    /// `invalid_params` (a payload too large or not the event's).
    pub fn publish(
        &self,
        events: &EventManager,
        who: &Publisher<'_>,
        p: PublishEvent,
    ) -> Result<Published, RemoteError> {
        let ty = declarable(who.module, &p.event).map_err(|why| refused(&p.event, &why))?;
        if !who.declared.contains(&p.event) {
            return Err(refused(
                &p.event,
                &format!("the manifest of `{}` does not declare it in `publishes`", who.module),
            ));
        }
        if p.payload.len() > MAX_PAYLOAD {
            return Err(RemoteError::invalid_params(
                "publish_event",
                format_args!("payload of {} bytes; at most {MAX_PAYLOAD}", p.payload.len()),
            ));
        }
        check_payload(&p.event, &p.payload)?;
        let rate = self.limits_of(who.module).publish_rate;
        if !self.publishers.allow(who.module_id, rate) {
            return Err(RemoteError::new(
                ErrorCode::RateLimited,
                format!(
                    "over this module's publishing rate of {} events/s (bursts of {}); retry later",
                    rate.per_second, rate.burst
                ),
            ));
        }
        let delivered = events.publish_from_module(ty, &p.event, Bytes::from(p.payload), who.module);
        Ok(Published {
            delivered: delivered as u64,
        })
    }
}

fn refused(event: &str, why: &str) -> RemoteError {
    RemoteError::new(
        ErrorCode::PermissionDenied,
        format!("publishing `{event}` is refused: {why}"),
    )
}

/// A catalogue event's payload must decode as its type; a custom one (an
/// `Unknown` to the catalogue) must be one well-formed MessagePack map:
/// [`Event::decode`] checks both.
fn check_payload(name: &str, payload: &[u8]) -> Result<(), RemoteError> {
    Event::decode(name, payload)
        .map(drop)
        .map_err(|e| RemoteError::invalid_params("publish_event", format_args!("payload of `{name}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_events_and_foreign_names_cannot_be_declared() {
        assert!(declarable("pay", "NewBlock").unwrap_err().contains("node event"));
        assert_eq!(
            declarable("pay", "PaymentSettled").unwrap(),
            Some(EventType::PaymentSettled)
        );
        assert_eq!(declarable("pay", "pay.invoice_paid").unwrap(), None);
        for bad in ["other.thing", "pay.", "pay", "pay.a b", "payx.y", "Unknown"] {
            assert!(declarable("pay", bad).is_err(), "{bad}");
        }
    }
}
