//! Classic libpcap files: a 24-byte header, then records.

use super::*;

#[derive(Clone, Copy)]
pub(super) struct Magic {
    order: Order,
    nanos: bool,
    /// The "modified" pcap of Alexey Kuznetzov's patches: 8 more bytes
    /// per record header.
    modified: bool,
}

impl Magic {
    pub(super) fn from_bytes(b: [u8; 4]) -> Option<Magic> {
        let (le, be) = (u32::from_le_bytes(b), u32::from_be_bytes(b));
        let kind = |m: u32| match m {
            0xA1B2_C3D4 => Some((false, false)),
            0xA1B2_3C4D => Some((true, false)),
            0xA1B2_CD34 => Some((false, true)),
            _ => None,
        };
        let (big, (nanos, modified)) = match (kind(le), kind(be)) {
            (Some(k), _) => (false, k),
            (None, Some(k)) => (true, k),
            (None, None) => return None,
        };
        Some(Magic {
            order: Order { big },
            nanos,
            modified,
        })
    }
}

const HEADER: usize = 24;
/// Larger records are not packets but corruption (libpcap's limit for
/// D-Bus captures is 128 MiB; nothing on a network is near it).
const MAX_RECORD: usize = 256 * 1024 * 1024;

pub(super) fn read(file: &[u8], m: Magic) -> Result<Capture<'_>, PcapError> {
    if file.len() < HEADER {
        return Err(PcapError::TruncatedHeader {
            format: "pcap",
            needed: HEADER,
            got: file.len(),
        });
    }
    let o = m.order;
    let major = o.u16(file, 4).unwrap_or(0);
    let minor = o.u16(file, 6).unwrap_or(0);
    if major != 2 {
        return Err(PcapError::UnsupportedVersion {
            format: "pcap",
            major,
            minor,
        });
    }
    // The upper bits hold FCS information; the link type is the low 16.
    let code = o.u32(file, 20).unwrap_or(0) & 0xFFFF;
    let link = LinkType::from_code(code).map_err(|code| PcapError::UnsupportedLinkType { code })?;
    let rec_header = if m.modified { 24 } else { 16 };

    let mut sink = Sink::new();
    let mut at = HEADER;
    while at < file.len() {
        let fields = (
            o.u32(file, at),
            o.u32(file, at + 4),
            o.u32(file, at + 8),
            o.u32(file, at + 12),
        );
        let (Some(sec), Some(frac), Some(incl), Some(orig)) = fields else {
            sink.stats.cut_short_at = Some(at);
            break;
        };
        let incl = incl as usize;
        let body = at + rec_header;
        let Some(frame) = file
            .get(body..body.saturating_add(incl))
            .filter(|_| incl <= MAX_RECORD)
        else {
            sink.stats.cut_short_at = Some(at);
            break;
        };
        let nanos = if m.nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        let time = Duration::from_secs(u64::from(sec)) + Duration::from_nanos(nanos);
        // A record shorter than the packet (incl < orig) is decoded all
        // the same: if the UDP datagram fits in what was captured it is
        // whole, and if it does not the IP/UDP lengths say so.
        sink.frame(link, time, frame, orig as usize);
        at = body + incl;
    }
    Ok(Capture {
        format: CaptureFormat::Pcap {
            big_endian: o.big,
            nanos: m.nanos,
        },
        datagrams: sink.datagrams,
        stats: sink.stats,
    })
}
