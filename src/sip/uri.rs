//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), plus any other
//! absolute URI kept opaque so that a request with an unknown scheme still
//! parses and can be answered with 416.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::grammar::{all_escaped_or, is_unreserved, Cursor, Param};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Domain(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl Host {
    /// The IP address when the host is a literal.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::V4(a) => Some((*a).into()),
            Host::V6(a) => Some((*a).into()),
        }
    }

    /// Parses `hostname / IPv4address / IPv6reference`.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::BadHost)?;
            return inner.parse().map(Host::V6).map_err(|_| UriError::BadHost);
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Host::V4(v4));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        if trimmed.is_empty() || !trimmed.split('.').all(label_ok) {
            return Err(UriError::BadHost);
        }
        Ok(Host::Domain(s.to_ascii_lowercase()))
    }
}

/// What is wrong with a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("URI has no scheme")]
    NoScheme,
    #[error("URI has an empty or malformed host")]
    BadHost,
    #[error("URI has a malformed port")]
    BadPort,
    #[error("URI has an invalid character in the user part")]
    BadUser,
    #[error("URI has an invalid character in the password")]
    BadPassword,
    #[error("URI has a malformed parameter")]
    BadParam,
    #[error("URI has malformed headers")]
    BadHeaders,
    #[error("URI contains characters not allowed in a URI")]
    BadCharacters,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    /// The `?h=v&...` part, unparsed beyond validation.
    pub headers: Option<String>,
}

impl SipUri {
    pub fn param(&self, name: &str) -> Option<&Param> {
        super::grammar::find_param(&self.params, name)
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.param("transport")
            .and_then(|p| p.value.as_deref())
            .map(str::to_ascii_lowercase)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    /// `tel:` with the number as written (visual separators kept).
    Tel {
        number: String,
        params: Vec<Param>,
    },
    /// Any other absolute URI, e.g. `soap.beep://...`, `isbn:...`.
    Other {
        scheme: String,
        rest: String,
    },
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError::NoScheme)?;
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c));
        if !scheme_ok {
            return Err(UriError::NoScheme);
        }
        if rest.is_empty()
            || rest
                .bytes()
                .any(|c| c <= b' ' || c >= 0x7f || b"<>\"".contains(&c))
        {
            return Err(UriError::BadCharacters);
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            parse_sip(rest, scheme.eq_ignore_ascii_case("sips")).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(rest)
        } else {
            Ok(Uri::Other {
                scheme: scheme.to_string(),
                rest: rest.to_string(),
            })
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel { .. } => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    /// The user part with `%XX` escapes decoded (for routing by dialed number
    /// or identifying a caller), or the tel number.
    pub fn user(&self) -> Option<String> {
        match self {
            Uri::Sip(u) => u.user.as_deref().map(unescape),
            Uri::Tel { number, .. } => Some(number.clone()),
            Uri::Other { .. } => None,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

fn parse_sip(rest: &str, secure: bool) -> Result<SipUri, UriError> {
    // '@' cannot appear unescaped in params or headers, so the first one (if
    // any) ends the userinfo even when the user part contains ';' or '?'.
    let (userinfo, after) = match rest.split_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            // user-unreserved = & = + $ , ; ? /
            if u.is_empty() || !all_escaped_or(u, |c| is_unreserved(c) || b"&=+$,;?/".contains(&c))
            {
                return Err(UriError::BadUser);
            }
            if let Some(p) = p {
                if !all_escaped_or(p, |c| is_unreserved(c) || b"&=+$,".contains(&c)) {
                    return Err(UriError::BadPassword);
                }
            }
            (Some(u.to_string()), p.map(str::to_string))
        }
    };
    let (before_headers, headers) = match after.split_once('?') {
        Some((before, headers)) => (before, Some(headers)),
        None => (after, None),
    };
    // The parameters keep their leading ';'.
    let (hostport, params_str) = before_headers
        .find(';')
        .and_then(|i| before_headers.split_at_checked(i))
        .unwrap_or((before_headers, ""));
    let (host_str, port) = split_host_port(hostport)?;
    let host = Host::parse(host_str)?;
    let params = parse_uri_params(params_str)?;
    if let Some(h) = headers {
        let ok = !h.is_empty()
            && h.split('&').all(|pair| {
                let mut kv = pair.splitn(2, '=');
                let (k, v) = (kv.next().unwrap_or(""), kv.next());
                let hnv = |c: u8| is_unreserved(c) || b"[]/?:+$".contains(&c);
                !k.is_empty() && all_escaped_or(k, hnv) && v.is_some_and(|v| all_escaped_or(v, hnv))
            });
        if !ok {
            return Err(UriError::BadHeaders);
        }
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params,
        headers: headers.map(str::to_string),
    })
}

/// Splits `host[:port]`, minding IPv6 references.
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']').ok_or(UriError::BadHost)?;
        let (host, tail) = s.split_at_checked(end + 1).ok_or(UriError::BadHost)?;
        match tail.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if tail.is_empty() => (host, None),
            None => return Err(UriError::BadHost),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(UriError::BadPort);
            }
            Some(p.parse::<u16>().map_err(|_| UriError::BadPort)?)
        }
    };
    if host.is_empty() {
        return Err(UriError::BadHost);
    }
    Ok((host, port))
}

fn parse_uri_params(s: &str) -> Result<Vec<Param>, UriError> {
    let mut params = Vec::new();
    if s.is_empty() {
        return Ok(params);
    }
    // Parameters follow the host (or a tel: number) after a ';'; anything
    // else there (`tel:123/a=b`) is not a parameter list.
    let list = s.strip_prefix(';').ok_or(UriError::BadParam)?;
    for p in list.split(';') {
        let (name, value) = match p.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (p, None),
        };
        let paramchar = |c: u8| is_unreserved(c) || b"[]/:&+$".contains(&c);
        if name.is_empty() || !all_escaped_or(name, paramchar) {
            return Err(UriError::BadParam);
        }
        if let Some(v) = value {
            if v.is_empty() || !all_escaped_or(v, paramchar) {
                return Err(UriError::BadParam);
            }
        }
        params.push(Param {
            name: name.to_string(),
            value: value.map(str::to_string),
        });
    }
    Ok(params)
}

fn parse_tel(rest: &str) -> Result<Uri, UriError> {
    let mut c = Cursor::new(rest);
    let number = c.take_while(|b| b.is_ascii_hexdigit() || b"*#+-.()pPwW".contains(&b));
    if number.is_empty() || !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err(UriError::BadUser);
    }
    let params = parse_uri_params(c.rest())?;
    Ok(Uri::Tel {
        number: number.to_string(),
        params,
    })
}

/// Decodes `%XX` escapes; malformed escapes are kept as written.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn plain_sip_uri() {
        let u = sip("sip:1000@127.0.0.1:5070;transport=udp");
        assert_eq!(u.user.as_deref(), Some("1000"));
        assert_eq!(u.host, Host::V4(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("udp"));
    }

    #[test]
    fn semicolon_in_user_part() {
        // RFC 4475 semiuri
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
    }

    #[test]
    fn unusual_user_and_password() {
        // RFC 4475 intmeth Request-URI
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
    }

    #[test]
    fn escaped_user_decodes() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user().as_deref(), Some("sips:user@example.com"));
    }

    #[test]
    fn ipv6_host_and_port() {
        let u = sip("sip:alice@[2001:db8::10]:5070");
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert!(Uri::parse("sip:alice@[2001:db8::10").is_err());
    }

    #[test]
    fn tel_and_other_schemes() {
        assert_eq!(
            Uri::parse("tel:+1-201-555-0123").unwrap().user().as_deref(),
            Some("+1-201-555-0123")
        );
        let with_param = Uri::parse("tel:+12015550123;phone-context=example.com").unwrap();
        assert!(matches!(with_param, Uri::Tel { ref params, .. } if params.len() == 1));
        // Only a ';' starts the parameters; another character after the
        // number is not silently taken for one.
        for bad in ["tel:123/a=b", "tel:123xa=b", "tel:123 ;a=b"] {
            assert!(Uri::parse(bad).is_err(), "{bad} should be rejected");
        }
        let other = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(other.scheme(), "nobodyKnowsThisScheme");
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002").unwrap(),
            Uri::Other { .. }
        ));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "<sip:user@example.com>",
            "sip:",
            "sip:user@",
            "sip:user@host:99999",
            "sip:a b@c",
            "sip:us%zzer@h",
            "nocolon",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn uri_headers_parse() {
        let u = sip("sip:user@example.com?Route=%3Csip:sip.example.com%3E");
        assert_eq!(
            u.headers.as_deref(),
            Some("Route=%3Csip:sip.example.com%3E")
        );
    }
}
