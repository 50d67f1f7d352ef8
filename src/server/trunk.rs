//! Placing calls and sending messages through the SIP trunk: the API other
//! tasks use ([`SipHandle`]), the handle of one outbound call
//! ([`OutboundCallHandle`], which talks to the SIP task the way an inbound
//! call task does: [`CallCommand`]s in, [`CallEvent`]s out), how a phone
//! number becomes a Request-URI, and the start-up resolution of the trunk's
//! address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::sip_task::{CallCommand, CallEvent};
use super::transport::LocalAddressCache;
use crate::sip::ua::{CallHandle, RequestId};
use crate::sip::uri::Uri;

/// Why a call or message could not be started (or, for a message, got no
/// outcome).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("no SIP trunk is configured")]
    NoTrunk,
    #[error("the SIP trunk's address is not resolved (yet)")]
    TrunkUnresolved,
    #[error("the trunk uses UDP but SIP over UDP is disabled")]
    NoTransport,
    #[error("not a phone number or SIP URI: {0:?}")]
    BadTarget(String),
    #[error("SIP is shutting down")]
    ShuttingDown,
    #[error("the SIP task is gone")]
    Gone,
    #[error("refused by the SIP core: {0}")]
    Refused(String),
}

/// The final answer to a MESSAGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    pub status: u16,
    pub reason: String,
}

impl MessageOutcome {
    /// 2xx: the trunk took the message (202 Accepted included).
    pub fn delivered(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What the SIP task tells the owner of an outbound call.
#[derive(Debug)]
pub enum OutboundCallEvent {
    /// 180/183; `sdp` is early media when the provisional carried SDP.
    Ringing { status: u16, sdp: Option<Bytes> },
    /// The call is up and ACKed; `sdp` is the answer to our offer.
    Answered { sdp: Option<Bytes> },
    /// No call (busy, rejected, 408 when not answered in time, 487 after
    /// our own hang-up). Nothing follows.
    Failed { status: u16, reason: String },
    /// After the answer, everything an inbound call task gets: re-offers,
    /// INFO, the end of the call.
    InCall(CallEvent),
}

/// Requests from other tasks to the SIP task.
#[derive(Debug)]
pub(super) enum SipRequest {
    PlaceCall {
        target: String,
        sdp: Bytes,
        reply: oneshot::Sender<Result<OutboundCallHandle, PlaceError>>,
    },
    SendMessage {
        to: String,
        content_type: String,
        body: Bytes,
        reply: oneshot::Sender<Result<MessageOutcome, PlaceError>>,
    },
}

/// How other tasks place calls and send messages through the trunk.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct SipHandle {
    pub(super) requests: mpsc::Sender<SipRequest>,
    /// The trunk's resolved address (`None` without a trunk or until
    /// resolved).
    pub(super) trunk: watch::Receiver<Option<SocketAddr>>,
    pub(super) public_address: Option<IpAddr>,
    pub(super) listen: SocketAddr,
}

impl SipHandle {
    /// Calls `target` (E.164 like `+15551234567`, digits, `tel:` or a SIP
    /// URI) through the trunk with `sdp` as the offer. Returns once the
    /// INVITE is on its way; the handle reports ringing, the answer or the
    /// failure.
    pub async fn place_call(
        &self,
        target: &str,
        sdp: Bytes,
    ) -> Result<OutboundCallHandle, PlaceError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(SipRequest::PlaceCall {
                target: target.to_string(),
                sdp,
                reply,
            })
            .await
            .map_err(|_| PlaceError::Gone)?;
        rx.await.map_err(|_| PlaceError::Gone)?
    }

    /// Sends a MESSAGE (SMS over SIP) to `to` and waits for its final
    /// answer (at most 64·T1, then 408).
    pub async fn send_message(
        &self,
        to: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<MessageOutcome, PlaceError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(SipRequest::SendMessage {
                to: to.to_string(),
                content_type: content_type.to_string(),
                body,
                reply,
            })
            .await
            .map_err(|_| PlaceError::Gone)?;
        rx.await.map_err(|_| PlaceError::Gone)?
    }

    /// The trunk's address, once resolved.
    pub fn trunk_address(&self) -> Option<SocketAddr> {
        *self.trunk.borrow()
    }

    /// Our IP address as the trunk sees it (the configured public address,
    /// or the local address of the route to the trunk): what the SDP offer
    /// of an outbound call should carry.
    pub fn local_ip_for_trunk(&self) -> Option<IpAddr> {
        let remote = self.trunk_address()?;
        Some(local_ip(
            self.public_address,
            self.listen,
            remote.ip(),
            &mut LocalAddressCache::default(),
        ))
    }
}

/// Our address as `remote` sees it.
pub(super) fn local_ip(
    public: Option<IpAddr>,
    bound: SocketAddr,
    remote: IpAddr,
    cache: &mut LocalAddressCache,
) -> IpAddr {
    match public {
        Some(ip) => ip,
        None if !bound.ip().is_unspecified() => bound.ip(),
        None => cache.resolve(remote).unwrap_or(bound.ip()),
    }
}

/// One outbound call, as its owner sees it. Drive it like an inbound call
/// task drives its call: read [`OutboundCallHandle::next_event`], answer
/// re-offers and INFO with [`OutboundCallHandle::respond`], end it with
/// [`OutboundCallHandle::hangup`] (CANCEL before the answer, BYE after).
/// Dropping the handle hangs up.
#[derive(Debug)]
pub struct OutboundCallHandle {
    pub call: CallHandle,
    /// The Request-URI the call was placed to.
    pub request_uri: String,
    pub(super) events: mpsc::Receiver<OutboundCallEvent>,
    pub(super) commands: mpsc::Sender<CallCommand>,
}

impl OutboundCallHandle {
    /// The next event; `None` once the SIP side is gone (after `Failed`,
    /// the end of the call, or shutdown).
    pub async fn next_event(&mut self) -> Option<OutboundCallEvent> {
        self.events.recv().await
    }

    pub async fn hangup(&self) {
        let _ = self
            .commands
            .send(CallCommand::Hangup { call: self.call })
            .await;
    }

    /// Answers a re-INVITE, UPDATE or INFO from the far end.
    pub async fn respond(
        &self,
        request: RequestId,
        status: u16,
        reason: &'static str,
        sdp: Option<Bytes>,
    ) {
        let _ = self
            .commands
            .send(CallCommand::Respond {
                call: self.call,
                request,
                status,
                reason,
                sdp,
            })
            .await;
    }

    /// The command channel, for code shared with inbound call tasks.
    pub fn commands(&self) -> mpsc::Sender<CallCommand> {
        self.commands.clone()
    }
}

impl Drop for OutboundCallHandle {
    fn drop(&mut self) {
        // A no-op for a call that is already over.
        let _ = self
            .commands
            .try_send(CallCommand::Hangup { call: self.call });
    }
}

/// The Request-URI for a target: a SIP URI as it is, a `tel:` URI or a
/// number (E.164 `+` and up to 15 digits, or a dial string of digits and
/// `*`, visual separators ignored) as `sip:<number>@<domain>;user=phone`.
pub fn target_uri(target: &str, domain: &str) -> Result<String, PlaceError> {
    let bad = || PlaceError::BadTarget(target.to_string());
    let t = target.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return match Uri::parse(t) {
            Ok(Uri::Sip(u)) if u.headers.is_none() => Ok(t.to_string()),
            _ => Err(bad()),
        };
    }
    let number = match t.split_at_checked(4) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tel:") => {
            rest.split(';').next().unwrap_or("")
        }
        _ => t,
    };
    let number: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let ok = match number.strip_prefix('+') {
        Some(d) => (1..=15).contains(&d.len()) && d.bytes().all(|c| c.is_ascii_digit()),
        None => {
            (1..=32).contains(&number.len())
                && number.bytes().all(|c| c.is_ascii_digit() || c == b'*')
        }
    };
    if !ok {
        return Err(bad());
    }
    let uri = format!("sip:{number}@{domain};user=phone");
    match Uri::parse(&uri) {
        Ok(Uri::Sip(_)) => Ok(uri),
        _ => Err(bad()),
    }
}

/// Resolves `host:port` once: the first address of the listening socket's
/// family when there is one.
pub(super) async fn resolve_once(proxy: &str, prefer_v4: bool) -> Option<SocketAddr> {
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(proxy)).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                tracing::warn!(proxy, error = %e, "cannot resolve the SIP trunk");
                return None;
            }
            Err(_) => {
                tracing::warn!(proxy, "resolving the SIP trunk timed out");
                return None;
            }
        };
    addrs
        .iter()
        .find(|a| a.is_ipv4() == prefer_v4)
        .or(addrs.first())
        .copied()
}

/// Keeps trying to resolve the trunk (after a failure at start-up) with a
/// growing pause, until it works or nobody listens any more.
pub(super) async fn resolve_until_found(
    proxy: String,
    prefer_v4: bool,
    tx: watch::Sender<Option<SocketAddr>>,
) {
    let mut pause = Duration::from_secs(5);
    loop {
        tokio::time::sleep(pause).await;
        if tx.is_closed() {
            return;
        }
        if let Some(a) = resolve_once(&proxy, prefer_v4).await {
            tracing::info!(proxy, address = %a, "SIP trunk resolved");
            let _ = tx.send(Some(a));
            return;
        }
        pause = (pause * 2).min(Duration::from_secs(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_sip_uris_on_the_trunk_domain() {
        let d = "trunk.example.com";
        assert_eq!(
            target_uri("+1 (555) 123-4567", d).unwrap(),
            "sip:+15551234567@trunk.example.com;user=phone"
        );
        assert_eq!(
            target_uri("tel:+44-20-7946-0000;phone-context=x", d).unwrap(),
            "sip:+442079460000@trunk.example.com;user=phone"
        );
        assert_eq!(
            target_uri("5551234", d).unwrap(),
            "sip:5551234@trunk.example.com;user=phone"
        );
        assert_eq!(
            target_uri("sip:bob@example.org", d).unwrap(),
            "sip:bob@example.org"
        );
        for bad in [
            "",
            "+",
            "+1234567890123456",
            "12a4",
            "sip:bob@example.org?Route=x",
            "sip:",
            "mailto:x@y",
            "+1\r\nVia: x",
        ] {
            assert!(target_uri(bad, d).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message_outcome_delivered_is_2xx() {
        let o = |status| MessageOutcome {
            status,
            reason: String::new(),
        };
        assert!(o(200).delivered() && o(202).delivered());
        assert!(!o(408).delivered() && !o(403).delivered());
    }
}
