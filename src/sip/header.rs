//! Typed views of the header fields pinbridge acts on, parsed strictly by
//! the RFC 3261 grammar so that malformed requests get a 400 that names the
//! header instead of being half-understood.

use super::grammar::{
    find_param, is_token_char, is_word_char, parse_params, split_commas, Cursor, Param,
};
use super::method::Method;
use super::uri::{split_host_port, Host, Uri};

/// A header that did not parse; the name goes into the 400 reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {header} header: {why}")]
pub struct HeaderError {
    pub header: &'static str,
    pub why: &'static str,
}

fn err(header: &'static str, why: &'static str) -> HeaderError {
    HeaderError { header, why }
}

/// `name-addr / addr-spec` with header parameters: From, To, Contact,
/// Route, Record-Route, P-Asserted-Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    /// The URI exactly as written (without angle brackets).
    pub uri_text: String,
    pub uri: Uri,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).map(|p| p.value.as_deref().unwrap_or(""))
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").filter(|t| !t.is_empty())
    }

    /// Parses one name-addr or addr-spec from `value`, which must hold
    /// nothing else.
    pub fn parse(header: &'static str, value: &str) -> Result<NameAddr, HeaderError> {
        let mut c = Cursor::new(value);
        let na = parse_name_addr(header, &mut c)?;
        if !c.is_empty() {
            return Err(err(header, "unexpected text after the address"));
        }
        Ok(na)
    }

    /// Parses a comma-separated list (Contact, Route, Record-Route).
    pub fn parse_list(header: &'static str, value: &str) -> Result<Vec<NameAddr>, HeaderError> {
        let parts =
            split_commas(value).map_err(|_| err(header, "unbalanced quotes or brackets"))?;
        parts
            .into_iter()
            .map(|p| NameAddr::parse(header, p))
            .collect()
    }
}

fn parse_name_addr(header: &'static str, c: &mut Cursor<'_>) -> Result<NameAddr, HeaderError> {
    c.skip_ws();
    let mut display = None;
    let angle = if c.peek() == Some(b'"') {
        let q = c
            .quoted_string()
            .ok_or(err(header, "unterminated quoted display name"))?;
        display = Some(q.to_string());
        c.skip_ws();
        if !c.eat(b'<') {
            return Err(err(header, "display name not followed by <URI>"));
        }
        true
    } else {
        // display-name = *(token LWS): look for tokens followed by '<'.
        let mut probe = c.clone();
        let mut words = Vec::new();
        while let Some(t) = probe.token() {
            words.push(t);
            probe.skip_ws();
        }
        if probe.eat(b'<') {
            if !words.is_empty() {
                display = Some(words.join(" "));
            }
            *c = probe;
            true
        } else {
            false
        }
    };
    let uri_text = if angle {
        let inner = c.take_while(|b| b != b'>');
        if !c.eat(b'>') {
            return Err(err(header, "missing '>'"));
        }
        inner
    } else {
        // In addr-spec form everything after ';' is a header parameter, and
        // a URI containing ',', ';' or '?' must have been in angle brackets.
        let spec = c.take_while(|b| !matches!(b, b';' | b',' | b' ' | b'\t'));
        if spec.contains('?') {
            return Err(err(header, "URI with '?' must be enclosed in <>"));
        }
        spec
    };
    let uri = Uri::parse(uri_text).map_err(|_| err(header, "malformed URI"))?;
    let params = parse_params(c).map_err(|why| err(header, why))?;
    Ok(NameAddr {
        display,
        uri_text: uri_text.to_string(),
        uri,
        params,
    })
}

/// One `via-parm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-cased transport: UDP, TCP, TLS, SCTP, WS, ...
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl Via {
    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").and_then(|p| p.value.as_deref())
    }

    /// `rport` present (with or without a value).
    pub fn has_rport(&self) -> bool {
        self.param("rport").is_some()
    }

    /// `sent-by` as `host[:port]` text, used in transaction keys.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    /// Parses every via-parm of one Via header value.
    pub fn parse_all(value: &str) -> Result<Vec<Via>, HeaderError> {
        let parts = split_commas(value).map_err(|_| err("Via", "unbalanced quotes"))?;
        parts.into_iter().map(parse_via_parm).collect()
    }
}

fn parse_via_parm(s: &str) -> Result<Via, HeaderError> {
    const H: &str = "Via";
    let mut c = Cursor::new(s);
    let name = c.token().ok_or(err(H, "missing protocol name"))?;
    if !c.eat_sep(b'/') {
        return Err(err(H, "missing '/' after protocol name"));
    }
    let version = c.token().ok_or(err(H, "missing protocol version"))?;
    if !c.eat_sep(b'/') {
        return Err(err(H, "missing transport"));
    }
    let transport = c.token().ok_or(err(H, "missing transport"))?;
    if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
        return Err(err(H, "unsupported protocol version"));
    }
    if !c.skip_ws() {
        return Err(err(H, "missing space before sent-by"));
    }
    let host_text = if c.peek() == Some(b'[') {
        let h = c.take_while(|b| b != b']');
        if !c.eat(b']') {
            return Err(err(H, "unterminated IPv6 reference"));
        }
        format!("{h}]")
    } else {
        c.take_while(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            .to_string()
    };
    let host = Host::parse(&host_text).map_err(|_| err(H, "malformed sent-by host"))?;
    let port = if c.eat_sep(b':') {
        let p = c.take_while(|b| b.is_ascii_digit());
        let (_, port) = split_host_port(&format!("h:{p}")).map_err(|_| err(H, "malformed port"))?;
        port
    } else {
        None
    };
    let params = parse_params(&mut c).map_err(|why| err(H, why))?;
    if !c.is_empty() {
        return Err(err(H, "unexpected text"));
    }
    Ok(Via {
        transport: transport.to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

/// All Via entries of a message, top first, across repeated headers.
pub fn parse_vias<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<Via>, HeaderError> {
    let mut out = Vec::new();
    for v in values {
        out.extend(Via::parse_all(v)?);
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    /// `CSeq = 1*DIGIT LWS Method`; the number must be below 2^31.
    pub fn parse(value: &str) -> Result<CSeq, HeaderError> {
        const H: &str = "CSeq";
        let mut c = Cursor::new(value);
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() || digits.len() > 10 {
            return Err(err(H, "sequence number missing or too long"));
        }
        let seq: u64 = digits.parse().map_err(|_| err(H, "bad number"))?;
        if seq >= 1 << 31 {
            return Err(err(H, "sequence number not below 2^31"));
        }
        if !c.skip_ws() {
            return Err(err(H, "missing space before method"));
        }
        let method = c.token().ok_or(err(H, "missing method"))?;
        if !c.is_empty() {
            return Err(err(H, "unexpected text after method"));
        }
        Ok(CSeq {
            seq: seq as u32,
            method: Method::from_token(method),
        })
    }
}

/// `Max-Forwards = 1*DIGIT`, 0..=255 in practice (RFC 4475 scalar02).
pub fn parse_max_forwards(value: &str) -> Result<u8, HeaderError> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("Max-Forwards", "not a number"));
    }
    value
        .parse::<u32>()
        .ok()
        .and_then(|v| u8::try_from(v).ok())
        .ok_or(err("Max-Forwards", "out of range"))
}

/// `callid = word [ "@" word ]`.
pub fn validate_call_id(value: &str) -> Result<(), HeaderError> {
    let mut parts = value.splitn(2, '@');
    let ok = parts.all(|w| !w.is_empty() && w.bytes().all(is_word_char));
    if ok {
        Ok(())
    } else {
        Err(err("Call-ID", "not a word[@word]"))
    }
}

/// `delta-seconds`; values beyond 2^32-1 are taken as 2^32-1 (RFC 3261 §25).
pub fn parse_delta_seconds(header: &'static str, value: &str) -> Result<u32, HeaderError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(header, "not a number of seconds"));
    }
    Ok(value
        .parse::<u64>()
        .map(|v| v.min(u32::MAX as u64) as u32)
        .unwrap_or(u32::MAX))
}

/// `rfc1123-date`, e.g. `Sat, 13 Nov 2010 23:29:00 GMT`. Only GMT is valid.
pub fn validate_date(value: &str) -> Result<(), HeaderError> {
    const WKDAY: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTH: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let bad = || err("Date", "not an RFC 1123 date in GMT");
    let (wk, rest) = value.split_once(", ").ok_or_else(bad)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let time_ok = |t: &str| {
        let p: Vec<&str> = t.split(':').collect();
        p.len() == 3 && p.iter().all(|x| digits(x, 2))
    };
    let ok = WKDAY.contains(&wk)
        && matches!(f[..], [day, month, year, time, "GMT"]
            if digits(day, 2) && MONTH.contains(&month) && digits(year, 4) && time_ok(time));
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A comma-separated list of option tags or methods (Require, Supported,
/// Allow, Unsupported, Proxy-Require). Empty lists are allowed.
pub fn parse_token_list(header: &'static str, value: &str) -> Result<Vec<String>, HeaderError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|t| {
            let t = t.trim_matches([' ', '\t']);
            if !t.is_empty() && t.bytes().all(is_token_char) {
                Ok(t.to_string())
            } else {
                Err(err(header, "not a list of tokens"))
            }
        })
        .collect()
}

/// `type/subtype *(;param)`, lower-cased type and subtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub mtype: String,
    pub subtype: String,
    pub params: Vec<Param>,
}

impl MediaType {
    pub fn parse(header: &'static str, value: &str) -> Result<MediaType, HeaderError> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let t = c.token().ok_or(err(header, "missing media type"))?;
        if !c.eat_sep(b'/') {
            return Err(err(header, "missing '/' in media type"));
        }
        let s = c.token().ok_or(err(header, "missing media subtype"))?;
        let params = parse_params(&mut c).map_err(|why| err(header, why))?;
        if !c.is_empty() {
            return Err(err(header, "unexpected text"));
        }
        Ok(MediaType {
            mtype: t.to_ascii_lowercase(),
            subtype: s.to_ascii_lowercase(),
            params,
        })
    }

    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype == mtype && self.subtype == subtype
    }

    /// Does this media range (from Accept) cover `mtype/subtype`?
    pub fn accepts(&self, mtype: &str, subtype: &str) -> bool {
        (self.mtype == "*" || self.mtype == mtype)
            && (self.subtype == "*" || self.subtype == subtype)
    }
}

/// Accept: a possibly empty list of media ranges.
pub fn parse_accept(value: &str) -> Result<Vec<MediaType>, HeaderError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_commas(value)
        .map_err(|_| err("Accept", "unbalanced quotes"))?
        .into_iter()
        .map(|r| MediaType::parse("Accept", r))
        .collect()
}

/// Who refreshes a session (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// `Session-Expires = delta-seconds *(SEMI se-params)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    pub seconds: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    pub fn parse(value: &str) -> Result<SessionExpires, HeaderError> {
        const H: &str = "Session-Expires";
        let mut c = Cursor::new(value);
        let digits = c.take_while(|b| b.is_ascii_digit());
        let seconds = parse_delta_seconds(H, digits)?;
        let params = parse_params(&mut c).map_err(|why| err(H, why))?;
        if !c.is_empty() {
            return Err(err(H, "unexpected text"));
        }
        let refresher = match find_param(&params, "refresher").and_then(|p| p.value.as_deref()) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(v) if v.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            Some(_) => return Err(err(H, "refresher must be uac or uas")),
        };
        Ok(SessionExpires { seconds, refresher })
    }
}

/// `Min-SE = delta-seconds *(SEMI generic-param)`.
pub fn parse_min_se(value: &str) -> Result<u32, HeaderError> {
    let mut c = Cursor::new(value);
    let digits = c.take_while(|b| b.is_ascii_digit());
    let v = parse_delta_seconds("Min-SE", digits)?;
    parse_params(&mut c).map_err(|why| err("Min-SE", why))?;
    if !c.is_empty() {
        return Err(err("Min-SE", "unexpected text"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let a =
            NameAddr::parse("From", "\"Alice\" <sip:alice@example.com>;tag=9fxced76sl").unwrap();
        assert_eq!(a.display.as_deref(), Some("Alice"));
        assert_eq!(a.tag(), Some("9fxced76sl"));
        let b = NameAddr::parse(
            "To",
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
        )
        .unwrap();
        assert_eq!(b.tag(), Some("1918181833n"));
        let c = NameAddr::parse("From", "caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(c.display.as_deref(), Some("caller"));
        let d = NameAddr::parse("From", "A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe").unwrap();
        assert_eq!(d.display.as_deref(), Some("A. Bell"));
        let e = NameAddr::parse("To", "isbn:2983792873").unwrap();
        assert_eq!(e.uri.scheme(), "isbn");
    }

    #[test]
    fn name_addr_rejects_rfc4475_invalid_forms() {
        for (v, why) in [
            ("\"Mr. J. User <sip:j.user@example.com>", "quotbal"),
            (
                "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43",
                "baddn",
            ),
            (
                "\"Watson, Thomas\" < sip:t.watson@example.org >",
                "badaspec",
            ),
            (
                "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
                "regbadct",
            ),
            ("\"Joe\" <sip:joe@example.org>;;;;", "badinv01"),
        ] {
            assert!(NameAddr::parse_list("Contact", v).is_err(), "{why}");
        }
    }

    #[test]
    fn contact_list_with_params() {
        let l = NameAddr::parse_list("Contact", "\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33").unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].param("q"), Some("0.33"));
    }

    #[test]
    fn via_with_whitespace_everywhere() {
        let v = Via::parse_all("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "TCP");
        assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(v[1].host, Host::V4("192.168.255.111".parse().unwrap()));
    }

    #[test]
    fn via_ipv6_rport_and_errors() {
        let v = Via::parse_all("SIP/2.0/UDP [2001:db8::9]:5061;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(v[0].port, Some(5061));
        assert!(v[0].has_rport());
        assert!(Via::parse_all("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(Via::parse_all("SIP/7.0/UDP c.example.com").is_err());
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(CSeq::parse("0009   INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("1INVITE").is_err());
    }

    #[test]
    fn scalars_and_dates() {
        assert_eq!(parse_max_forwards("0068").unwrap(), 68);
        assert!(parse_max_forwards("300").is_err());
        assert!(validate_date("Sat, 15 Oct 2005 04:44:56 GMT").is_ok());
        assert!(validate_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(validate_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(validate_call_id("a@b@c").is_err());
        assert_eq!(
            parse_delta_seconds("Expires", "10000000000000000000000").unwrap(),
            u32::MAX
        );
    }

    #[test]
    fn media_types_and_session_timers() {
        let m =
            MediaType::parse("Content-Type", "multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("multipart", "mixed"));
        let acc = parse_accept("application/sdp, application/pkcs7-mime, multipart/mixed").unwrap();
        assert!(acc.iter().any(|r| r.accepts("application", "sdp")));
        let se = SessionExpires::parse("1800;refresher=uac").unwrap();
        assert_eq!((se.seconds, se.refresher), (1800, Some(Refresher::Uac)));
        assert_eq!(parse_min_se("90").unwrap(), 90);
        assert_eq!(
            parse_token_list("Supported", "").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            parse_token_list("Require", "timer, 100rel").unwrap(),
            vec!["timer", "100rel"]
        );
    }
}
