//! Log lines a peer cannot forge.
//!
//! Caller IDs, user agents, Call-IDs and the like come from packets. A From
//! user of `x%0a2026-12-07T10:00:00Z WARN wrong code caller=+15550100` is
//! percent-decoded into a line break, and written raw it would start a
//! second, fake log line, which tools like fail2ban would act on (locking
//! out a victim's number or address). The text log format therefore
//! escapes every control character (and the Unicode line and paragraph
//! separators and bidirectional overrides, which some viewers treat as line
//! breaks or use to reorder text) in every field and message, so one event
//! is always one line. The JSON format needs no help: its writer escapes
//! strings.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Formats fields like tracing-subscriber's default (`message k=v k=v`,
/// strings quoted), with control characters escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapingFields;

impl<'writer> FormatFields<'writer> for EscapingFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldVisitor {
            out: writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldVisitor<'w> {
    out: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl FieldVisitor<'_> {
    fn separator(&mut self) -> fmt::Result {
        if self.first {
            self.first = false;
            Ok(())
        } else {
            self.out.write_char(' ')
        }
    }

    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Fields bridged from the `log` crate describe the call site.
        if name.starts_with("log.") {
            return;
        }
        self.result = self.separator().and_then(|()| {
            if name != "message" {
                self.out.write_str(name)?;
                self.out.write_char('=')?;
            }
            Escape(&mut self.out).write_fmt(value)
        });
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// A writer that escapes what could break a line or mislead a reader.
struct Escape<'a, W: Write>(&'a mut W);

/// Characters that are not control characters to `char::is_control` but
/// still break or reorder lines in terminals and viewers.
fn is_hazardous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl<W: Write> Write for Escape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(is_hazardous) {
            let (clean, tail) = rest.split_at(at);
            self.0.write_str(clean)?;
            let mut chars = tail.chars();
            if let Some(c) = chars.next() {
                match c {
                    '\n' => self.0.write_str("\\n")?,
                    '\r' => self.0.write_str("\\r")?,
                    '\t' => self.0.write_str("\\t")?,
                    c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
                }
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapingFields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8(bytes).unwrap_or_default()
    }

    #[test]
    fn a_line_break_in_a_field_cannot_start_a_new_line() {
        let caller = "x\n2026-12-07T10:00:00Z  WARN pinbridge: wrong code caller=+15550100";
        let out = capture(|| {
            tracing::warn!(caller = %caller, source = "198.51.100.7", "wrong code");
        });
        assert_eq!(out.matches('\n').count(), 1, "one event, one line: {out:?}");
        assert!(
            out.contains(r"caller=x\n2026-12-07T10:00:00Z  WARN"),
            "escaped, not dropped: {out:?}"
        );
        assert!(out.contains("wrong code"), "{out:?}");
        assert!(out.contains(r#"source="198.51.100.7""#), "{out:?}");
    }

    #[test]
    fn every_control_character_and_line_separator_is_escaped() {
        let nasty = "a\r\u{1b}[31mred\u{7f}\u{85}b\u{2028}c\u{202e}d\te";
        let out = capture(|| {
            tracing::info!(ua = %nasty, "m {}", nasty);
        });
        let line = out.trim_end_matches('\n');
        assert!(
            !line.chars().any(is_hazardous),
            "nothing hazardous left: {line:?}"
        );
        assert!(line.contains(r"a\r\u{1b}[31mred\u{7f}\u{85}b\u{2028}c\u{202e}d\te"));
    }

    #[test]
    fn debug_formatted_values_are_unchanged() {
        let out = capture(|| {
            tracing::info!(count = 3, reason = ?Some("x"), "plain");
        });
        assert!(out.contains(r#"plain count=3 reason=Some("x")"#), "{out:?}");
    }
}
