//! pcapng files: sections of blocks (SHB, IDB, EPB, SPB, ...).

use super::*;

const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const IDB: u32 = 1;
const OPB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const OPT_END: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

struct Interface {
    link: Result<LinkType, u32>,
    snaplen: u32,
    /// Timestamp units per second (`None`: an `if_tsresol` too fine to
    /// represent; its packets are counted as malformed).
    units_per_sec: Option<u128>,
    offset_secs: i64,
}

impl Interface {
    fn time(&self, ts: u64) -> Option<Duration> {
        let ups = self.units_per_sec?;
        let ts = u128::from(ts);
        let secs = ts / ups;
        let nanos = (ts % ups) * 1_000_000_000 / ups;
        let secs = u64::try_from(secs).ok()?;
        let secs = if self.offset_secs >= 0 {
            secs.saturating_add(self.offset_secs.unsigned_abs())
        } else {
            secs.saturating_sub(self.offset_secs.unsigned_abs())
        };
        // nanos < 1e9 by construction.
        Some(Duration::new(secs, u32::try_from(nanos).ok()?))
    }
}

pub(super) fn read(file: &[u8]) -> Result<Capture<'_>, PcapError> {
    let mut sink = Sink::new();
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut order = Order { big: false };
    let mut unsupported_code: Option<u32> = None;
    let mut last_time = Duration::ZERO;
    let mut at = 0usize;
    let mut first = true;

    while at < file.len() {
        let Some(raw_type) = order.u32(file, at) else {
            sink.stats.cut_short_at = Some(at);
            break;
        };
        // The section header decides the byte order of everything up to
        // the next one, its own length included.
        let is_shb = raw_type == PCAPNG_SHB;
        if is_shb {
            let bom: Option<[u8; 4]> = file.get(at + 8..at + 12).and_then(|b| b.try_into().ok());
            let Some(bom) = bom else {
                if first {
                    return Err(PcapError::TruncatedHeader {
                        format: "pcapng",
                        needed: 28,
                        got: file.len(),
                    });
                }
                sink.stats.cut_short_at = Some(at);
                break;
            };
            order = if u32::from_le_bytes(bom) == BYTE_ORDER_MAGIC {
                Order { big: false }
            } else if u32::from_be_bytes(bom) == BYTE_ORDER_MAGIC {
                Order { big: true }
            } else if first {
                return Err(PcapError::BadByteOrderMagic(bom));
            } else {
                sink.stats.cut_short_at = Some(at);
                break;
            };
        } else if first {
            // Unreachable through read_capture (it checked the magic).
            return Err(PcapError::NotACapture(raw_type.to_le_bytes()));
        }
        let Some(len) = order.u32(file, at + 4) else {
            sink.stats.cut_short_at = Some(at);
            break;
        };
        let ulen = len as usize;
        let valid = ulen >= 12
            && ulen % 4 == 0
            && at.checked_add(ulen).is_some_and(|end| end <= file.len())
            && order.u32(file, at + ulen - 4) == Some(len);
        let body = if valid {
            file.get(at + 8..at + ulen - 4)
        } else {
            None
        };
        let Some(body) = body else {
            if first {
                if file.len() < 28 {
                    return Err(PcapError::TruncatedHeader {
                        format: "pcapng",
                        needed: 28,
                        got: file.len(),
                    });
                }
                return Err(PcapError::BadSectionHeader(len));
            }
            sink.stats.cut_short_at = Some(at);
            break;
        };
        let block_type = order.u32(file, at).unwrap_or(0);
        match block_type {
            PCAPNG_SHB => {
                let major = order.u16(body, 4).unwrap_or(0);
                let minor = order.u16(body, 6).unwrap_or(0);
                if major != 1 {
                    if first {
                        return Err(PcapError::UnsupportedVersion {
                            format: "pcapng",
                            major,
                            minor,
                        });
                    }
                    // A later section we cannot read: stop there.
                    sink.stats.cut_short_at = Some(at);
                    break;
                }
                if body.len() < 16 {
                    if first {
                        return Err(PcapError::BadSectionHeader(len));
                    }
                    sink.stats.cut_short_at = Some(at);
                    break;
                }
                interfaces.clear();
            }
            IDB => match interface(order, body) {
                Some(i) => {
                    if let Err(code) = i.link {
                        unsupported_code.get_or_insert(code);
                    }
                    interfaces.push(i);
                }
                // A corrupt interface block still takes its id, so that
                // later ids keep pointing at the right interfaces.
                None => interfaces.push(Interface {
                    link: Err(u32::MAX),
                    snaplen: 0,
                    units_per_sec: None,
                    offset_secs: 0,
                }),
            },
            EPB | OPB => packet_block(
                &mut sink,
                &interfaces,
                order,
                body,
                block_type,
                &mut last_time,
            ),
            SPB => simple_packet_block(&mut sink, &interfaces, order, body, last_time),
            // Name resolution, interface statistics, custom, decryption
            // secrets, systemd journal, ...: nothing for us.
            _ => {}
        }
        first = false;
        at += ulen;
    }

    // Nothing could be decoded because of the link type: say so, rather
    // than answer with an empty capture.
    let decoded = sink.stats.packets - sink.stats.unsupported_link;
    if decoded == 0 {
        if let Some(code) = unsupported_code.filter(|&c| c != u32::MAX) {
            return Err(PcapError::UnsupportedLinkType { code });
        }
    }
    Ok(Capture {
        format: CaptureFormat::Pcapng,
        datagrams: sink.datagrams,
        stats: sink.stats,
    })
}

/// An Enhanced (or obsolete) Packet Block: interface id, timestamp,
/// captured and original lengths, then the frame.
fn packet_block<'a>(
    sink: &mut Sink<'a>,
    interfaces: &[Interface],
    order: Order,
    body: &'a [u8],
    block_type: u32,
    last_time: &mut Duration,
) {
    let (id, ts_at) = if block_type == EPB {
        (order.u32(body, 0).map(|v| v as usize), 4)
    } else {
        (order.u16(body, 0).map(usize::from), 4)
    };
    let ts_hi = order.u32(body, ts_at);
    let ts_lo = order.u32(body, ts_at + 4);
    let caplen = order.u32(body, ts_at + 8).map(|v| v as usize);
    let orig = order.u32(body, ts_at + 12).map(|v| v as usize);
    let data_at = ts_at + 16;
    let (Some(id), Some(hi), Some(lo), Some(caplen), Some(orig)) = (id, ts_hi, ts_lo, caplen, orig)
    else {
        sink.stats.packets += 1;
        sink.stats.malformed += 1;
        return;
    };
    let frame = body.get(data_at..data_at.saturating_add(caplen));
    match (interfaces.get(id), frame) {
        (Some(iface), Some(frame)) => {
            let ts = (u64::from(hi) << 32) | u64::from(lo);
            match (iface.link, iface.time(ts)) {
                (Ok(link), Some(time)) => {
                    *last_time = time;
                    sink.frame(link, time, frame, orig);
                }
                (Ok(_), None) => {
                    sink.stats.packets += 1;
                    sink.stats.malformed += 1;
                }
                (Err(_), _) => sink.unsupported(),
            }
        }
        (None, _) => sink.unsupported(),
        (Some(_), None) => {
            sink.stats.packets += 1;
            sink.stats.malformed += 1;
        }
    }
}

/// A Simple Packet Block: interface 0, no time; the captured length is
/// what the block holds, bounded by the original length and the snaplen.
fn simple_packet_block<'a>(
    sink: &mut Sink<'a>,
    interfaces: &[Interface],
    order: Order,
    body: &'a [u8],
    last_time: Duration,
) {
    match (interfaces.first(), order.u32(body, 0)) {
        (Some(iface), Some(orig)) => match iface.link {
            Ok(link) => {
                let data = body.get(4..).unwrap_or_default();
                let mut caplen = data.len().min(orig as usize);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                sink.stats.untimed += 1;
                sink.frame(
                    link,
                    last_time,
                    data.get(..caplen).unwrap_or_default(),
                    orig as usize,
                );
            }
            Err(_) => sink.unsupported(),
        },
        (None, _) => sink.unsupported(),
        (Some(_), None) => {
            sink.stats.packets += 1;
            sink.stats.malformed += 1;
        }
    }
}

/// Parses an Interface Description Block body; `None` if it is too short.
fn interface(order: Order, body: &[u8]) -> Option<Interface> {
    let code = u32::from(order.u16(body, 0)?);
    let snaplen = order.u32(body, 4)?;
    let mut iface = Interface {
        link: LinkType::from_code(code),
        snaplen,
        units_per_sec: Some(1_000_000),
        offset_secs: 0,
    };
    let mut at = 8;
    // Options: (code, length, value padded to 4 bytes)*, end of options.
    while let (Some(opt), Some(olen)) = (order.u16(body, at), order.u16(body, at + 2)) {
        let olen = usize::from(olen);
        let Some(value) = body.get(at + 4..at + 4 + olen) else {
            break;
        };
        match (opt, value) {
            (OPT_END, _) => break,
            (IF_TSRESOL, &[r]) => {
                let exp = u32::from(r & 0x7F);
                iface.units_per_sec = if r & 0x80 != 0 {
                    2u128.checked_pow(exp)
                } else {
                    10u128.checked_pow(exp)
                };
            }
            (IF_TSOFFSET, _) if olen == 8 => {
                iface.offset_secs = order.u64(value, 0).map(|v| v as i64).unwrap_or(0);
            }
            _ => {}
        }
        at += 4 + olen.div_ceil(4) * 4;
    }
    Some(iface)
}
