//! Request validation (RFC 3261 §8.2): the header checks that need no
//! state — mandatory and single-valued headers, the syntax of every header
//! the core reads, the Request-URI and the CSeq method — and then whether
//! we can serve the request at all: method, URI scheme, Require, body type
//! and Accept. A request that fails gets the status the RFC names and a
//! reason phrase that says which header was wrong.

use super::reply::{response_flow, RawReply, ResponseBase};
use super::{UserAgent, ALLOW, SUPPORTED};
use crate::sip::flow::Flow;
use crate::sip::header::{
    parse_accept, parse_delta_seconds, parse_max_forwards, parse_min_se, parse_token_list,
    parse_vias, validate_call_id, validate_date, CSeq, HeaderError, MediaType, NameAddr,
    SessionExpires, Via,
};
use crate::sip::message::Request;
use crate::sip::method::Method;
use crate::sip::uri::Uri;

/// A request that passed validation, with its parsed core headers.
pub(super) struct Checked<'a> {
    pub(super) req: &'a Request,
    pub(super) flow: Flow,
    /// The topmost Via, the one responses go back along.
    pub(super) top_via: Via,
    pub(super) from: NameAddr,
    pub(super) to: NameAddr,
    pub(super) call_id: String,
    pub(super) cseq: CSeq,
    pub(super) base: ResponseBase,
    pub(super) dest: Flow,
}

impl UserAgent {
    /// Header checks of RFC 3261 §8.2 that need no state: mandatory and
    /// single-valued headers, syntax of the headers we use, method, scheme.
    pub(super) fn check_request<'a>(
        &self,
        flow: Flow,
        req: &'a Request,
    ) -> Result<Checked<'a>, RawReply> {
        let bad = |reason: String| RawReply {
            status: 400,
            reason,
            extra: vec![],
        };
        let malformed = |e: HeaderError| bad(format!("Malformed {} Header", e.header));
        let h = &req.headers;
        if h.count("Via") == 0 {
            return Err(bad("Missing Via Header".into()));
        }
        let vias = parse_vias(h.get_all("Via")).map_err(malformed)?;
        // Every Via value holds at least one via-parm, so this is the top one.
        let top_via = vias
            .into_iter()
            .next()
            .ok_or_else(|| bad("Missing Via Header".into()))?;
        for name in ["From", "To", "Call-ID", "CSeq"] {
            match h.count(name) {
                0 => return Err(bad(format!("Missing {name} Header"))),
                1 => {}
                _ => return Err(bad(format!("Multiple {name} Headers"))),
            }
        }
        for name in [
            "Max-Forwards",
            "Content-Type",
            "Expires",
            "Date",
            "Session-Expires",
            "Min-SE",
        ] {
            if h.count(name) > 1 {
                return Err(bad(format!("Multiple {name} Headers")));
            }
        }
        let from = NameAddr::parse("From", h.get("From").unwrap_or("")).map_err(malformed)?;
        let to = NameAddr::parse("To", h.get("To").unwrap_or("")).map_err(malformed)?;
        let call_id = h.get("Call-ID").unwrap_or("").to_string();
        validate_call_id(&call_id).map_err(malformed)?;
        let cseq = CSeq::parse(h.get("CSeq").unwrap_or("")).map_err(malformed)?;
        if let Some(mf) = h.get("Max-Forwards") {
            parse_max_forwards(mf).map_err(malformed)?;
        }
        for name in ["Contact", "Record-Route", "Route"] {
            for v in h.get_all(name) {
                if !(name == "Contact" && v.trim() == "*") {
                    NameAddr::parse_list(name, v).map_err(malformed)?;
                }
            }
        }
        if let Some(d) = h.get("Date") {
            validate_date(d).map_err(malformed)?;
        }
        if let Some(e) = h.get("Expires") {
            parse_delta_seconds("Expires", e).map_err(malformed)?;
        }
        if let Some(ct) = h.get("Content-Type") {
            MediaType::parse("Content-Type", ct).map_err(malformed)?;
        }
        if let Some(se) = h.get("Session-Expires") {
            SessionExpires::parse(se).map_err(malformed)?;
        }
        if let Some(m) = h.get("Min-SE") {
            parse_min_se(m).map_err(malformed)?;
        }
        for name in ["Require", "Supported", "Allow", "Proxy-Require"] {
            for v in h.get_all(name) {
                parse_token_list(name, v).map_err(malformed)?;
            }
        }
        for v in h.get_all("Accept") {
            parse_accept(v).map_err(malformed)?;
        }
        let uri = Uri::parse(&req.uri).map_err(|_| bad("Malformed Request-URI".into()))?;
        if uri.as_sip().is_some_and(|u| u.headers.is_some()) {
            return Err(bad("Request-URI Must Not Contain Headers".into()));
        }
        // Unknown methods are 501 before the CSeq check (RFC 4475 mismatch02).
        if matches!(req.method, Method::Extension(_)) {
            return Err(RawReply {
                status: 501,
                reason: "Not Implemented".into(),
                extra: vec![("Allow", ALLOW.into())],
            });
        }
        if cseq.method != req.method {
            return Err(bad("CSeq Method Does Not Match Request".into()));
        }
        let dest = response_flow(&flow, &top_via);
        let base = self.response_base(req, &flow, &top_via, None, &to);
        Ok(Checked {
            req,
            flow,
            top_via,
            from,
            to,
            call_id,
            cseq,
            base,
            dest,
        })
    }

    /// Method, URI scheme, Require and body checks (§8.2.1–8.2.3).
    pub(super) fn check_capabilities(&self, c: &Checked<'_>) -> Result<(), RawReply> {
        let m = &c.req.method;
        if !matches!(
            m,
            Method::Invite
                | Method::Ack
                | Method::Bye
                | Method::Cancel
                | Method::Options
                | Method::Info
                | Method::Update
                | Method::Prack
        ) {
            return Err(RawReply {
                status: 405,
                reason: "Method Not Allowed".into(),
                extra: vec![("Allow", ALLOW.into())],
            });
        }
        let scheme_ok = Uri::parse(&c.req.uri)
            .map(|u| matches!(u, Uri::Sip(_) | Uri::Tel { .. }))
            .unwrap_or(false);
        if !scheme_ok {
            return Err(RawReply {
                status: 416,
                reason: "Unsupported URI Scheme".into(),
                extra: vec![],
            });
        }
        if *m != Method::Cancel {
            let unsupported: Vec<String> = c
                .req
                .headers
                .get_all("Require")
                .filter_map(|v| parse_token_list("Require", v).ok())
                .flatten()
                .filter(|t| !t.eq_ignore_ascii_case(SUPPORTED))
                .collect();
            if !unsupported.is_empty() {
                return Err(RawReply {
                    status: 420,
                    reason: "Bad Extension".into(),
                    extra: vec![("Unsupported", unsupported.join(", "))],
                });
            }
        }
        if matches!(m, Method::Invite | Method::Update) {
            if !c.req.body.is_empty() {
                let ct = c
                    .req
                    .headers
                    .get("Content-Type")
                    .and_then(|v| MediaType::parse("Content-Type", v).ok());
                match ct {
                    Some(ct) if ct.is("application", "sdp") => {}
                    Some(_) => {
                        return Err(RawReply {
                            status: 415,
                            reason: "Unsupported Media Type".into(),
                            extra: vec![("Accept", "application/sdp".into())],
                        })
                    }
                    None => {
                        return Err(RawReply {
                            status: 400,
                            reason: "Missing Content-Type Header".into(),
                            extra: vec![],
                        })
                    }
                }
            }
            let accept: Vec<MediaType> = c
                .req
                .headers
                .get_all("Accept")
                .filter_map(|v| parse_accept(v).ok())
                .flatten()
                .collect();
            if c.req.headers.count("Accept") > 0
                && !accept.iter().any(|r| r.accepts("application", "sdp"))
            {
                return Err(RawReply {
                    status: 406,
                    reason: "Not Acceptable".into(),
                    extra: vec![(
                        "Warning",
                        "399 pinbridge \"only application/sdp bodies are available\"".into(),
                    )],
                });
            }
        }
        Ok(())
    }
}
