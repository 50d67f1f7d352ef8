//! The ways a one-time code can reach someone.

/// How a code reaches a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// JSON POST to the operator's SMS gateway.
    Webhook,
    /// RFC 3428 MESSAGE through the SIP trunk (SMS over SIP).
    SipMessage,
    Email,
    /// A call through the trunk that reads the code out.
    Voice,
    /// The log, for development only.
    Log,
}

impl ChannelKind {
    pub fn from_name(s: &str) -> Option<ChannelKind> {
        match s {
            "webhook" | "sms" => Some(ChannelKind::Webhook),
            "sip-message" => Some(ChannelKind::SipMessage),
            "email" => Some(ChannelKind::Email),
            "voice" | "call" => Some(ChannelKind::Voice),
            "log" => Some(ChannelKind::Log),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::SipMessage => "sip-message",
            ChannelKind::Email => "email",
            ChannelKind::Voice => "voice",
            ChannelKind::Log => "log",
        }
    }
}
