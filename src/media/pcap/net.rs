//! One captured frame to one UDP datagram: the link layers a capture of a
//! SIP/RTP host can carry, then IPv4 or IPv6, then UDP.
//!
//! Everything here borrows from the frame and never panics: every length
//! read from a header is checked against the bytes that were captured.
//! Checksums are not verified (captures on the sending host, loopback
//! included, carry offloaded, i.e. unfilled, checksums).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The link-layer headers this reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// BSD loopback / null (0): a 4-byte address family in the capturing
    /// host's byte order.
    Null,
    /// Ethernet (1), with any number of 802.1Q / 802.1ad VLAN tags.
    Ethernet,
    /// Raw IP (101): the frame starts with the IPv4 or IPv6 header.
    Raw,
    /// OpenBSD loopback (108): like `Null` with the family in network order.
    Loop,
    /// Linux cooked capture v1 (113), as `tcpdump -i any` wrote it.
    LinuxSll,
    /// IPv4 only (228).
    Ipv4,
    /// IPv6 only (229).
    Ipv6,
    /// Linux cooked capture v2 (276), libpcap ≥ 1.10 on `-i any`.
    LinuxSll2,
}

impl LinkType {
    /// The link type of a capture's `network` / `LinkType` field, or the
    /// code itself when it is not supported.
    pub fn from_code(code: u32) -> Result<LinkType, u32> {
        Ok(match code {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            other => return Err(other),
        })
    }
}

/// A human name for a link-type code (tcpdump.org's list, the common part),
/// for error messages.
pub fn link_type_name(code: u32) -> &'static str {
    match code {
        0 => "BSD loopback",
        1 => "Ethernet",
        6 => "IEEE 802.5 Token Ring",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP in HDLC framing",
        51 => "PPPoE",
        100 => "ATM RFC 1483",
        101 => "raw IP",
        104 => "Cisco HDLC",
        105 => "IEEE 802.11",
        107 => "Frame Relay",
        108 => "OpenBSD loopback",
        113 => "Linux cooked capture (SLL)",
        114 => "LocalTalk",
        117 => "OpenBSD pflog",
        119 => "IEEE 802.11 Prism",
        122 => "IP over Fibre Channel",
        127 => "IEEE 802.11 radiotap",
        138 => "Apple IP over IEEE 1394",
        143 => "DOCSIS",
        147..=162 => "user-defined",
        163 => "IEEE 802.11 AVS",
        187 => "Bluetooth HCI H4",
        189 => "USB (Linux)",
        192 => "PPI",
        195 => "IEEE 802.15.4",
        201 => "Bluetooth HCI H4 with pseudo-header",
        215 => "IEEE 802.15.4 without FCS",
        220 => "USB (Linux, memory-mapped)",
        227 => "SocketCAN",
        228 => "raw IPv4",
        229 => "raw IPv6",
        239 => "Netfilter log (NFLOG)",
        240 => "Netanalyzer",
        249 => "USB (USBPcap)",
        251 => "Bluetooth LE link layer",
        253 => "Linux netlink",
        263 => "IPMB",
        274 => "Nordic BLE",
        276 => "Linux cooked capture v2 (SLL2)",
        _ => "unknown",
    }
}

/// Why a frame gave no UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Skip {
    /// Not IPv4 or IPv6 (ARP, LLDP, 802.3 frames, ...).
    NotIp,
    /// IP, but not UDP (TCP, ICMP, ESP, ...).
    NotUdp,
    /// An IP fragment. `first` is the fragment at offset 0 (it holds the
    /// UDP header but not the whole datagram); fragments are not
    /// reassembled.
    Fragment { first: bool },
    /// The headers say the datagram is longer than what was captured
    /// (a snapshot length shorter than the packet).
    Truncated,
    /// A header that contradicts itself or the frame.
    Malformed,
}

/// A UDP datagram found in a frame, borrowing its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Udp<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// 802.1Q, 802.1ad and the pre-standard QinQ tag.
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88A8, 0x9100];
/// More stacked VLAN tags than this is not a real frame.
const MAX_VLAN_TAGS: usize = 8;
/// IPv6 extension headers followed before giving up.
const MAX_IPV6_EXT_HEADERS: usize = 16;

const IPPROTO_UDP: u8 = 17;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn arr4(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at + 4)?.try_into().ok()
}

fn arr16(b: &[u8], at: usize) -> Option<[u8; 16]> {
    b.get(at..at + 16)?.try_into().ok()
}

/// Decodes one captured frame of the given link type down to UDP.
pub(super) fn decode_frame(link: LinkType, frame: &[u8]) -> Result<Udp<'_>, Skip> {
    match link {
        LinkType::Ethernet => {
            let ethertype = be16(frame, 12).ok_or(Skip::Malformed)?;
            by_ethertype(ethertype, frame.get(14..).ok_or(Skip::Malformed)?)
        }
        LinkType::LinuxSll => {
            let proto = be16(frame, 14).ok_or(Skip::Malformed)?;
            by_ethertype(proto, frame.get(16..).ok_or(Skip::Malformed)?)
        }
        LinkType::LinuxSll2 => {
            let proto = be16(frame, 0).ok_or(Skip::Malformed)?;
            by_ethertype(proto, frame.get(20..).ok_or(Skip::Malformed)?)
        }
        LinkType::Null | LinkType::Loop => {
            let fam = arr4(frame, 0).ok_or(Skip::Malformed)?;
            let body = frame.get(4..).ok_or(Skip::Malformed)?;
            // The family is in the capturing host's byte order (Null) or in
            // network order (Loop); the values are small, so trying both
            // cannot confuse one for another.
            let family = |v: u32| match v {
                2 => Some(4),
                10 | 24 | 28 | 30 => Some(6), // Linux, BSDs, FreeBSD, Darwin
                _ => None,
            };
            match family(u32::from_le_bytes(fam)).or(family(u32::from_be_bytes(fam))) {
                Some(4) => ipv4(body),
                Some(_) => ipv6(body),
                None => Err(Skip::NotIp),
            }
        }
        LinkType::Raw => match frame.first().map(|b| b >> 4) {
            Some(4) => ipv4(frame),
            Some(6) => ipv6(frame),
            _ => Err(Skip::NotIp),
        },
        LinkType::Ipv4 => ipv4(frame),
        LinkType::Ipv6 => ipv6(frame),
    }
}

/// Dispatches on an Ethernet type, skipping VLAN tags first. `body` starts
/// right after the ethertype field.
fn by_ethertype(mut ethertype: u16, mut body: &[u8]) -> Result<Udp<'_>, Skip> {
    for _ in 0..MAX_VLAN_TAGS {
        if !ETHERTYPE_VLAN.contains(&ethertype) {
            break;
        }
        // Tag: 2 bytes TCI, then the inner ethertype.
        ethertype = be16(body, 2).ok_or(Skip::Malformed)?;
        body = body.get(4..).ok_or(Skip::Malformed)?;
    }
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(body),
        ETHERTYPE_IPV6 => ipv6(body),
        _ => Err(Skip::NotIp),
    }
}

fn ipv4(p: &[u8]) -> Result<Udp<'_>, Skip> {
    let &b0 = p.first().ok_or(Skip::Malformed)?;
    if b0 >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let ihl = usize::from(b0 & 0x0F) * 4;
    if ihl < 20 || p.len() < ihl {
        return Err(Skip::Malformed);
    }
    let total = usize::from(be16(p, 2).ok_or(Skip::Malformed)?);
    // Total length 0 is what TCP segmentation offload leaves in captures on
    // the sending host; take the frame as it is then.
    let end = if total == 0 { p.len() } else { total };
    if end < ihl {
        return Err(Skip::Malformed);
    }
    if end > p.len() {
        return Err(Skip::Truncated);
    }
    let frag = be16(p, 6).ok_or(Skip::Malformed)?;
    let more_fragments = frag & 0x2000 != 0;
    let offset = frag & 0x1FFF;
    if more_fragments || offset != 0 {
        return Err(Skip::Fragment { first: offset == 0 });
    }
    if *p.get(9).ok_or(Skip::Malformed)? != IPPROTO_UDP {
        return Err(Skip::NotUdp);
    }
    let src = IpAddr::V4(Ipv4Addr::from(arr4(p, 12).ok_or(Skip::Malformed)?));
    let dst = IpAddr::V4(Ipv4Addr::from(arr4(p, 16).ok_or(Skip::Malformed)?));
    // Anything after `end` is link-layer padding or an Ethernet FCS.
    udp(src, dst, p.get(ihl..end).ok_or(Skip::Malformed)?)
}

fn ipv6(p: &[u8]) -> Result<Udp<'_>, Skip> {
    let (Some(&b0), true) = (p.first(), p.len() >= 40) else {
        return Err(Skip::Malformed);
    };
    if b0 >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let payload_len = usize::from(be16(p, 4).ok_or(Skip::Malformed)?);
    let src = IpAddr::V6(Ipv6Addr::from(arr16(p, 8).ok_or(Skip::Malformed)?));
    let dst = IpAddr::V6(Ipv6Addr::from(arr16(p, 24).ok_or(Skip::Malformed)?));
    // Payload length 0 is a jumbogram (or an offloaded super-packet): the
    // UDP length field, or failing that the frame, bounds it.
    let end = if payload_len == 0 {
        p.len()
    } else {
        40 + payload_len
    };
    if end > p.len() {
        return Err(Skip::Truncated);
    }
    let mut next = *p.get(6).ok_or(Skip::Malformed)?;
    let mut rest = p.get(40..end).ok_or(Skip::Malformed)?;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_UDP => return udp(src, dst, rest),
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6:
            // (next header, length in 8-byte units not counting the first).
            0 | 43 | 60 | 135 | 139 | 140 => {
                let len = (usize::from(*rest.get(1).ok_or(Skip::Malformed)?) + 1) * 8;
                next = *rest.first().ok_or(Skip::Malformed)?;
                rest = rest.get(len..).ok_or(Skip::Malformed)?;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let fo = be16(rest, 2).ok_or(Skip::Malformed)?;
                let offset = fo >> 3;
                let more = fo & 1 != 0;
                if offset != 0 || more {
                    return Err(Skip::Fragment { first: offset == 0 });
                }
                // An "atomic" fragment (offset 0, no more): just go on.
                next = *rest.first().ok_or(Skip::Malformed)?;
                rest = rest.get(8..).ok_or(Skip::Malformed)?;
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let len = (usize::from(*rest.get(1).ok_or(Skip::Malformed)?) + 2) * 4;
                next = *rest.first().ok_or(Skip::Malformed)?;
                rest = rest.get(len..).ok_or(Skip::Malformed)?;
            }
            // No next header, ESP (encrypted), TCP, ICMPv6, anything else.
            _ => return Err(Skip::NotUdp),
        }
    }
    Err(Skip::Malformed)
}

fn udp(src: IpAddr, dst: IpAddr, seg: &[u8]) -> Result<Udp<'_>, Skip> {
    let sport = be16(seg, 0).ok_or(Skip::Malformed)?;
    let dport = be16(seg, 2).ok_or(Skip::Malformed)?;
    let len = usize::from(be16(seg, 4).ok_or(Skip::Malformed)?);
    if seg.len() < 8 {
        return Err(Skip::Malformed);
    }
    // Length 0 only occurs in IPv6 jumbograms: the IP layer bounds it.
    let end = if len == 0 { seg.len() } else { len };
    if end < 8 {
        return Err(Skip::Malformed);
    }
    if end > seg.len() {
        return Err(Skip::Truncated);
    }
    Ok(Udp {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        payload: seg.get(8..end).ok_or(Skip::Malformed)?,
    })
}

/// Frame builders for the tests of this module and of the capture reader.
#[cfg(test)]
pub(crate) mod build {
    /// An IPv4 header (no options unless given) + UDP header + payload.
    pub(crate) fn ipv4_udp(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        ipv4_udp_opts(src, sport, dst, dport, payload, &[], 0x4000)
    }

    /// As [`ipv4_udp`] with IP options (a multiple of 4 bytes) and the
    /// flags/fragment-offset field given.
    pub(crate) fn ipv4_udp_opts(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        payload: &[u8],
        options: &[u8],
        frag: u16,
    ) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let ihl = 20 + options.len();
        let total = ihl + 8 + payload.len();
        let mut p = vec![0x40 | (ihl / 4) as u8, 0];
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, 17, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(options);
        p.extend_from_slice(&udp_header(sport, dport, payload.len()));
        p.extend_from_slice(payload);
        p
    }

    /// An IPv6 header, the given extension headers (already encoded, the
    /// first one's type in `first_next`), then UDP.
    pub(crate) fn ipv6_udp(
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
        payload: &[u8],
        first_next: u8,
        ext: &[u8],
    ) -> Vec<u8> {
        let plen = ext.len() + 8 + payload.len();
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(plen as u16).to_be_bytes());
        p.push(first_next);
        p.push(64);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(ext);
        p.extend_from_slice(&udp_header(sport, dport, payload.len()));
        p.extend_from_slice(payload);
        p
    }

    pub(crate) fn udp_header(sport: u16, dport: u16, payload_len: usize) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
        h
    }

    /// Ethernet header with the given VLAN tags, then `ethertype`.
    pub(crate) fn ethernet(vlans: &[u16], ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        for &v in vlans {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    /// Linux cooked v1 header.
    pub(crate) fn sll(proto: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(&proto.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    /// Linux cooked v2 header.
    pub(crate) fn sll2(proto: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = proto.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(ip);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    fn v6(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = last;
        a
    }

    fn ok(link: LinkType, frame: &[u8]) -> Udp<'_> {
        decode_frame(link, frame).expect("a UDP datagram")
    }

    #[test]
    fn ethernet_ipv4_udp() {
        let f = ethernet(&[], 0x0800, &ipv4_udp(A, 5060, B, 5070, b"hello"));
        let u = ok(LinkType::Ethernet, &f);
        assert_eq!(u.src, "10.0.0.1:5060".parse().unwrap());
        assert_eq!(u.dst, "10.0.0.2:5070".parse().unwrap());
        assert_eq!(u.payload, b"hello");
    }

    #[test]
    fn ethernet_padding_and_fcs_are_trimmed() {
        let mut f = ethernet(&[], 0x0800, &ipv4_udp(A, 1, B, 2, b"x"));
        f.extend_from_slice(&[0; 20]); // minimum-frame padding + FCS
        assert_eq!(ok(LinkType::Ethernet, &f).payload, b"x");
    }

    #[test]
    fn vlan_tags_single_and_stacked() {
        let ip = ipv4_udp(A, 1, B, 2, b"v");
        assert_eq!(
            ok(LinkType::Ethernet, &ethernet(&[100], 0x0800, &ip)).payload,
            b"v"
        );
        assert_eq!(
            ok(LinkType::Ethernet, &ethernet(&[1, 2, 3], 0x0800, &ip)).payload,
            b"v"
        );
        // QinQ: outer 802.1ad tag (88a8, TCI 200), inner 802.1Q (8100, TCI 100).
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&[0x88, 0xA8, 0x00, 0xC8, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
        f.extend_from_slice(&ip);
        assert_eq!(ok(LinkType::Ethernet, &f).payload, b"v");
        // A tag cut off in the middle.
        assert_eq!(
            decode_frame(LinkType::Ethernet, &f[..15]),
            Err(Skip::Malformed)
        );
    }

    #[test]
    fn ipv4_with_options() {
        let ip = ipv4_udp_opts(A, 1, B, 2, b"opt", &[1, 1, 1, 0, 0x94, 4, 0, 0], 0);
        assert_eq!(ok(LinkType::Raw, &ip).payload, b"opt");
    }

    #[test]
    fn ipv4_fragments_are_skipped_and_told_apart() {
        let first = ipv4_udp_opts(A, 1, B, 2, b"frag", &[], 0x2000);
        assert_eq!(
            decode_frame(LinkType::Raw, &first),
            Err(Skip::Fragment { first: true })
        );
        let later = ipv4_udp_opts(A, 1, B, 2, b"frag", &[], 0x0010);
        assert_eq!(
            decode_frame(LinkType::Raw, &later),
            Err(Skip::Fragment { first: false })
        );
        let last = ipv4_udp_opts(A, 1, B, 2, b"frag", &[], 0x0185);
        assert_eq!(
            decode_frame(LinkType::Raw, &last),
            Err(Skip::Fragment { first: false })
        );
    }

    #[test]
    fn ipv4_not_udp_and_bad_lengths() {
        let mut tcp = ipv4_udp(A, 1, B, 2, b"....");
        tcp[9] = 6;
        assert_eq!(decode_frame(LinkType::Raw, &tcp), Err(Skip::NotUdp));
        let ip = ipv4_udp(A, 1, B, 2, b"abcdef");
        // Cut by a snapshot length: IP says more than is there.
        assert_eq!(
            decode_frame(LinkType::Raw, &ip[..ip.len() - 2]),
            Err(Skip::Truncated)
        );
        // IHL below 5.
        let mut bad = ip.clone();
        bad[0] = 0x44;
        assert_eq!(decode_frame(LinkType::Raw, &bad), Err(Skip::Malformed));
        // UDP length larger than the IP payload.
        let mut bad = ip.clone();
        bad[24..26].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(decode_frame(LinkType::Raw, &bad), Err(Skip::Truncated));
        // UDP length below the header size.
        let mut bad = ip;
        bad[24..26].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(decode_frame(LinkType::Raw, &bad), Err(Skip::Malformed));
    }

    #[test]
    fn ipv4_total_length_zero_means_offloaded() {
        let mut ip = ipv4_udp(A, 1, B, 2, b"tso");
        ip[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(ok(LinkType::Ipv4, &ip).payload, b"tso");
    }

    #[test]
    fn ipv6_plain_and_with_extension_headers() {
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"six", 17, &[]);
        let u = ok(LinkType::Ipv6, &ip);
        assert_eq!(u.src, "[fd00::1]:4000".parse().unwrap());
        assert_eq!(u.payload, b"six");

        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> UDP.
        let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"ext", 0, &ext);
        assert_eq!(ok(LinkType::Raw, &ip).payload, b"ext");

        // Atomic fragment header (offset 0, M=0) is passed through.
        let ext = [17, 0, 0, 0, 0, 0, 0, 7];
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"atomic", 44, &ext);
        assert_eq!(ok(LinkType::Raw, &ip).payload, b"atomic");

        // A real fragment is skipped.
        let ext = [17, 0, 0, 1, 0, 0, 0, 7];
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"frag", 44, &ext);
        assert_eq!(
            decode_frame(LinkType::Raw, &ip),
            Err(Skip::Fragment { first: true })
        );
        let ext = [17, 0, 0x01, 0x40, 0, 0, 0, 7];
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"frag", 44, &ext);
        assert_eq!(
            decode_frame(LinkType::Raw, &ip),
            Err(Skip::Fragment { first: false })
        );

        // Authentication header: (len + 2) * 4 bytes.
        let ext = [17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"ah", 51, &ext);
        assert_eq!(ok(LinkType::Raw, &ip).payload, b"ah");

        // ESP: cannot look inside.
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"esp-esp-", 50, &[]);
        assert_eq!(decode_frame(LinkType::Raw, &ip), Err(Skip::NotUdp));

        // An extension header longer than the packet.
        let ext = [17, 200, 0, 0, 0, 0, 0, 0];
        let ip = ipv6_udp(v6(1), 4000, v6(2), 5000, b"", 0, &ext);
        assert_eq!(decode_frame(LinkType::Raw, &ip), Err(Skip::Malformed));
    }

    #[test]
    fn cooked_and_loopback_link_types() {
        let ip4 = ipv4_udp(A, 1, B, 2, b"c4");
        let ip6 = ipv6_udp(v6(1), 1, v6(2), 2, b"c6", 17, &[]);
        assert_eq!(ok(LinkType::LinuxSll, &sll(0x0800, &ip4)).payload, b"c4");
        assert_eq!(ok(LinkType::LinuxSll, &sll(0x86DD, &ip6)).payload, b"c6");
        assert_eq!(ok(LinkType::LinuxSll2, &sll2(0x0800, &ip4)).payload, b"c4");
        assert_eq!(ok(LinkType::LinuxSll2, &sll2(0x86DD, &ip6)).payload, b"c6");
        assert_eq!(
            decode_frame(LinkType::LinuxSll, &sll(0x0806, &[0; 28])),
            Err(Skip::NotIp)
        );

        for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut f = fam.to_vec();
            f.extend_from_slice(&ip4);
            assert_eq!(ok(LinkType::Null, &f).payload, b"c4");
            assert_eq!(ok(LinkType::Loop, &f).payload, b"c4");
        }
        for af6 in [10u32, 24, 28, 30] {
            let mut f = af6.to_le_bytes().to_vec();
            f.extend_from_slice(&ip6);
            assert_eq!(ok(LinkType::Null, &f).payload, b"c6");
        }
        let mut f = 7u32.to_le_bytes().to_vec();
        f.extend_from_slice(&ip4);
        assert_eq!(decode_frame(LinkType::Null, &f), Err(Skip::NotIp));
    }

    #[test]
    fn raw_link_types() {
        let ip4 = ipv4_udp(A, 1, B, 2, b"r4");
        let ip6 = ipv6_udp(v6(1), 1, v6(2), 2, b"r6", 17, &[]);
        assert_eq!(ok(LinkType::Raw, &ip4).payload, b"r4");
        assert_eq!(ok(LinkType::Raw, &ip6).payload, b"r6");
        assert_eq!(ok(LinkType::Ipv4, &ip4).payload, b"r4");
        assert_eq!(ok(LinkType::Ipv6, &ip6).payload, b"r6");
        assert_eq!(decode_frame(LinkType::Ipv4, &ip6), Err(Skip::Malformed));
        assert_eq!(decode_frame(LinkType::Raw, &[0x50; 30]), Err(Skip::NotIp));
        assert_eq!(decode_frame(LinkType::Raw, &[]), Err(Skip::NotIp));
    }

    #[test]
    fn non_ip_ethertypes() {
        assert_eq!(
            decode_frame(LinkType::Ethernet, &ethernet(&[], 0x0806, &[0; 28])),
            Err(Skip::NotIp)
        );
        // 802.3 length field instead of a type.
        assert_eq!(
            decode_frame(LinkType::Ethernet, &ethernet(&[], 46, &[0; 46])),
            Err(Skip::NotIp)
        );
    }

    #[test]
    fn every_prefix_of_every_frame_is_safe() {
        let ip4 = ipv4_udp_opts(A, 1, B, 2, b"prefix", &[1, 1, 1, 0], 0);
        let ip6 = ipv6_udp(v6(1), 1, v6(2), 2, b"prefix", 0, &[17, 0, 1, 4, 0, 0, 0, 0]);
        let frames = [
            (LinkType::Ethernet, ethernet(&[5, 6], 0x0800, &ip4)),
            (LinkType::LinuxSll, sll(0x86DD, &ip6)),
            (LinkType::LinuxSll2, sll2(0x0800, &ip4)),
            (LinkType::Null, [&2u32.to_le_bytes()[..], &ip4].concat()),
            (LinkType::Raw, ip6.clone()),
        ];
        for (link, f) in frames {
            assert!(decode_frame(link, &f).is_ok());
            for n in 0..f.len() {
                assert!(decode_frame(link, &f[..n]).is_err(), "{link:?} prefix {n}");
            }
        }
    }

    #[test]
    fn link_type_codes_and_names() {
        for code in [0, 1, 101, 108, 113, 228, 229, 276] {
            assert!(LinkType::from_code(code).is_ok(), "{code}");
            assert_ne!(link_type_name(code), "unknown");
        }
        assert_eq!(LinkType::from_code(127), Err(127));
        assert_eq!(link_type_name(127), "IEEE 802.11 radiotap");
        assert_eq!(link_type_name(4242), "unknown");
    }
}
