//! A small reader of packet captures that yields the UDP datagrams in them,
//! for `pinbridge detect-dtmf` and the fixture tests.
//!
//! - Containers: classic pcap (both byte orders, microsecond and nanosecond
//!   magic, and the "modified" Kuznetzov variant) and pcapng (sections of
//!   either byte order, several interfaces each with its own link type and
//!   `if_tsresol` / `if_tsoffset`, Enhanced, Simple and obsolete Packet
//!   Blocks; other blocks are skipped).
//! - Link types: see [`LinkType`]; IPv4 (options, fragments skipped) and
//!   IPv6 (extension headers skipped) carrying UDP.
//!
//! [`read_capture`] reads a whole file held in memory and returns every
//! datagram in file order, borrowing the payloads from the file; nothing is
//! allocated per packet. Packets that are not UDP or not whole are skipped
//! and counted in [`CaptureStats`]. A file that ends in the middle of a
//! record (a capture that was cut short) gives the packets before it and
//! says so in [`CaptureStats::cut_short_at`]; only a file whose header
//! cannot be read, or whose only link type is not supported, is an error.
//! Nothing here panics on any input.

// Everything under here reads a capture file someone else wrote: a panic
// on a cut-short or odd record would abort the tool instead of naming it.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod classic;
mod net;
mod pcapng;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use net::{link_type_name, LinkType};

/// One UDP datagram of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Capture time, since the Unix epoch (as the capture records it).
    pub time: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The UDP payload, borrowed from the file.
    pub payload: &'a [u8],
}

/// A capture file that cannot be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PcapError {
    #[error("empty file")]
    Empty,
    #[error("not a pcap or pcapng file (starts with {})", hex4(*.0))]
    NotACapture([u8; 4]),
    #[error("{format} file header truncated: {got} of {needed} bytes")]
    TruncatedHeader {
        format: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        format: &'static str,
        major: u16,
        minor: u16,
    },
    #[error("pcapng section header with an unknown byte-order magic {}", hex4(*.0))]
    BadByteOrderMagic([u8; 4]),
    #[error("pcapng section header block with an invalid length {0}")]
    BadSectionHeader(u32),
    #[error(
        "unsupported link type {code} ({}); supported: Ethernet (1), Linux cooked SLL (113) \
         and SLL2 (276), raw IP (101, 228, 229), BSD/OpenBSD loopback (0, 108)",
        link_type_name(*code)
    )]
    UnsupportedLinkType { code: u32 },
}

fn hex4(b: [u8; 4]) -> String {
    format!("{:02x} {:02x} {:02x} {:02x}", b[0], b[1], b[2], b[3])
}

/// Which container the file was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap; `nanos` for the nanosecond-resolution magic.
    Pcap {
        big_endian: bool,
        nanos: bool,
    },
    Pcapng,
}

/// What the reader saw besides the datagrams it returned: the diagnostics
/// `detect-dtmf` prints on stderr.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packet records read (all link types, all protocols).
    pub packets: u64,
    /// UDP datagrams returned.
    pub udp: u64,
    /// Skipped: not IPv4/IPv6 (ARP, LLDP, ...).
    pub not_ip: u64,
    /// Skipped: IP but not UDP.
    pub not_udp: u64,
    /// Skipped: IP fragments (not reassembled). `first_fragments` of them
    /// were the first fragment of a datagram.
    pub fragments: u64,
    pub first_fragments: u64,
    /// Skipped: the datagram was not entirely captured (snapshot length).
    pub truncated: u64,
    /// Skipped: headers that contradict themselves or the record.
    pub malformed: u64,
    /// Skipped: packets on an interface whose link type is not supported
    /// (pcapng with several interfaces), or on an undefined interface.
    pub unsupported_link: u64,
    /// pcapng Simple Packet Blocks carry no time; they were given the time
    /// of the packet before them.
    pub untimed: u64,
    /// The file ended, or a block was corrupt, at this byte offset; the
    /// packets before it were read.
    pub cut_short_at: Option<usize>,
}

impl fmt::Display for CaptureStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} packets, {} UDP datagrams", self.packets, self.udp)?;
        let skipped = [
            (self.not_ip, "not IP"),
            (self.not_udp, "not UDP"),
            (self.fragments, "IP fragments (not reassembled)"),
            (self.truncated, "truncated by the snapshot length"),
            (self.malformed, "malformed"),
            (self.unsupported_link, "on an unsupported interface"),
        ];
        for (n, what) in skipped {
            if n > 0 {
                write!(f, "; skipped {n} {what}")?;
            }
        }
        if self.untimed > 0 {
            write!(f, "; {} simple packet blocks without time", self.untimed)?;
        }
        if let Some(at) = self.cut_short_at {
            write!(f, "; the capture is cut short at byte {at}")?;
        }
        Ok(())
    }
}

/// Everything read from one capture file.
#[derive(Clone, Debug)]
pub struct Capture<'a> {
    pub format: CaptureFormat,
    /// UDP datagrams in file order (which is normally time order).
    pub datagrams: Vec<UdpDatagram<'a>>,
    pub stats: CaptureStats,
}

/// The UDP datagrams of a capture, in file order. See [`read_capture`] for
/// the diagnostics as well.
pub fn read_udp_datagrams(file: &[u8]) -> Result<Vec<UdpDatagram<'_>>, PcapError> {
    read_capture(file).map(|c| c.datagrams)
}

/// Reads a classic pcap or pcapng file held in memory.
pub fn read_capture(file: &[u8]) -> Result<Capture<'_>, PcapError> {
    let magic: [u8; 4] = match file.first_chunk::<4>() {
        Some(m) => *m,
        None if file.is_empty() => return Err(PcapError::Empty),
        None => {
            // Shorter than a magic number: report the bytes there are,
            // zero-padded.
            let mut m = [0u8; 4];
            for (to, from) in m.iter_mut().zip(file) {
                *to = *from;
            }
            return Err(PcapError::NotACapture(m));
        }
    };
    if magic == PCAPNG_SHB.to_le_bytes() {
        return pcapng::read(file);
    }
    match classic::Magic::from_bytes(magic) {
        Some(m) => classic::read(file, m),
        None => Err(PcapError::NotACapture(magic)),
    }
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;

/// Collects datagrams and counts skips; shared by both containers.
struct Sink<'a> {
    datagrams: Vec<UdpDatagram<'a>>,
    stats: CaptureStats,
}

impl<'a> Sink<'a> {
    fn new() -> Self {
        Sink {
            datagrams: Vec::new(),
            stats: CaptureStats::default(),
        }
    }

    /// Decodes one record. `orig_len` is the packet's length on the wire:
    /// a record shorter than that was cut by the snapshot length, and a
    /// header it cuts off counts as truncated, not malformed.
    fn frame(&mut self, link: LinkType, time: Duration, frame: &'a [u8], orig_len: usize) {
        use net::Skip;
        self.stats.packets += 1;
        let snapped = frame.len() < orig_len;
        match net::decode_frame(link, frame) {
            Ok(u) => {
                self.stats.udp += 1;
                self.datagrams.push(UdpDatagram {
                    time,
                    src: u.src,
                    dst: u.dst,
                    payload: u.payload,
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

    fn unsupported(&mut self) {
        self.stats.packets += 1;
        self.stats.unsupported_link += 1;
    }
}

/// Reads integers in a byte order decided at run time.
#[derive(Clone, Copy)]
struct Order {
    big: bool,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let a: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let a: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }
}

/// Capture-file builders for tests (this module's and the DTMF ones).
#[cfg(test)]
pub(crate) mod build {
    pub(crate) use super::net::build::*;

    /// A classic pcap file: `(seconds, fraction, caplen, origlen, frame)`;
    /// `frame` is cut to `caplen`.
    pub(crate) fn classic(
        big: bool,
        nanos: bool,
        link: u32,
        recs: &[(u32, u32, u32, &[u8])],
    ) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let magic = if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 };
        let mut f = w32(magic).to_vec();
        f.extend_from_slice(&w16(2));
        f.extend_from_slice(&w16(4));
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&w32(65535));
        f.extend_from_slice(&w32(link));
        for &(sec, frac, caplen, frame) in recs {
            let caplen = (caplen as usize).min(frame.len());
            f.extend_from_slice(&w32(sec));
            f.extend_from_slice(&w32(frac));
            f.extend_from_slice(&w32(caplen as u32));
            f.extend_from_slice(&w32(frame.len() as u32));
            f.extend_from_slice(&frame[..caplen]);
        }
        f
    }

    /// Writes pcapng blocks in one byte order.
    pub(crate) struct Ng {
        pub big: bool,
        pub out: Vec<u8>,
    }

    impl Ng {
        pub(crate) fn new(big: bool) -> Ng {
            let mut ng = Ng {
                big,
                out: Vec::new(),
            };
            ng.shb();
            ng
        }

        fn w32(&self, v: u32) -> [u8; 4] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        fn w16(&self, v: u16) -> [u8; 2] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        pub(crate) fn block(&mut self, kind: u32, body: &[u8]) -> &mut Ng {
            let pad = body.len().div_ceil(4) * 4 - body.len();
            let len = (12 + body.len() + pad) as u32;
            let (k, l) = (self.w32(kind), self.w32(len));
            self.out.extend_from_slice(&k);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(body);
            self.out.extend(std::iter::repeat_n(0, pad));
            self.out.extend_from_slice(&l);
            self
        }

        pub(crate) fn shb(&mut self) -> &mut Ng {
            let mut b = self.w32(0x1A2B_3C4D).to_vec();
            b.extend_from_slice(&self.w16(1));
            b.extend_from_slice(&self.w16(0));
            b.extend_from_slice(&[0xFF; 8]);
            self.block(0x0A0D_0D0A, &b)
        }

        /// An IDB; `tsresol` adds the `if_tsresol` option, `tsoffset`
        /// the `if_tsoffset` one.
        pub(crate) fn idb(
            &mut self,
            link: u16,
            tsresol: Option<u8>,
            tsoffset: Option<i64>,
        ) -> &mut Ng {
            let mut b = self.w16(link).to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&self.w32(0));
            // An unknown option first, to be skipped (comment, 5 bytes).
            b.extend_from_slice(&self.w16(1));
            b.extend_from_slice(&self.w16(5));
            b.extend_from_slice(b"hello\0\0\0");
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.w16(9));
                b.extend_from_slice(&self.w16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.extend_from_slice(&self.w16(14));
                b.extend_from_slice(&self.w16(8));
                let o = o as u64;
                b.extend_from_slice(&if self.big {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                });
            }
            b.extend_from_slice(&[0, 0, 0, 0]);
            self.block(1, &b)
        }

        pub(crate) fn epb(&mut self, iface: u32, ts: u64, caplen: usize, frame: &[u8]) -> &mut Ng {
            let caplen = caplen.min(frame.len());
            let mut b = self.w32(iface).to_vec();
            b.extend_from_slice(&self.w32((ts >> 32) as u32));
            b.extend_from_slice(&self.w32(ts as u32));
            b.extend_from_slice(&self.w32(caplen as u32));
            b.extend_from_slice(&self.w32(frame.len() as u32));
            b.extend_from_slice(&frame[..caplen]);
            self.block(6, &b)
        }

        pub(crate) fn spb(&mut self, frame: &[u8]) -> &mut Ng {
            let mut b = self.w32(frame.len() as u32).to_vec();
            b.extend_from_slice(frame);
            self.block(3, &b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use crate::testing::TestRng;

    const A: [u8; 4] = [192, 0, 2, 1];
    const B: [u8; 4] = [192, 0, 2, 2];

    fn eth_udp(payload: &[u8]) -> Vec<u8> {
        ethernet(&[], 0x0800, &ipv4_udp(A, 4000, B, 5000, payload))
    }

    #[test]
    fn classic_all_magics_and_byte_orders() {
        let f1 = eth_udp(b"one");
        let f2 = eth_udp(b"two");
        for big in [false, true] {
            for nanos in [false, true] {
                let frac = if nanos { 123_456_789 } else { 123_456 };
                let file = classic(
                    big,
                    nanos,
                    1,
                    &[
                        (1_700_000_000, frac, 999, &f1),
                        (1_700_000_001, 0, 999, &f2),
                    ],
                );
                let c = read_capture(&file).unwrap();
                assert_eq!(
                    c.format,
                    CaptureFormat::Pcap {
                        big_endian: big,
                        nanos
                    }
                );
                assert_eq!(c.datagrams.len(), 2);
                let d = &c.datagrams[0];
                assert_eq!(d.payload, b"one");
                assert_eq!(d.src, "192.0.2.1:4000".parse().unwrap());
                assert_eq!(d.dst, "192.0.2.2:5000".parse().unwrap());
                let want_ns = if nanos { 123_456_789 } else { 123_456_000 };
                assert_eq!(d.time, Duration::new(1_700_000_000, want_ns));
                assert_eq!(c.datagrams[1].payload, b"two");
                assert_eq!(c.stats.packets, 2);
                assert_eq!(c.stats.cut_short_at, None);
            }
        }
    }

    #[test]
    fn classic_modified_pcap_has_longer_records() {
        let frame = ipv4_udp(A, 1, B, 2, b"kuz");
        let mut f = 0xA1B2_CD34u32.to_le_bytes().to_vec();
        f.extend_from_slice(&[2, 0, 4, 0]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&101u32.to_le_bytes());
        for v in [5u32, 6, frame.len() as u32, frame.len() as u32, 0, 0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&frame);
        let d = read_udp_datagrams(&f).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].payload, b"kuz");
        assert_eq!(d[0].time, Duration::new(5, 6000));
    }

    #[test]
    fn classic_link_types() {
        let ip = ipv4_udp(A, 1, B, 2, b"L");
        let cases: [(u32, Vec<u8>); 7] = [
            (0, [&2u32.to_le_bytes()[..], &ip].concat()),
            (1, ethernet(&[42], 0x0800, &ip)),
            (101, ip.clone()),
            (108, [&2u32.to_be_bytes()[..], &ip].concat()),
            (113, sll(0x0800, &ip)),
            (228, ip.clone()),
            (276, sll2(0x0800, &ip)),
        ];
        for (link, frame) in cases {
            let file = classic(false, false, link, &[(1, 0, 9999, &frame)]);
            let d = read_udp_datagrams(&file).unwrap();
            assert_eq!(d.len(), 1, "link type {link}");
            assert_eq!(d[0].payload, b"L");
        }
        // FCS bits in the upper half of the link-type field are ignored.
        let file = classic(false, false, 0x1400_0001, &[(1, 0, 9999, &eth_udp(b"F"))]);
        assert_eq!(read_udp_datagrams(&file).unwrap()[0].payload, b"F");
    }

    #[test]
    fn unsupported_link_type_is_named() {
        let file = classic(false, false, 127, &[]);
        let e = read_capture(&file).unwrap_err();
        assert_eq!(e, PcapError::UnsupportedLinkType { code: 127 });
        assert!(
            e.to_string()
                .starts_with("unsupported link type 127 (IEEE 802.11 radiotap)"),
            "{e}"
        );

        let mut ng = Ng::new(false);
        ng.idb(105, None, None).epb(0, 0, 100, &[0; 40]);
        let e = read_capture(&ng.out).unwrap_err();
        assert!(e.to_string().contains("105 (IEEE 802.11)"), "{e}");
    }

    #[test]
    fn header_errors_are_named() {
        assert_eq!(read_capture(b"").unwrap_err(), PcapError::Empty);
        assert_eq!(
            read_capture(b"RIFF....WAVE").unwrap_err().to_string(),
            "not a pcap or pcapng file (starts with 52 49 46 46)"
        );
        assert!(matches!(
            read_capture(b"\xd4\xc3"),
            Err(PcapError::NotACapture(_))
        ));
        let file = classic(false, false, 1, &[]);
        assert_eq!(
            read_capture(&file[..20]).unwrap_err(),
            PcapError::TruncatedHeader {
                format: "pcap",
                needed: 24,
                got: 20
            }
        );
        let mut v1 = file.clone();
        v1[4] = 1;
        assert!(matches!(
            read_capture(&v1),
            Err(PcapError::UnsupportedVersion { major: 1, .. })
        ));
        let ng = Ng::new(false).out;
        assert!(matches!(
            read_capture(&ng[..12]),
            Err(PcapError::TruncatedHeader {
                format: "pcapng",
                ..
            })
        ));
        let mut bad_bom = ng.clone();
        bad_bom[8] = 0;
        assert!(matches!(
            read_capture(&bad_bom),
            Err(PcapError::BadByteOrderMagic(_))
        ));
        let mut bad_len = ng;
        bad_len[4] = 13;
        assert!(matches!(
            read_capture(&bad_len),
            Err(PcapError::BadSectionHeader(13))
        ));
    }

    #[test]
    fn classic_cut_short_keeps_what_came_before() {
        let f = eth_udp(b"whole");
        let file = classic(false, false, 1, &[(1, 0, 999, &f), (2, 0, 999, &f)]);
        for cut in [
            file.len() - 1,
            file.len() - f.len(),
            file.len() - f.len() - 3,
        ] {
            let c = read_capture(&file[..cut]).unwrap();
            assert_eq!(c.datagrams.len(), 1, "cut at {cut}");
            assert_eq!(c.stats.cut_short_at, Some(24 + 16 + f.len()));
        }
    }

    #[test]
    fn snapped_packets_are_skipped_unless_the_datagram_is_whole() {
        let f = eth_udp(b"0123456789");
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 4]); // FCS not captured
        let file = classic(
            false,
            false,
            1,
            &[(1, 0, 30, &f), (2, 0, f.len() as u32, &padded)],
        );
        let c = read_capture(&file).unwrap();
        assert_eq!(c.stats.truncated, 1);
        assert_eq!(c.datagrams.len(), 1);
        assert_eq!(c.datagrams[0].payload, b"0123456789");
    }

    #[test]
    fn fragments_and_other_protocols_are_counted() {
        let frag1 = ethernet(&[], 0x0800, &ipv4_udp_opts(A, 1, B, 2, b"x", &[], 0x2000));
        let frag2 = ethernet(&[], 0x0800, &ipv4_udp_opts(A, 1, B, 2, b"x", &[], 0x0001));
        let arp = ethernet(&[], 0x0806, &[0; 28]);
        let mut tcp_ip = ipv4_udp(A, 1, B, 2, b"tcp.....");
        tcp_ip[9] = 6;
        let tcp = ethernet(&[], 0x0800, &tcp_ip);
        let junk = ethernet(&[], 0x0800, &[0x45, 0]);
        let recs: [(u32, u32, u32, &[u8]); 5] = [
            (1, 0, 999, &frag1),
            (1, 0, 999, &frag2),
            (1, 0, 999, &arp),
            (1, 0, 999, &tcp),
            (1, 0, 999, &junk),
        ];
        let file = classic(false, false, 1, &recs);
        let c = read_capture(&file).unwrap();
        assert!(c.datagrams.is_empty());
        let s = &c.stats;
        assert_eq!((s.packets, s.fragments, s.first_fragments), (5, 2, 1));
        assert_eq!((s.not_ip, s.not_udp, s.malformed), (1, 1, 1));
        let text = s.to_string();
        assert!(
            text.contains("skipped 2 IP fragments (not reassembled)"),
            "{text}"
        );
    }

    #[test]
    fn pcapng_both_byte_orders_several_interfaces_and_resolutions() {
        for big in [false, true] {
            let ip = ipv4_udp(A, 1, B, 2, b"ng");
            let mut ng = Ng::new(big);
            ng.idb(1, None, None) // 0: Ethernet, microseconds
                .idb(113, Some(9), None) // 1: SLL, nanoseconds
                .idb(101, Some(0x80 | 20), Some(-100)) // 2: raw, 2^-20 s, -100 s
                .idb(127, None, None); // 3: radiotap, unsupported
            ng.block(0x0000_0BAD, b"unknown block type") // skipped
                .block(5, &[0; 12]) // interface statistics: skipped
                .epb(0, 1_700_000_000_250_000, 999, &ethernet(&[], 0x0800, &ip))
                .epb(1, 1_700_000_000_123_456_789, 999, &sll(0x0800, &ip))
                .epb(2, (1_000u64 << 20) | (1 << 19), 999, &ip)
                .epb(3, 0, 999, &[0; 50])
                .epb(9, 0, 999, &ip); // no such interface
            let c = read_capture(&ng.out).unwrap();
            assert_eq!(c.format, CaptureFormat::Pcapng);
            let times: Vec<_> = c.datagrams.iter().map(|d| d.time).collect();
            assert_eq!(
                times,
                [
                    Duration::new(1_700_000_000, 250_000_000),
                    Duration::new(1_700_000_000, 123_456_789),
                    Duration::new(900, 500_000_000),
                ],
                "big endian: {big}"
            );
            assert!(c.datagrams.iter().all(|d| d.payload == b"ng"));
            assert_eq!(c.stats.unsupported_link, 2);
            assert_eq!(c.stats.cut_short_at, None);
        }
    }

    #[test]
    fn pcapng_new_section_resets_interfaces_and_may_switch_byte_order() {
        let ip = ipv4_udp(A, 1, B, 2, b"s");
        let mut a = Ng::new(false);
        a.idb(101, None, None).epb(0, 1_000_000, 999, &ip);
        let mut b = Ng::new(true);
        b.idb(1, None, None)
            .epb(0, 2_000_000, 999, &ethernet(&[], 0x0800, &ip));
        let mut file = a.out;
        file.extend_from_slice(&b.out);
        let d = read_udp_datagrams(&file).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].time, Duration::from_secs(2));
    }

    #[test]
    fn pcapng_simple_packet_blocks_take_the_previous_time() {
        let ip = ipv4_udp(A, 1, B, 2, b"simple");
        let mut ng = Ng::new(false);
        ng.idb(101, None, None).epb(0, 7_000_000, 999, &ip).spb(&ip);
        let c = read_capture(&ng.out).unwrap();
        assert_eq!(c.datagrams.len(), 2);
        assert_eq!(c.datagrams[1].time, Duration::from_secs(7));
        assert_eq!(c.stats.untimed, 1);
    }

    #[test]
    fn pcapng_cut_short_and_corrupt_blocks() {
        let ip = ipv4_udp(A, 1, B, 2, b"cut");
        let mut ng = Ng::new(false);
        ng.idb(101, None, None).epb(0, 0, 999, &ip);
        let whole = ng.out.len();
        ng.epb(0, 0, 999, &ip);
        for cut in [whole + 3, whole + 8, ng.out.len() - 1] {
            let c = read_capture(&ng.out[..cut]).unwrap();
            assert_eq!(c.datagrams.len(), 1);
            assert_eq!(c.stats.cut_short_at, Some(whole));
        }
        // Trailing length that does not match the leading one.
        let mut bad = ng.out.clone();
        let last = bad.len() - 4;
        bad[last] ^= 4;
        assert_eq!(read_capture(&bad).unwrap().stats.cut_short_at, Some(whole));
        // Caplen beyond the block: that packet is malformed, the rest read.
        let mut ng = Ng::new(false);
        ng.idb(101, None, None);
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&1000u32.to_le_bytes());
        body.extend_from_slice(&1000u32.to_le_bytes());
        body.extend_from_slice(&ip);
        ng.block(6, &body).epb(0, 0, 999, &ip);
        let c = read_capture(&ng.out).unwrap();
        assert_eq!(c.datagrams.len(), 1);
        assert_eq!(c.stats.malformed, 1);
    }

    #[test]
    fn huge_tsresol_does_not_overflow() {
        let ip = ipv4_udp(A, 1, B, 2, b"t");
        let mut ng = Ng::new(false);
        ng.idb(101, Some(0x7F), None)
            .idb(101, Some(0xFF), Some(i64::MAX))
            .idb(101, Some(0), Some(i64::MIN))
            .epb(0, u64::MAX, 999, &ip)
            .epb(1, u64::MAX, 999, &ip)
            .epb(2, 5, 999, &ip);
        let c = read_capture(&ng.out).unwrap();
        assert_eq!(c.stats.malformed, 1); // 10^127 units per second
        assert_eq!(c.datagrams.len(), 2);
        assert_eq!(c.datagrams[1].time, Duration::ZERO);
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/dtmf")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    // The counts, addresses and times below are tshark's reading of the same files.

    #[test]
    fn real_pcapng_ethernet_from_tshark_on_loopback() {
        let file = fixture("baresip_1234hash.pcapng");
        let c = read_capture(&file).unwrap();
        assert_eq!(c.format, CaptureFormat::Pcapng);
        assert_eq!((c.stats.packets, c.stats.udp), (270, 270));
        assert_eq!(c.stats.cut_short_at, None);
        let first = &c.datagrams[0];
        assert_eq!(first.time, Duration::new(1_795_441_320, 315_108_252));
        assert_eq!(first.src, "127.0.0.1:5072".parse().unwrap());
        assert_eq!(first.dst, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(first.payload.len(), 841 - 8);
        assert!(first
            .payload
            .starts_with(b"INVITE sip:1000@127.0.0.1:5080 SIP/2.0"));
        assert_eq!(c.datagrams[5].dst, "127.0.0.1:31000".parse().unwrap());
        assert_eq!(c.datagrams[5].payload.len(), 180 - 8);
        let last = c.datagrams.last().unwrap();
        assert_eq!(last.time, Duration::new(1_795_441_324, 345_015_105));
        assert_eq!(last.payload.len(), 56 - 8);
    }

    #[test]
    fn real_pcapng_linux_cooked_v2() {
        let file = fixture("twinkle_rfc2833_1111.pcapng");
        let c = read_capture(&file).unwrap();
        assert_eq!(c.datagrams.len(), 49);
        assert!(c.datagrams[0].payload.starts_with(b"INVITE "));
        assert_eq!(c.datagrams[0].src, "127.0.0.1:5076".parse().unwrap());
        assert_eq!(
            c.datagrams[0].time,
            Duration::new(1_795_441_363, 532_608_791)
        );
        let last = c.datagrams.last().unwrap();
        assert_eq!(last.time, Duration::new(1_795_441_370, 567_639_752));
    }

    #[test]
    fn real_classic_pcap_linux_cooked_v1() {
        let file = fixture("twinkle_inband_1234hash.pcap");
        let c = read_capture(&file).unwrap();
        assert_eq!(
            c.format,
            CaptureFormat::Pcap {
                big_endian: false,
                nanos: false
            }
        );
        assert_eq!(c.datagrams.len(), 59);
        assert_eq!(
            c.datagrams[0].time,
            Duration::new(1_795_441_388, 634_631_000)
        );
        assert_eq!(
            c.datagrams[58].time,
            Duration::new(1_795_441_395, 660_282_000)
        );
    }

    #[test]
    fn real_classic_pcap_ethernet_from_sipp() {
        let file = fixture("sipp_g711a.pcap");
        let c = read_capture(&file).unwrap();
        assert_eq!(c.datagrams.len(), 236);
        let d = &c.datagrams[0];
        assert_eq!(d.time, Duration::new(1_027_664_343, 268_118_000));
        assert_eq!(d.src, "10.1.3.143:5000".parse().unwrap());
        assert_eq!(d.dst, "10.1.6.18:2006".parse().unwrap());
        assert_eq!(d.payload.len(), 12 + 240);
        let file = fixture("sipp_dtmf_2833_1.pcap");
        let d = read_udp_datagrams(&file).unwrap();
        assert_eq!(d.len(), 10);
        assert_eq!(d[9].time, Duration::new(1_134_424_480, 693_807_000));
        assert_eq!(d[9].payload.len(), 16);
    }

    #[test]
    fn real_files_cut_anywhere_never_panic() {
        for name in ["twinkle_rfc2833_1111.pcapng", "twinkle_inband_1111.pcap"] {
            let file = fixture(name);
            let whole = read_capture(&file).unwrap().datagrams.len();
            for n in (0..file.len()).step_by(7) {
                if let Ok(c) = read_capture(&file[..n]) {
                    assert!(c.datagrams.len() <= whole);
                }
            }
        }
    }

    fn sample_files() -> Vec<Vec<u8>> {
        let ip4 = ipv4_udp_opts(A, 1, B, 2, b"rtp-ish payload", &[1, 1, 1, 0], 0);
        let ip6 = ipv6_udp(
            [1; 16],
            1,
            [2; 16],
            2,
            b"six",
            0,
            &[17, 0, 1, 4, 0, 0, 0, 0],
        );
        let eth = ethernet(&[7], 0x0800, &ip4);
        let mut ng = Ng::new(true);
        ng.idb(1, Some(9), Some(3))
            .idb(113, None, None)
            .idb(229, None, None);
        ng.epb(0, 5, 999, &eth)
            .epb(1, 6, 999, &sll(0x86DD, &ip6))
            .epb(2, 7, 999, &ip6)
            .spb(&eth);
        vec![
            classic(false, false, 1, &[(1, 2, 999, &eth), (3, 4, 20, &eth)]),
            classic(true, true, 276, &[(1, 2, 999, &sll2(0x86DD, &ip6))]),
            classic(
                false,
                false,
                0,
                &[(1, 2, 999, &[&2u32.to_le_bytes()[..], &ip4].concat())],
            ),
            ng.out,
        ]
    }

    #[test]
    fn fuzz_truncations_and_random_bytes_never_panic() {
        let mut rng = TestRng::new(0x9E37_79B9_7F4A_7C15);
        for file in sample_files() {
            assert!(!read_udp_datagrams(&file).unwrap().is_empty());
            // Every truncation.
            for n in 0..file.len() {
                let _ = read_capture(&file[..n]);
            }
            // Random byte flips, many per file.
            for _ in 0..3000 {
                let mut f = file.clone();
                for _ in 0..(rng.below(6) + 1) {
                    let i = rng.index(f.len());
                    f[i] = rng.byte();
                }
                let _ = read_capture(&f);
            }
        }
        // Pure noise behind each magic.
        let magics: [&[u8]; 5] = [
            &[0xD4, 0xC3, 0xB2, 0xA1],
            &[0xA1, 0xB2, 0xC3, 0xD4],
            &[0x4D, 0x3C, 0xB2, 0xA1],
            &[0x0A, 0x0D, 0x0D, 0x0A],
            &[0x34, 0xCD, 0xB2, 0xA1],
        ];
        for _ in 0..2000 {
            let len = rng.index(300);
            let mut f: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            let _ = read_capture(&f);
            let m = rng.pick(&magics);
            f.splice(0..0, m.iter().copied());
            let _ = read_capture(&f);
        }
    }
}
