//! Offer/answer (RFC 3264): which audio line, codec, telephone-event,
//! packet time, address and direction a call uses, from an offer we answer
//! or from the answer to our offer. The SDP text itself is written by
//! `write.rs`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::parse::parse_u16;
use super::write;
use super::{
    Direction, MediaDescription, SdpSession, SessionDescription, DEFAULT_PTIME_MS,
    SUPPORTED_PTIMES_MS, TELEPHONE_EVENT_PT,
};
use crate::media::g711::Codec;
use crate::media::rtp::{ReceiveParams, SessionParams};

/// Most items an error message lists (formats, media types, protocols).
const LISTED_ITEMS: usize = 12;

/// What we bring to a negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address our RTP socket is reachable at (goes in `c=` and `o=`).
    /// Must be concrete: `0.0.0.0` would tell the peer not to send to us
    /// (RFC 3264 §8.4).
    pub addr: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// Codecs we accept, in our order of preference. Must not be empty.
    pub codecs: Vec<Codec>,
    /// Packet time we send when the peer has no preference (normally 20).
    pub ptime_ms: u32,
}

/// The outcome of a negotiation: everything the call task needs to send and
/// receive audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// The codec both sides use.
    pub codec: Codec,
    /// The payload type to put in RTP we send (the peer's number for it).
    pub codec_pt: u8,
    /// The peer's payload type for `telephone-event/8000`, if both sides
    /// have it. Without it DTMF can still come in-band or by SIP INFO.
    pub telephone_event_pt: Option<u8>,
    /// Where to send RTP. `None` for port 0, the hold address
    /// (`c=IN IP4 0.0.0.0`) and unresolved host names: "no address yet".
    pub remote_rtp: Option<SocketAddr>,
    /// Packet duration we send: the peer's `a=ptime` if we support it and it
    /// is within its `a=maxptime`, else our default.
    pub ptime_ms: u32,
    /// What we may do. An offer `sendonly` makes us `recvonly` (we must not
    /// send); `c=0.0.0.0` counts as the peer not receiving.
    pub local_direction: Direction,
}

impl NegotiatedMedia {
    /// What the leg's RTP session needs of it.
    pub fn session_params(&self) -> SessionParams {
        SessionParams {
            receive: ReceiveParams {
                codec: self.codec,
                codec_pt: self.codec_pt,
                telephone_event_pt: self.telephone_event_pt,
                remote_rtp: self.remote_rtp,
            },
            ptime_ms: self.ptime_ms,
            we_send: self.local_direction.sends(),
            we_receive: self.local_direction.receives(),
        }
    }
}

/// Why no audio could be agreed on. The SIP layer answers an offer that
/// fails with `488 Not Acceptable Here`, using the text as the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no audio stream: offered {}", join_or(.offered, "no media"))]
    NoAudio { offered: Vec<String> },
    #[error("every audio stream is disabled (port 0)")]
    AudioDisabled,
    #[error("audio only over {}; we support RTP/AVP and RTP/AVPF (no SRTP)", join_or(.offered, "nothing"))]
    UnsupportedTransport { offered: Vec<String> },
    #[error("no common codec: offered {}; we accept {}", join_or(.offered, "no formats"), codec_list(.accepted))]
    NoCommonCodec {
        offered: Vec<String>,
        accepted: Vec<Codec>,
    },
    #[error("the audio stream has no connection address (no `c=` at media or session level)")]
    MissingConnection,
    #[error("the answer rejected our audio stream (port 0)")]
    AudioRejected,
    #[error("the answer chose {}, which we did not offer; we offered {}", join_or(.answered, "no formats"), codec_list(.offered))]
    AnswerCodecNotOffered {
        answered: Vec<String>,
        offered: Vec<Codec>,
    },
    #[error("the answer moved telephone-event from payload type {offered} to {answered}")]
    TelephoneEventPtChanged { offered: u8, answered: u8 },
}

fn join_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

fn codec_list(codecs: &[Codec]) -> String {
    if codecs.is_empty() {
        return "nothing".to_owned();
    }
    let names: Vec<&str> = codecs.iter().map(|c| c.encoding_name()).collect();
    names.join(", ")
}

/// A set of RFC 4733 event codes 0..=31 (we only ever use 0..=16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EventSet(u32);

impl EventSet {
    /// DTMF 0-9, *, #, A-D (0..=15) and flash (16): what we understand.
    pub(super) const OURS: EventSet = EventSet(0x1_ffff);
    /// RFC 4733 §2.4.1: without an `fmtp`, 0-15 are assumed.
    const DEFAULT: EventSet = EventSet(0xffff);

    /// The events of an `a=fmtp` for telephone-event (`0-15`, `0-11,16`).
    /// Anything unreadable counts as absent, i.e. the RFC default.
    fn from_fmtp(params: Option<&str>) -> EventSet {
        params
            .and_then(|p| {
                p.split(',')
                    .map(parse_event_range)
                    .sum::<Option<EventSet>>()
            })
            .unwrap_or(EventSet::DEFAULT)
    }

    fn intersect(self, other: EventSet) -> EventSet {
        EventSet(self.0 & other.0)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::iter::Sum<EventSet> for EventSet {
    fn sum<I: Iterator<Item = EventSet>>(iter: I) -> EventSet {
        EventSet(iter.fold(0, |acc, set| acc | set.0))
    }
}

/// `N` or `N-M` with 0 <= N <= M <= 255; codes above 31 are dropped.
fn parse_event_range(item: &str) -> Option<EventSet> {
    let item = item.trim();
    let (low, high) = item.split_once('-').unwrap_or((item, item));
    let low = u8::try_from(parse_u16(low.trim())?).ok()?;
    let high = u8::try_from(parse_u16(high.trim())?).ok()?;
    if low > high {
        return None;
    }
    let bits = (low..=high.min(31)).fold(0u32, |acc, code| acc | (1 << code));
    Some(EventSet(bits))
}

/// Ranges, as in `0-11,16`.
impl fmt::Display for EventSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for code in (0..32u32).filter(|&code| self.0 & (1 << code) != 0) {
            match runs.last_mut() {
                Some((_, end)) if end.checked_add(1) == Some(code) => *end = code,
                _ => runs.push((code, code)),
            }
        }
        for (index, (start, end)) in runs.into_iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

/// The choice made for one audio line.
pub(super) struct Selection {
    pub(super) codec: Codec,
    pub(super) codec_pt: u8,
    pub(super) telephone_event: Option<(u8, EventSet)>,
}

/// The first codec in OUR preference order that `media` carries, with the
/// peer's payload type for it. Our order rather than the offerer's, as
/// Asterisk does with its `allow=` list by default: the operator decides
/// (for example PCMA first on a European trunk) and the result is the same
/// whichever phone calls.
fn select_codec(media: &MediaDescription, preference: &[Codec]) -> Option<(Codec, u8)> {
    preference.iter().find_map(|&wanted| {
        media
            .payload_types()
            .find(|&pt| media.codec(pt) == Some(wanted))
            .map(|pt| (wanted, pt))
    })
}

/// The offer's first `telephone-event/8000` that carries DTMF, with the
/// events both sides understand.
fn select_telephone_event(media: &MediaDescription) -> Option<(u8, EventSet)> {
    media.telephone_event_pts().find_map(|pt| {
        let events = EventSet::from_fmtp(media.fmtp(pt)).intersect(EventSet::OURS);
        (!events.is_empty()).then_some((pt, events))
    })
}

/// The packet time we send: the peer's `a=ptime` when we can do it within
/// its `a=maxptime`; otherwise our default if that fits, else the longest
/// supported time that fits (10 ms if none does).
fn choose_ptime(media: &MediaDescription, default_ms: u32) -> u32 {
    let fits = |ms: u32| media.maxptime_ms.is_none_or(|max| ms <= max);
    if let Some(ms) = media.ptime_ms {
        if SUPPORTED_PTIMES_MS.contains(&ms) && fits(ms) {
            return ms;
        }
    }
    if fits(default_ms) {
        return default_ms;
    }
    SUPPORTED_PTIMES_MS
        .into_iter()
        .rev()
        .find(|&ms| fits(ms))
        .unwrap_or(10)
}

/// Pick the audio line to accept: the first audio line that is enabled,
/// uses a supported transport and has a codec in common.
fn select_audio<'a>(
    offer: &'a SessionDescription,
    preference: &[Codec],
) -> Result<(usize, &'a MediaDescription, Selection), NegotiationError> {
    let candidates = offer
        .media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_audio() && m.port != 0 && m.has_supported_transport());
    for (index, media) in candidates {
        if let Some((codec, codec_pt)) = select_codec(media, preference) {
            let telephone_event = select_telephone_event(media);
            return Ok((
                index,
                media,
                Selection {
                    codec,
                    codec_pt,
                    telephone_event,
                },
            ));
        }
    }
    Err(explain_no_audio(offer, preference))
}

/// The most specific reason why [`select_audio`] found nothing.
fn explain_no_audio(offer: &SessionDescription, preference: &[Codec]) -> NegotiationError {
    let audio: Vec<&MediaDescription> = offer.media.iter().filter(|m| m.is_audio()).collect();
    let enabled: Vec<&MediaDescription> = audio.iter().copied().filter(|m| m.port != 0).collect();
    let usable: Vec<&MediaDescription> = enabled
        .iter()
        .copied()
        .filter(|m| m.has_supported_transport())
        .collect();
    if audio.is_empty() {
        NegotiationError::NoAudio {
            offered: unique(offer.media.iter().map(|m| m.media.clone())),
        }
    } else if enabled.is_empty() {
        NegotiationError::AudioDisabled
    } else if usable.is_empty() {
        NegotiationError::UnsupportedTransport {
            offered: unique(enabled.iter().map(|m| m.proto.clone())),
        }
    } else {
        NegotiationError::NoCommonCodec {
            offered: unique(
                usable
                    .iter()
                    .flat_map(|m| m.formats.iter().map(|f| m.describe_format(f))),
            ),
            accepted: preference.to_vec(),
        }
    }
}

/// The distinct items, in order, at most [`LISTED_ITEMS`] of them (then
/// `...`): for error messages, which must stay short whatever the peer sent.
fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if out.contains(&item) {
            continue;
        }
        if out.len() == LISTED_ITEMS {
            out.push("...".to_owned());
            break;
        }
        out.push(item);
    }
    out
}

/// Where to send and what we may do, from the peer's view of the line.
///
/// `c=0.0.0.0` takes away the peer's receiving (RFC 3264 §8.4: send neither
/// RTP nor RTCP there); a host name leaves the direction alone, the shell
/// decides whether it resolves it.
fn remote_side(
    sdp: &SessionDescription,
    media: &MediaDescription,
) -> Result<(Option<SocketAddr>, Direction), NegotiationError> {
    let address = sdp
        .connection_for(media)
        .ok_or(NegotiationError::MissingConnection)?;
    let mut peer = sdp.direction_for(media);
    if address.is_hold() {
        peer = Direction::from_flags(peer.sends(), false);
    }
    Ok((address.rtp_destination(media.port), peer.reverse()))
}

/// Answer an offer (RFC 3264 §6).
///
/// The first audio line with a usable transport (`RTP/AVP`, `RTP/AVPF`) and
/// a codec in common is accepted; the answer lists only the chosen codec
/// and, if offered, `telephone-event/8000` at the offer's number with the
/// events both sides know. Every other line is rejected with port 0, as the
/// answer must mirror the offer line for line.
///
/// The direction attribute is the offer's reversed. A `c=0.0.0.0` offer only
/// changes what we do ([`NegotiatedMedia::local_direction`]), not what we
/// announce: we remain willing to send once the peer gives an address.
///
/// On error nothing changes in `session`.
pub fn answer(
    session: &mut SdpSession,
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<(NegotiatedMedia, String), NegotiationError> {
    let (accepted, media, selection) = select_audio(offer, &local.codecs)?;
    let (remote_rtp, local_direction) = remote_side(offer, media)?;
    let negotiated = NegotiatedMedia {
        codec: selection.codec,
        codec_pt: selection.codec_pt,
        telephone_event_pt: selection.telephone_event.map(|(pt, _)| pt),
        remote_rtp,
        ptime_ms: choose_ptime(media, local.ptime_ms),
        local_direction,
    };
    let announced = offer.direction_for(media).reverse();
    let section = write::answer_media(
        offer,
        accepted,
        local,
        &selection,
        negotiated.ptime_ms,
        announced,
    );
    let text = session.render(local.addr, section);
    Ok((negotiated, text))
}

/// Read the answer to an offer made with [`offer`](super::offer).
///
/// The answer must accept our audio line and choose one of the codecs we
/// offered (its first such format wins, RFC 3264 §7); its telephone-event,
/// if any, must keep the number we offered. Packet time is the answer's
/// `a=ptime` if we support it, else [`DEFAULT_PTIME_MS`].
pub fn accept_answer(
    our_offer_codecs: &[Codec],
    answer: &SessionDescription,
) -> Result<NegotiatedMedia, NegotiationError> {
    let media =
        answer
            .media
            .iter()
            .find(|m| m.is_audio())
            .ok_or_else(|| NegotiationError::NoAudio {
                offered: unique(answer.media.iter().map(|m| m.media.clone())),
            })?;
    if media.port == 0 {
        return Err(NegotiationError::AudioRejected);
    }
    if !media.has_supported_transport() {
        return Err(NegotiationError::UnsupportedTransport {
            offered: vec![media.proto.clone()],
        });
    }
    let (codec, codec_pt) = media
        .payload_types()
        .find_map(|pt| {
            media
                .codec(pt)
                .filter(|c| our_offer_codecs.contains(c))
                .map(|c| (c, pt))
        })
        .ok_or_else(|| NegotiationError::AnswerCodecNotOffered {
            answered: unique(media.formats.iter().map(|f| media.describe_format(f))),
            offered: our_offer_codecs.to_vec(),
        })?;
    let telephone_event_pt = media.telephone_event_pts().next();
    if let Some(answered) = telephone_event_pt.filter(|&pt| pt != TELEPHONE_EVENT_PT) {
        return Err(NegotiationError::TelephoneEventPtChanged {
            offered: TELEPHONE_EVENT_PT,
            answered,
        });
    }
    let (remote_rtp, local_direction) = remote_side(answer, media)?;
    Ok(NegotiatedMedia {
        codec,
        codec_pt,
        telephone_event_pt,
        remote_rtp,
        ptime_ms: choose_ptime(media, DEFAULT_PTIME_MS),
        local_direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::test_support::*;
    use crate::sip::sdp::{offer, parse, ConnectionAddress, RtpMap};
    use std::net::{Ipv4Addr, Ipv6Addr};

    // --- real-world offers -----------------------------------------------

    #[test]
    fn baresip_offer_mirrors_its_event_range() {
        let offer = parse(&baresip_offer()).unwrap();
        assert_eq!(offer.media[0].rtcp_port, Some(18101));
        assert!(!offer.media[0].rtcp_mux);
        let (media, text) = negotiate_ok(&baresip_offer());
        assert_eq!(media.codec, Codec::Pcmu);
        assert_eq!(media.telephone_event_pt, Some(101));
        assert_eq!(media.remote_rtp, v4(127, 0, 0, 1, 18100));
        // The event range is mirrored: baresip does not send flash.
        assert!(text.contains("a=fmtp:101 0-15\r\n"), "{text}");
    }

    #[test]
    fn twinkle_offer_uses_our_preference_order() {
        let (media, text) = negotiate_ok(&twinkle_offer());
        assert_eq!((media.codec, media.codec_pt), (Codec::Pcmu, 0));
        assert!(text.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{text}");
        // No direction attribute in the offer means sendrecv.
        assert_eq!(media.local_direction, Direction::SendRecv);
        assert!(text.contains("a=sendrecv\r\n"));

        let offer = parse(&twinkle_offer()).unwrap();
        let pcma_first = LocalMedia {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            ..local()
        };
        let (media, _) = answer(&mut SdpSession::new(1), &offer, &pcma_first).unwrap();
        assert_eq!((media.codec, media.codec_pt), (Codec::Pcma, 8));
    }

    #[test]
    fn asterisk_offer_with_many_codecs() {
        let offer = parse(&asterisk_offer()).unwrap();
        assert_eq!(offer.session_name.as_deref(), Some("Asterisk"));
        assert_eq!(offer.media[0].maxptime_ms, Some(150));
        assert_eq!(
            offer.media[0].rtpmap(111),
            Some(&RtpMap {
                payload_type: 111,
                encoding: "opus".into(),
                clock_rate: 48000,
                channels: Some(2),
            })
        );
        let (media, text) = negotiate_ok(&asterisk_offer());
        assert_eq!((media.codec, media.codec_pt), (Codec::Pcmu, 0));
        assert_eq!(media.telephone_event_pt, Some(101));
        assert_eq!(media.remote_rtp, v4(192, 0, 2, 10, 10000));
        // Only the chosen codec and telephone-event are answered.
        assert!(text.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{text}");
        assert!(!text.contains("GSM") && !text.contains("G722") && !text.contains("opus"));
    }

    #[test]
    fn freeswitch_dynamic_pcmu_and_two_telephone_events() {
        let offer = parse(&freeswitch_offer()).unwrap();
        assert_eq!(offer.media[0].rtcp_port, Some(24001));
        assert_eq!(
            offer.media[0].telephone_event_pts().collect::<Vec<_>>(),
            [101],
            "telephone-event/48000 is not usable"
        );
        let (media, text) = negotiate_ok(&freeswitch_offer());
        assert_eq!((media.codec, media.codec_pt), (Codec::Pcmu, 98));
        assert_eq!(media.telephone_event_pt, Some(101));
        assert!(text.contains("m=audio 40000 RTP/AVP 98 101\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:98 PCMU/8000\r\n"), "{text}");
        assert!(!text.contains("48000"));
    }

    #[test]
    fn telephone_event_at_other_clock_only_is_dropped() {
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 0 96",
            &["a=rtpmap:96 telephone-event/48000", "a=fmtp:96 0-16"],
        );
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.telephone_event_pt, None);
        assert!(text.contains("m=audio 40000 RTP/AVP 0\r\n"), "{text}");
        assert!(!text.contains("telephone-event"));
    }

    #[test]
    fn dynamic_pcma_mapping_is_found() {
        let body = simple_offer("m=audio 5000 RTP/AVP 18 100", &["a=rtpmap:100 pcma/8000"]);
        let (media, _) = negotiate_ok(&body);
        assert_eq!((media.codec, media.codec_pt), (Codec::Pcma, 100));
    }

    #[test]
    fn rtpmap_overrides_the_static_table() {
        // A (broken) peer re-maps 0; we believe its rtpmap, not RFC 3551.
        let body = simple_offer("m=audio 5000 RTP/AVP 0 8", &["a=rtpmap:0 G729/8000"]);
        let (media, _) = negotiate_ok(&body);
        assert_eq!((media.codec, media.codec_pt), (Codec::Pcma, 8));
    }

    #[test]
    fn pcmu_at_another_clock_rate_or_stereo_is_not_pcmu() {
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 96 97",
            &["a=rtpmap:96 PCMU/16000", "a=rtpmap:97 PCMU/8000/2"],
        );
        assert!(matches!(
            negotiate_err(&body),
            NegotiationError::NoCommonCodec { .. }
        ));
    }

    #[test]
    fn same_codec_twice_takes_the_first_in_offer_order() {
        let body = simple_offer("m=audio 5000 RTP/AVP 96 0", &["a=rtpmap:96 PCMU/8000"]);
        let (media, _) = negotiate_ok(&body);
        assert_eq!(media.codec_pt, 96);
    }

    #[test]
    fn rfc4475_sdp01_body() {
        // RFC 4475 torture test body: an rtpmap without clock rate.
        let body = sdp(&[
            "v=0",
            "o=mhandley 29739 7272939 IN IP4 192.0.2.5",
            "s=-",
            "c=IN IP4 192.0.2.5",
            "t=0 0",
            "m=audio 49217 RTP/AVP 0 12",
            "m=video 3227 RTP/AVP 31",
            "a=rtpmap:31 LPC",
        ]);
        let offer = parse(&body).unwrap();
        assert_eq!(offer.media.len(), 2);
        assert!(offer.media[1].rtpmaps.is_empty());
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.codec, Codec::Pcmu);
        assert_eq!(media.telephone_event_pt, None);
        assert!(text.ends_with("m=video 0 RTP/AVP 31\r\n"), "{text}");
    }

    // --- connection addresses --------------------------------------------

    #[test]
    fn connection_only_at_media_level() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.5",
            "s=-",
            "t=0 0",
            "m=audio 5000 RTP/AVP 0",
            "c=IN IP4 203.0.113.77",
        ]);
        let offer = parse(&body).unwrap();
        assert_eq!(offer.connection, None);
        assert_eq!(negotiate_ok(&body).0.remote_rtp, v4(203, 0, 113, 77, 5000));
    }

    #[test]
    fn connection_only_at_session_level() {
        let body = simple_offer("m=audio 5000 RTP/AVP 0", &[]);
        let offer = parse(&body).unwrap();
        assert_eq!(offer.media[0].connection, None);
        assert_eq!(negotiate_ok(&body).0.remote_rtp, v4(203, 0, 113, 5, 5000));
    }

    #[test]
    fn media_connection_overrides_session_connection() {
        let body = simple_offer("m=audio 5000 RTP/AVP 0", &["c=IN IP4 198.51.100.9"]);
        assert_eq!(negotiate_ok(&body).0.remote_rtp, v4(198, 51, 100, 9, 5000));
    }

    #[test]
    fn missing_connection_is_an_error() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.5",
            "s=-",
            "m=audio 5000 RTP/AVP 0",
        ]);
        assert_eq!(negotiate_err(&body), NegotiationError::MissingConnection);
    }

    #[test]
    fn ipv6_offer_and_ipv6_answer() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::5",
            "s=-",
            "c=IN IP6 2001:db8::5",
            "t=0 0",
            "m=audio 5000 RTP/AVP 8",
        ]);
        let offer = parse(&body).unwrap();
        let ip6: IpAddr = "2001:db8::5".parse().unwrap();
        let local6 = LocalMedia {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..local()
        };
        let (media, text) = answer(&mut SdpSession::new(7), &offer, &local6).unwrap();
        assert_eq!(media.remote_rtp, Some(SocketAddr::new(ip6, 5000)));
        assert_eq!(media.codec, Codec::Pcma);
        assert!(text.contains("o=pinbridge 7 1 IN IP6 ::1\r\n"), "{text}");
        assert!(text.contains("c=IN IP6 ::1\r\n"), "{text}");
    }

    #[test]
    fn host_name_connection_is_kept_unresolved() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 pbx.example.com",
            "s=-",
            "c=IN IP4 media.example.com.",
            "t=0 0",
            "m=audio 5000 RTP/AVP 0",
        ]);
        let offer = parse(&body).unwrap();
        assert_eq!(
            offer.connection,
            Some(ConnectionAddress::Host("media.example.com.".into()))
        );
        let (media, _) = negotiate_ok(&body);
        assert_eq!(media.remote_rtp, None);
        assert_eq!(media.local_direction, Direction::SendRecv);
    }

    // --- hold and direction ----------------------------------------------

    #[test]
    fn rfc2543_hold_address() {
        let body = sdp(&[
            "v=0",
            "o=- 1 2 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 5000 RTP/AVP 0",
        ]);
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.remote_rtp, None);
        assert_eq!(media.local_direction, Direction::RecvOnly);
        // We announce what we are willing to do; the address only stops us.
        assert!(text.contains("a=sendrecv\r\n"), "{text}");
    }

    #[test]
    fn hold_address_with_sendonly_lets_us_receive_only() {
        // Music on hold from a phone that also zeroes its address.
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 0",
            &["c=IN IP4 0.0.0.0", "a=sendonly"],
        );
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.local_direction, Direction::RecvOnly);
        assert!(text.contains("a=recvonly\r\n"), "{text}");
    }

    #[test]
    fn hold_address_with_recvonly_leaves_nothing_to_do() {
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 0",
            &["c=IN IP4 0.0.0.0", "a=recvonly"],
        );
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.local_direction, Direction::Inactive);
        assert!(text.contains("a=sendonly\r\n"), "{text}");
    }

    #[test]
    fn ipv6_unspecified_is_hold_too() {
        let body = simple_offer("m=audio 5000 RTP/AVP 0", &["c=IN IP6 ::"]);
        let (media, _) = negotiate_ok(&body);
        assert_eq!(media.remote_rtp, None);
        assert_eq!(media.local_direction, Direction::RecvOnly);
    }

    #[test]
    fn offered_direction_is_reversed() {
        for (offered, ours) in [
            ("a=sendrecv", Direction::SendRecv),
            ("a=sendonly", Direction::RecvOnly),
            ("a=recvonly", Direction::SendOnly),
            ("a=inactive", Direction::Inactive),
        ] {
            let body = simple_offer("m=audio 5000 RTP/AVP 0", &[offered]);
            let (media, text) = negotiate_ok(&body);
            assert_eq!(media.local_direction, ours, "{offered}");
            assert!(text.contains(&format!("a={ours}\r\n")), "{offered}: {text}");
            // A held stream still has an address: RTCP and resume need it.
            assert_eq!(media.remote_rtp, v4(203, 0, 113, 5, 5000));
        }
    }

    #[test]
    fn session_level_direction_applies_to_media_without_its_own() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "a=sendonly",
            "m=audio 5000 RTP/AVP 0",
        ]);
        let offer = parse(&body).unwrap();
        assert_eq!(offer.direction, Some(Direction::SendOnly));
        assert_eq!(offer.media[0].direction, None);
        assert_eq!(negotiate_ok(&body).0.local_direction, Direction::RecvOnly);
    }

    #[test]
    fn media_level_direction_overrides_session_level() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.5",
            "c=IN IP4 203.0.113.5",
            "a=inactive",
            "m=audio 5000 RTP/AVP 0",
            "a=sendrecv",
        ]);
        assert_eq!(negotiate_ok(&body).0.local_direction, Direction::SendRecv);
    }

    // --- several m= lines ------------------------------------------------

    #[test]
    fn video_is_rejected_with_port_zero() {
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 0 101",
            &[
                "a=rtpmap:101 telephone-event/8000",
                "m=video 5002 RTP/AVP 96 34",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 profile-level-id=42e01f",
            ],
        );
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.remote_rtp, v4(203, 0, 113, 5, 5000));
        assert!(
            text.ends_with("a=sendrecv\r\nm=video 0 RTP/AVP 96\r\n"),
            "{text}"
        );
        let parsed = parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.media.len(), 2);
        assert_eq!(parsed.media[1].port, 0);
    }

    #[test]
    fn video_first_keeps_the_order() {
        let body = simple_offer("m=video 5002 RTP/AVP 31", &["m=audio 5000 RTP/AVP 8"]);
        let (_, text) = negotiate_ok(&body);
        let parsed = parse(text.as_bytes()).unwrap();
        let kinds: Vec<(&str, u16)> = parsed
            .media
            .iter()
            .map(|m| (m.media.as_str(), m.port))
            .collect();
        assert_eq!(kinds, [("video", 0), ("audio", 40000)]);
    }

    #[test]
    fn two_audio_lines_accept_the_first() {
        let body = simple_offer("m=audio 5000 RTP/AVP 0", &["m=audio 5002 RTP/AVP 8"]);
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.remote_rtp, v4(203, 0, 113, 5, 5000));
        assert_eq!(media.codec, Codec::Pcmu);
        assert!(text.ends_with("m=audio 0 RTP/AVP 8\r\n"), "{text}");
    }

    #[test]
    fn srtp_line_is_skipped_for_a_plain_rtp_line() {
        // Best-effort SRTP as some clients offer it: SAVP first, AVP second.
        let body = simple_offer(
            "m=audio 5000 RTP/SAVP 0",
            &[
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
                "m=audio 5002 RTP/AVP 0",
            ],
        );
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.remote_rtp, v4(203, 0, 113, 5, 5002));
        assert!(
            text.contains("m=audio 0 RTP/SAVP 0\r\nm=audio 40000 RTP/AVP 0\r\n"),
            "{text}"
        );
    }

    #[test]
    fn audio_line_without_common_codec_is_skipped_for_the_next() {
        let body = simple_offer("m=audio 5000 RTP/AVP 18", &["m=audio 5002 RTP/AVP 8"]);
        let (media, text) = negotiate_ok(&body);
        assert_eq!(media.remote_rtp, v4(203, 0, 113, 5, 5002));
        assert!(text.contains("m=audio 0 RTP/AVP 18\r\n"), "{text}");
    }

    #[test]
    fn avpf_is_accepted_and_echoed() {
        let body = simple_offer("m=audio 5000 RTP/AVPF 0", &["a=rtcp-mux"]);
        let offer = parse(&body).unwrap();
        assert!(offer.media[0].rtcp_mux);
        let (_, text) = negotiate_ok(&body);
        assert!(text.contains("m=audio 40000 RTP/AVPF 0\r\n"), "{text}");
    }

    // --- refusals --------------------------------------------------------

    #[test]
    fn g729_only_offer_has_no_common_codec() {
        let body = simple_offer("m=audio 5000 RTP/AVP 18 9", &["a=rtpmap:18 G729/8000"]);
        let error = negotiate_err(&body);
        assert_eq!(
            error,
            NegotiationError::NoCommonCodec {
                offered: vec!["18 (G729)".into(), "9 (G722)".into()],
                accepted: vec![Codec::Pcmu, Codec::Pcma],
            }
        );
        assert_eq!(
            error.to_string(),
            "no common codec: offered 18 (G729), 9 (G722); we accept PCMU, PCMA"
        );
    }

    #[test]
    fn no_common_codec_names_dynamic_formats() {
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 111 101 97",
            &[
                "a=rtpmap:111 opus/48000/2",
                "a=rtpmap:101 telephone-event/8000",
            ],
        );
        assert_eq!(
            negotiate_err(&body).to_string(),
            "no common codec: offered 111 (opus/48000), 101 (telephone-event), 97; we accept PCMU, PCMA"
        );
    }

    #[test]
    fn empty_local_codec_list_accepts_nothing() {
        let offer = parse(&sipp_offer()).unwrap();
        let none = LocalMedia {
            codecs: vec![],
            ..local()
        };
        let error = answer(&mut SdpSession::new(1), &offer, &none).unwrap_err();
        assert!(error.to_string().ends_with("we accept nothing"), "{error}");
    }

    #[test]
    fn srtp_only_offer_is_refused() {
        let body = simple_offer(
            "m=audio 5000 RTP/SAVP 0 8",
            &["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj"],
        );
        let error = negotiate_err(&body);
        assert_eq!(
            error,
            NegotiationError::UnsupportedTransport {
                offered: vec!["RTP/SAVP".into()]
            }
        );
        assert_eq!(
            error.to_string(),
            "audio only over RTP/SAVP; we support RTP/AVP and RTP/AVPF (no SRTP)"
        );
    }

    #[test]
    fn webrtc_style_offer_is_refused() {
        let body = simple_offer("m=audio 9 UDP/TLS/RTP/SAVPF 111 0", &[]);
        assert!(matches!(
            negotiate_err(&body),
            NegotiationError::UnsupportedTransport { .. }
        ));
    }

    #[test]
    fn no_audio_at_all() {
        let body = simple_offer("m=image 5000 udptl t38", &["m=video 5002 RTP/AVP 31"]);
        let error = negotiate_err(&body);
        assert_eq!(error.to_string(), "no audio stream: offered image, video");
        let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", "s=-"]);
        assert_eq!(
            negotiate_err(&body).to_string(),
            "no audio stream: offered no media"
        );
    }

    #[test]
    fn disabled_audio_is_refused() {
        let body = simple_offer("m=audio 0 RTP/AVP 0", &[]);
        assert_eq!(negotiate_err(&body), NegotiationError::AudioDisabled);
    }

    #[test]
    fn refusal_does_not_touch_the_session() {
        let mut session = SdpSession::new(5);
        let good = parse(&sipp_offer()).unwrap();
        let bad = parse(&simple_offer("m=audio 5000 RTP/AVP 18", &[])).unwrap();
        let (_, first) = answer(&mut session, &good, &local()).unwrap();
        assert!(answer(&mut session, &bad, &local()).is_err());
        let (_, again) = answer(&mut session, &good, &local()).unwrap();
        assert_eq!(first, again);
    }

    #[test]
    fn error_lists_are_capped() {
        let formats: Vec<String> = (20..120).map(|n| n.to_string()).collect();
        let body = simple_offer(&format!("m=audio 5000 RTP/AVP {}", formats.join(" ")), &[]);
        let NegotiationError::NoCommonCodec { offered, .. } = negotiate_err(&body) else {
            panic!("NoCommonCodec expected")
        };
        assert_eq!(offered.len(), LISTED_ITEMS + 1);
        assert_eq!(offered.last().map(String::as_str), Some("..."));
    }

    // --- packet time and events ------------------------------------------

    fn ptime_for(extra: &[&str]) -> u32 {
        negotiate_ok(&simple_offer("m=audio 5000 RTP/AVP 0", extra))
            .0
            .ptime_ms
    }

    #[test]
    fn ptime_choice() {
        assert_eq!(ptime_for(&[]), 20);
        assert_eq!(ptime_for(&["a=ptime:30"]), 30);
        assert_eq!(ptime_for(&["a=ptime:60"]), 60);
        assert_eq!(ptime_for(&["a=ptime:10"]), 10);
        assert_eq!(ptime_for(&["a=ptime:25"]), 20, "not a size we send");
        assert_eq!(ptime_for(&["a=ptime:20.0"]), 20);
        assert_eq!(ptime_for(&["a=ptime:abc"]), 20);
        assert_eq!(
            ptime_for(&["a=ptime:40", "a=maxptime:30"]),
            20,
            "above maxptime"
        );
        assert_eq!(ptime_for(&["a=maxptime:10"]), 10, "default above maxptime");
        assert_eq!(
            ptime_for(&["a=maxptime:5"]),
            10,
            "nothing fits: smallest we do"
        );
        assert_eq!(ptime_for(&["a=ptime:30", "a=maxptime:150"]), 30);
    }

    fn events_for(fmtp: Option<&str>) -> Option<String> {
        let mut extra = vec!["a=rtpmap:101 telephone-event/8000".to_owned()];
        extra.extend(fmtp.map(|f| format!("a=fmtp:101 {f}")));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (media, text) = negotiate_ok(&simple_offer("m=audio 5000 RTP/AVP 0 101", &extra));
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("a=fmtp:101 "))
            .map(str::to_owned);
        assert_eq!(media.telephone_event_pt.is_some(), line.is_some());
        line
    }

    #[test]
    fn telephone_event_range_is_mirrored_within_what_we_know() {
        assert_eq!(events_for(Some("0-16")).as_deref(), Some("0-16"));
        assert_eq!(events_for(Some("0-15")).as_deref(), Some("0-15"));
        assert_eq!(events_for(Some("0-11,16")).as_deref(), Some("0-11,16"));
        assert_eq!(events_for(Some("0-15,32-49")).as_deref(), Some("0-15"));
        assert_eq!(events_for(Some("0-255")).as_deref(), Some("0-16"));
        assert_eq!(events_for(Some("5")).as_deref(), Some("5"));
        assert_eq!(
            events_for(None).as_deref(),
            Some("0-15"),
            "RFC 4733 default"
        );
        assert_eq!(events_for(Some("garbage")).as_deref(), Some("0-15"));
        assert_eq!(events_for(Some("9-3")).as_deref(), Some("0-15"));
        assert_eq!(events_for(Some("32-49")), None, "no DTMF in it");
    }

    // --- the answer to our offer -----------------------------------------

    #[test]
    fn our_offer_answered_by_ourselves() {
        let caller = LocalMedia {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            ..local()
        };
        let callee = LocalMedia {
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            port: 30000,
            ..local()
        };
        let sent = offer(&mut SdpSession::new(1), &caller, Direction::SendOnly);
        let (callee_media, reply) = answer(
            &mut SdpSession::new(2),
            &parse(sent.as_bytes()).unwrap(),
            &callee,
        )
        .unwrap();
        assert_eq!(callee_media.codec, Codec::Pcmu, "answerer's preference");
        assert_eq!(callee_media.local_direction, Direction::RecvOnly);
        let caller_media =
            accept_answer(&caller.codecs, &parse(reply.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            caller_media,
            NegotiatedMedia {
                codec: Codec::Pcmu,
                codec_pt: 0,
                telephone_event_pt: Some(TELEPHONE_EVENT_PT),
                remote_rtp: v4(198, 51, 100, 2, 30000),
                ptime_ms: 20,
                local_direction: Direction::SendOnly,
            }
        );
    }

    fn answer_body(m_line: &str, extra: &[&str]) -> SessionDescription {
        parse(&simple_offer(m_line, extra)).unwrap()
    }

    #[test]
    fn accept_answer_takes_the_answers_first_offered_codec() {
        let reply = answer_body("m=audio 6000 RTP/AVP 8 0", &[]);
        let media = accept_answer(&[Codec::Pcmu, Codec::Pcma], &reply).unwrap();
        assert_eq!((media.codec, media.codec_pt), (Codec::Pcma, 8));
        assert_eq!(media.telephone_event_pt, None);
        assert_eq!(media.remote_rtp, v4(203, 0, 113, 5, 6000));
    }

    #[test]
    fn accept_answer_refuses_a_codec_we_did_not_offer() {
        let reply = answer_body("m=audio 6000 RTP/AVP 8", &[]);
        let error = accept_answer(&[Codec::Pcmu], &reply).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the answer chose 8 (PCMA), which we did not offer; we offered PCMU"
        );
        let reply = answer_body("m=audio 6000 RTP/AVP 18", &[]);
        assert!(matches!(
            accept_answer(&[Codec::Pcmu], &reply),
            Err(NegotiationError::AnswerCodecNotOffered { .. })
        ));
    }

    #[test]
    fn accept_answer_checks_the_telephone_event_number() {
        let reply = answer_body(
            "m=audio 6000 RTP/AVP 0 101",
            &["a=rtpmap:101 telephone-event/8000"],
        );
        assert_eq!(
            accept_answer(&[Codec::Pcmu], &reply)
                .unwrap()
                .telephone_event_pt,
            Some(101)
        );
        let reply = answer_body(
            "m=audio 6000 RTP/AVP 0 96",
            &["a=rtpmap:96 telephone-event/8000"],
        );
        assert_eq!(
            accept_answer(&[Codec::Pcmu], &reply).unwrap_err(),
            NegotiationError::TelephoneEventPtChanged {
                offered: 101,
                answered: 96
            }
        );
    }

    #[test]
    fn accept_answer_refusals() {
        let codecs = [Codec::Pcmu];
        let rejected = answer_body("m=audio 0 RTP/AVP 0", &[]);
        assert_eq!(
            accept_answer(&codecs, &rejected).unwrap_err(),
            NegotiationError::AudioRejected
        );
        let srtp = answer_body("m=audio 6000 RTP/SAVP 0", &[]);
        assert!(matches!(
            accept_answer(&codecs, &srtp),
            Err(NegotiationError::UnsupportedTransport { .. })
        ));
        let video = answer_body("m=video 6000 RTP/AVP 31", &[]);
        assert!(matches!(
            accept_answer(&codecs, &video),
            Err(NegotiationError::NoAudio { .. })
        ));
    }

    #[test]
    fn accept_answer_direction_and_hold() {
        let reply = answer_body("m=audio 6000 RTP/AVP 0", &["a=recvonly"]);
        assert_eq!(
            accept_answer(&[Codec::Pcmu], &reply)
                .unwrap()
                .local_direction,
            Direction::SendOnly
        );
        let reply = answer_body("m=audio 6000 RTP/AVP 0", &["c=IN IP4 0.0.0.0"]);
        let media = accept_answer(&[Codec::Pcmu], &reply).unwrap();
        assert_eq!(media.local_direction, Direction::RecvOnly);
        assert_eq!(media.remote_rtp, None);
    }
}
