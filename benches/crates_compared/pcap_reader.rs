//! `read_capture` built on maintained crates (pcap-file 2 for the container,
//! etherparse 0.21 for Ethernet/VLAN/SLL/IPv4/IPv6/UDP), giving the same
//! `Capture` as `pinbridge::media::pcap::read_capture`. It exists only to be
//! measured against ours (benches/crates_compared.rs and README "Design
//! notes: our code or a crate"); the program does not use it.
//!
//! What the crates do not cover is filled in here, as a user of them would
//! have to: the BSD/OpenBSD loopback and Linux SLL2 link headers, and the
//! pcapng `if_tsresol` / `if_tsoffset` timestamp units (pcap-file 2 reads
//! every Enhanced Packet Block timestamp as nanoseconds).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::err::packet::SliceError;
use etherparse::{EtherType, LenSource, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{Endianness, PcapError as CrateError, TsResolution};

use super::{Capture, CaptureFormat, CaptureStats, PcapError, UdpDatagram};

#[derive(Debug)]
enum Skip {
    NotIp,
    NotUdp,
    Fragment { first: bool },
    Truncated,
    Malformed,
}

#[derive(Clone, Copy)]
enum Link {
    Ethernet,
    Sll,
    Sll2,
    Loopback,
    Raw,
}

fn link_of(code: u32) -> Option<Link> {
    Some(match code & 0xFFFF {
        0 | 108 => Link::Loopback,
        1 => Link::Ethernet,
        101 | 228 | 229 => Link::Raw,
        113 => Link::Sll,
        276 => Link::Sll2,
        _ => return None,
    })
}

pub fn read_capture(file: &[u8]) -> Result<Capture<'_>, PcapError> {
    let magic: [u8; 4] = match file.get(..4) {
        Some(m) => [m[0], m[1], m[2], m[3]],
        None if file.is_empty() => return Err(PcapError::Empty),
        None => {
            let mut m = [0u8; 4];
            m[..file.len()].copy_from_slice(file);
            return Err(PcapError::NotACapture(m));
        }
    };
    if magic == [0x0A, 0x0D, 0x0D, 0x0A] {
        pcapng(file)
    } else {
        classic(file, magic)
    }
}

struct Sink<'a> {
    datagrams: Vec<UdpDatagram<'a>>,
    stats: CaptureStats,
}

impl<'a> Sink<'a> {
    fn frame(&mut self, link: Link, time: Duration, frame: &'a [u8], orig_len: usize) {
        self.stats.packets += 1;
        let snapped = frame.len() < orig_len;
        match decode(link, frame) {
            Ok((src, dst, payload)) => {
                self.stats.udp += 1;
                self.datagrams.push(UdpDatagram {
                    time,
                    src,
                    dst,
                    payload,
                });
            }
            Err(Skip::NotIp) => self.stats.not_ip += 1,
            Err(Skip::NotUdp) => self.stats.not_udp += 1,
            Err(Skip::Fragment { first }) => {
                self.stats.fragments += 1;
                self.stats.first_fragments += u64::from(first);
            }
            Err(Skip::Truncated) => self.stats.truncated += 1,
            Err(Skip::Malformed) if snapped => self.stats.truncated += 1,
            Err(Skip::Malformed) => self.stats.malformed += 1,
        }
    }
}

fn classic(file: &[u8], magic: [u8; 4]) -> Result<Capture<'_>, PcapError> {
    let (mut rest, parser) = match PcapParser::new(file) {
        Ok(p) => p,
        Err(CrateError::IncompleteBuffer) => {
            return Err(PcapError::TruncatedHeader {
                format: "pcap",
                needed: 24,
                got: file.len(),
            })
        }
        Err(_) => return Err(PcapError::NotACapture(magic)),
    };
    let h = parser.header();
    if h.version_major != 2 {
        return Err(PcapError::UnsupportedVersion {
            format: "pcap",
            major: h.version_major,
            minor: h.version_minor,
        });
    }
    let code = u32::from(h.datalink);
    let link = link_of(code).ok_or(PcapError::UnsupportedLinkType {
        code: code & 0xFFFF,
    })?;
    let mut sink = Sink {
        datagrams: Vec::new(),
        stats: CaptureStats::default(),
    };
    while !rest.is_empty() {
        match parser.next_packet(rest) {
            Ok((next, p)) => {
                let Cow::Borrowed(data) = p.data else {
                    unreachable!("parsing a slice borrows")
                };
                sink.frame(link, p.timestamp, data, p.orig_len as usize);
                rest = next;
            }
            // Cut short, or a record the crate rejects: it cannot skip a
            // record, so reading stops there.
            Err(_) => {
                sink.stats.cut_short_at = Some(file.len() - rest.len());
                break;
            }
        }
    }
    Ok(Capture {
        format: CaptureFormat::Pcap {
            big_endian: h.endianness == Endianness::Big,
            nanos: h.ts_resolution == TsResolution::NanoSecond,
        },
        datagrams: sink.datagrams,
        stats: sink.stats,
    })
}

struct Iface {
    link: Option<Link>,
    units_per_sec: Option<u128>,
    offset_secs: i64,
}

fn pcapng(file: &[u8]) -> Result<Capture<'_>, PcapError> {
    let (mut rest, mut parser) = match PcapNgParser::new(file) {
        Ok(p) => p,
        Err(CrateError::IncompleteBuffer) => {
            return Err(PcapError::TruncatedHeader {
                format: "pcapng",
                needed: 28,
                got: file.len(),
            })
        }
        Err(_) => return Err(PcapError::BadSectionHeader(0)),
    };
    let mut sink = Sink {
        datagrams: Vec::new(),
        stats: CaptureStats::default(),
    };
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut last_time = Duration::ZERO;
    let mut unsupported_code = None;
    while !rest.is_empty() {
        let at = file.len() - rest.len();
        let (next, block) = match parser.next_block(rest) {
            Ok(b) => b,
            Err(_) => {
                sink.stats.cut_short_at = Some(at);
                break;
            }
        };
        rest = next;
        match block {
            Block::SectionHeader(_) => ifaces.clear(),
            Block::InterfaceDescription(idb) => {
                let code = u32::from(idb.linktype);
                let mut iface = Iface {
                    link: link_of(code),
                    units_per_sec: Some(1_000_000),
                    offset_secs: 0,
                };
                if iface.link.is_none() {
                    unsupported_code.get_or_insert(code);
                }
                for o in &idb.options {
                    match *o {
                        InterfaceDescriptionOption::IfTsResol(r) => {
                            let exp = u32::from(r & 0x7F);
                            iface.units_per_sec = if r & 0x80 != 0 {
                                2u128.checked_pow(exp)
                            } else {
                                10u128.checked_pow(exp)
                            };
                        }
                        InterfaceDescriptionOption::IfTsOffset(v) => iface.offset_secs = v as i64,
                        _ => {}
                    }
                }
                ifaces.push(iface);
            }
            Block::EnhancedPacket(epb) => {
                // pcap-file took the raw timestamp for nanoseconds.
                let raw = epb.timestamp.as_nanos() as u64;
                let Cow::Borrowed(data) = epb.data else {
                    unreachable!("parsing a slice borrows")
                };
                match ifaces.get(epb.interface_id as usize) {
                    Some(Iface {
                        link: Some(link),
                        units_per_sec,
                        offset_secs,
                        ..
                    }) => match time(raw, *units_per_sec, *offset_secs) {
                        Some(t) => {
                            last_time = t;
                            sink.frame(*link, t, data, epb.original_len as usize);
                        }
                        None => {
                            sink.stats.packets += 1;
                            sink.stats.malformed += 1;
                        }
                    },
                    _ => {
                        sink.stats.packets += 1;
                        sink.stats.unsupported_link += 1;
                    }
                }
            }
            Block::SimplePacket(spb) => {
                let Cow::Borrowed(data) = spb.data else {
                    unreachable!("parsing a slice borrows")
                };
                match ifaces.first() {
                    Some(Iface {
                        link: Some(link), ..
                    }) => {
                        sink.stats.untimed += 1;
                        sink.frame(*link, last_time, data, spb.original_len as usize);
                    }
                    _ => {
                        sink.stats.packets += 1;
                        sink.stats.unsupported_link += 1;
                    }
                }
            }
            _ => {}
        }
    }
    if sink.stats.packets == sink.stats.unsupported_link {
        if let Some(code) = unsupported_code {
            return Err(PcapError::UnsupportedLinkType { code });
        }
    }
    Ok(Capture {
        format: CaptureFormat::Pcapng,
        datagrams: sink.datagrams,
        stats: sink.stats,
    })
}

fn time(ts: u64, ups: Option<u128>, offset: i64) -> Option<Duration> {
    let ups = ups?;
    let ts = u128::from(ts);
    let secs = u64::try_from(ts / ups).ok()?;
    let nanos = u32::try_from((ts % ups) * 1_000_000_000 / ups).ok()?;
    let secs = if offset >= 0 {
        secs.saturating_add(offset.unsigned_abs())
    } else {
        secs.saturating_sub(offset.unsigned_abs())
    };
    Some(Duration::new(secs, nanos))
}

type Found<'a> = (SocketAddr, SocketAddr, &'a [u8]);

fn decode(link: Link, frame: &[u8]) -> Result<Found<'_>, Skip> {
    let sliced = match link {
        Link::Ethernet => SlicedPacket::from_ethernet(frame),
        Link::Sll => SlicedPacket::from_linux_sll(frame),
        Link::Sll2 => {
            let proto = frame.get(..2).ok_or(Skip::Malformed)?;
            let body = frame.get(20..).ok_or(Skip::Malformed)?;
            SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([proto[0], proto[1]])), body)
        }
        Link::Loopback => {
            let fam = frame.get(..4).ok_or(Skip::Malformed)?;
            let fam = [fam[0], fam[1], fam[2], fam[3]];
            let ok = |v: u32| matches!(v, 2 | 10 | 24 | 28 | 30);
            if !ok(u32::from_le_bytes(fam)) && !ok(u32::from_be_bytes(fam)) {
                return Err(Skip::NotIp);
            }
            SlicedPacket::from_ip(&frame[4..])
        }
        Link::Raw => match frame.first().map(|b| b >> 4) {
            Some(4 | 6) => SlicedPacket::from_ip(frame),
            _ => return Err(Skip::NotIp),
        },
    };
    let p = sliced.map_err(|e| match e {
        SliceError::Len(l) if l.len_source != LenSource::Slice => Skip::Truncated,
        _ => Skip::Malformed,
    })?;
    let (src, dst, fragment) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let frag = h.more_fragments() || h.fragments_offset().value() != 0;
            let first = h.fragments_offset().value() == 0;
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                frag.then_some(first),
            )
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let mut frag = None;
            for ext in v6.extensions().clone() {
                if let etherparse::Ipv6ExtensionSlice::Fragment(f) = ext {
                    if f.is_fragmenting_payload() {
                        frag = Some(f.fragment_offset().value() == 0);
                    }
                }
            }
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                frag,
            )
        }
        _ => return Err(Skip::NotIp),
    };
    if let Some(first) = fragment {
        return Err(Skip::Fragment { first });
    }
    match p.transport {
        Some(TransportSlice::Udp(u)) => Ok((
            SocketAddr::new(src, u.source_port()),
            SocketAddr::new(dst, u.destination_port()),
            u.payload(),
        )),
        _ => Err(Skip::NotUdp),
    }
}
