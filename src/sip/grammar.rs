//! Character classes and a small cursor for the RFC 3261 §25 grammar.
//!
//! Header values reach this module already unfolded (line folds replaced by
//! a single space), so "LWS" here is just a run of spaces and tabs.

/// `token` characters (RFC 3261 §25.1): alphanumerics and `-.!%*_+`'~`.
pub fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// `word` characters, used by Call-ID: token characters plus `()<>:\"/[]?{}`.
pub fn is_word_char(c: u8) -> bool {
    is_token_char(c) || b"()<>:\\\"/[]?{}".contains(&c)
}

/// `unreserved` = alphanum / mark.
pub fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c)
}

/// Is `s` a non-empty token?
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Checks that every `%` in `s` starts a two-hex-digit escape.
pub fn escapes_well_formed(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Is every character of `s` allowed by `class`, `%XX` escapes included?
pub fn all_escaped_or(s: &str, class: impl Fn(u8) -> bool) -> bool {
    escapes_well_formed(s)
        && s.bytes()
            .all(|c| c == b'%' || c.is_ascii_hexdigit() || class(c))
}

/// An unterminated quoted string or angle bracket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unbalanced;

/// A cursor over an unfolded header value.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    // The cursor only stops on ASCII bytes, so `pos` is always a character
    // boundary and the `get`s below never fall back; they only make a slip
    // an empty string instead of a panic.

    pub fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Skips spaces and tabs; returns whether any were skipped.
    pub fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `c` if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes optional whitespace, `c`, optional whitespace (`SEMI`,
    /// `COMMA`, `EQUAL`, `SLASH`, `COLON` in the grammar).
    pub fn eat_sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.eat(c) {
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Takes the longest run of characters accepted by `f`.
    pub fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// Takes a token, or `None` if no token character is next.
    pub fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token_char);
        (!t.is_empty()).then_some(t)
    }

    /// Takes a quoted-string (the cursor must be on the opening quote) and
    /// returns its content with quoted-pairs kept as written.
    pub fn quoted_string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        let b = self.s.as_bytes();
        while let Some(&c) = b.get(self.pos) {
            match c {
                b'"' => {
                    let inner = self.s.get(start..self.pos)?;
                    self.pos += 1;
                    return Some(inner);
                }
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                b'\\' => {
                    let next = *b.get(self.pos + 1)?;
                    if next == b'\r' || next == b'\n' || next > 0x7f {
                        return None;
                    }
                    self.pos += 2;
                }
                b'\r' | b'\n' => return None,
                _ => self.pos += 1,
            }
        }
        None
    }

    /// Takes characters up to (not including) any byte in `stops`, skipping
    /// over quoted strings and `<...>` so separators inside them don't count.
    pub fn take_until_unquoted(&mut self, stops: &[u8]) -> Result<&'a str, Unbalanced> {
        let start = self.pos;
        let b = self.s.as_bytes();
        let mut in_angle = false;
        while let Some(&c) = b.get(self.pos) {
            if c == b'"' && !in_angle {
                self.quoted_string().ok_or(Unbalanced)?;
                continue;
            }
            if c == b'<' {
                in_angle = true;
            } else if c == b'>' {
                in_angle = false;
            } else if !in_angle && stops.contains(&c) {
                break;
            }
            self.pos += 1;
        }
        if in_angle {
            return Err(Unbalanced);
        }
        Ok(self.s.get(start..self.pos).unwrap_or(""))
    }
}

/// Splits a header value at top-level commas (not inside quotes or `<>`),
/// trimming whitespace. Fails on an unterminated quote or angle bracket.
pub fn split_commas(value: &str) -> Result<Vec<&str>, Unbalanced> {
    let mut out = Vec::new();
    let mut c = Cursor::new(value);
    loop {
        let part = c.take_until_unquoted(b",")?;
        out.push(part.trim_matches([' ', '\t']));
        if !c.eat(b',') {
            break;
        }
    }
    Ok(out)
}

/// A generic parameter `name[=value]` as it appears after `;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

/// Parses `*( SEMI generic-param )` from the cursor. Stops at anything that
/// is not a `;` (a comma or the end). An empty parameter (`;;`) is an error.
pub fn parse_params(c: &mut Cursor<'_>) -> Result<Vec<Param>, &'static str> {
    let mut params = Vec::new();
    while c.eat_sep(b';') {
        let name = c.token().ok_or("empty or malformed parameter")?;
        let value = if c.eat_sep(b'=') {
            if c.peek() == Some(b'"') {
                let q = c
                    .quoted_string()
                    .ok_or("unterminated quoted parameter value")?;
                Some(format!("\"{q}\""))
            } else {
                // gen-value = token / host / quoted-string; hosts add `[]:`.
                let v = c.take_while(|b| is_token_char(b) || b"[]:".contains(&b));
                if v.is_empty() {
                    return Err("parameter without a value after '='");
                }
                Some(v.to_string())
            }
        } else {
            None
        };
        params.push(Param {
            name: name.to_string(),
            value,
        });
    }
    c.skip_ws();
    Ok(params)
}

/// Finds a parameter by case-insensitive name.
pub fn find_param<'p>(params: &'p [Param], name: &str) -> Option<&'p Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_commas_outside_quotes_and_angles() {
        let v = r#""Doe, John" <sip:a@b;x=1,2>;q=1 , <sip:c@d>"#;
        let parts = split_commas(v).unwrap();
        assert_eq!(
            parts,
            vec![r#""Doe, John" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>"]
        );
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(split_commas(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
    }

    #[test]
    fn params_allow_whitespace_around_separators() {
        let mut c = Cursor::new(" ;   tag    = 1918181833n ; lr");
        let p = parse_params(&mut c).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].value.as_deref(), Some("1918181833n"));
        assert_eq!(p[1].name, "lr");
        assert!(c.is_empty());
    }

    #[test]
    fn empty_params_are_rejected() {
        let mut c = Cursor::new(";;;;");
        assert!(parse_params(&mut c).is_err());
    }

    #[test]
    fn quoted_pairs_may_escape_control_characters() {
        let mut c = Cursor::new("\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" rest");
        assert!(c.quoted_string().is_some());
        assert_eq!(c.rest(), " rest");
    }

    #[test]
    fn escapes_must_have_two_hex_digits() {
        assert!(escapes_well_formed("a%20b"));
        assert!(!escapes_well_formed("%Z%45"));
        assert!(!escapes_well_formed("abc%4"));
    }
}
