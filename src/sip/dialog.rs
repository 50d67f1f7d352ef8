//! Dialog state (RFC 3261 §12): identifiers, the route set, the remote
//! target and sequence numbers, and building the requests we send inside a
//! dialog.

use super::flow::Flow;
use super::grammar::find_param;
use super::header::NameAddr;
use super::message::Request;
use super::method::Method;

#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// The peer's tag; empty for RFC 2543 peers that send none.
    pub remote_tag: String,
    /// Our address-of-record header value without tag (the To of the
    /// INVITE as received); we add `;tag=local_tag`.
    pub local_uri: String,
    /// The peer's header value as received, tag included (the From of the
    /// INVITE).
    pub remote_uri: String,
    /// Where in-dialog requests are addressed (the peer's Contact URI).
    pub remote_target: String,
    /// Record-Route entries in the order a UAS uses them (§12.1.1).
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    /// The flow the dialog was created on. In-dialog requests are sent back
    /// along it, which works behind NAT and through a PBX or proxy that
    /// record-routes from the address it sent from.
    pub flow: Flow,
    /// Our Contact header value.
    pub local_contact: String,
}

impl Dialog {
    /// The From header value for requests we send.
    pub fn local_from(&self) -> String {
        format!("{};tag={}", self.local_uri, self.local_tag)
    }

    /// Allocates the CSeq number for a new request we send (not ACK/CANCEL).
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq = self.local_cseq.wrapping_add(1) % (1 << 31);
        self.local_cseq
    }

    /// Builds an in-dialog request with Request-URI and Route set from the
    /// route set (loose routing, with the strict-routing fallback of
    /// §12.2.1.1), the given CSeq and a Via with `branch`.
    pub fn request(&self, method: Method, cseq: u32, branch: &str, user_agent: &str) -> Request {
        let first_is_strict = self
            .route_set
            .first()
            .and_then(|r| NameAddr::parse("Route", r).ok())
            .and_then(|na| {
                na.uri
                    .as_sip()
                    .map(|u| find_param(&u.params, "lr").is_none())
            })
            .unwrap_or(false);
        let (uri, routes): (String, Vec<String>) = match self.route_set.split_first() {
            Some((first, rest)) if first_is_strict => {
                let first = NameAddr::parse("Route", first)
                    .map(|na| na.uri_text)
                    .unwrap_or_else(|_| self.remote_target.clone());
                let mut rest: Vec<String> = rest.to_vec();
                rest.push(format!("<{}>", self.remote_target));
                (first, rest)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let mut req = Request::new(method.clone(), uri);
        let h = &mut req.headers;
        h.push(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={};rport",
                self.flow.transport,
                host_port(self.flow.local),
                branch
            ),
        );
        h.push("Max-Forwards", "70");
        for r in routes {
            h.push("Route", r);
        }
        h.push("From", self.local_from());
        h.push("To", self.remote_uri.clone());
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{cseq} {method}"));
        if !matches!(method, Method::Ack | Method::Bye | Method::Cancel) {
            h.push("Contact", self.local_contact.clone());
        }
        h.push("User-Agent", user_agent.to_string());
        req
    }
}

/// `host:port` with IPv6 in brackets.
pub fn host_port(addr: std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::flow::Transport;

    fn dialog(route_set: Vec<String>) -> Dialog {
        Dialog {
            call_id: "c1".into(),
            local_tag: "ours".into(),
            remote_tag: "theirs".into(),
            local_uri: "<sip:1000@192.0.2.1>".into(),
            remote_uri: "<sip:alice@192.0.2.9>;tag=theirs".into(),
            remote_target: "sip:alice@192.0.2.9:5072".into(),
            route_set,
            local_cseq: 1,
            remote_cseq: Some(1),
            flow: Flow {
                transport: Transport::Udp,
                remote: "192.0.2.9:5072".parse().unwrap(),
                local: "192.0.2.1:5060".parse().unwrap(),
                connection: None,
            },
            local_contact: "<sip:pinbridge@192.0.2.1:5060>".into(),
        }
    }

    #[test]
    fn loose_routing_keeps_target_as_request_uri() {
        let d = dialog(vec!["<sip:proxy.example.com;lr>".into()]);
        let r = d.request(Method::Bye, 2, "z9hG4bKabc", "pinbridge");
        assert_eq!(r.uri, "sip:alice@192.0.2.9:5072");
        assert_eq!(r.headers.get("Route"), Some("<sip:proxy.example.com;lr>"));
        assert_eq!(r.headers.get("From"), Some("<sip:1000@192.0.2.1>;tag=ours"));
        assert_eq!(
            r.headers.get("To"),
            Some("<sip:alice@192.0.2.9>;tag=theirs")
        );
        assert_eq!(r.headers.get("CSeq"), Some("2 BYE"));
    }

    #[test]
    fn strict_router_goes_into_request_uri() {
        let d = dialog(vec![
            "<sip:strict.example.com>".into(),
            "<sip:p2.example.com;lr>".into(),
        ]);
        let r = d.request(Method::Bye, 2, "z9hG4bKabc", "pinbridge");
        assert_eq!(r.uri, "sip:strict.example.com");
        let routes: Vec<&str> = r.headers.get_all("Route").collect();
        assert_eq!(
            routes,
            vec!["<sip:p2.example.com;lr>", "<sip:alice@192.0.2.9:5072>"]
        );
    }

    #[test]
    fn cseq_stays_below_2_pow_31() {
        let mut d = dialog(vec![]);
        d.local_cseq = (1 << 31) - 1;
        assert_eq!(d.next_cseq(), 0);
    }
}
