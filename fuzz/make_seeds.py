#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ from fixtures/ and
from messages written like the ones the tests use. Run from anywhere:

    python3 fuzz/make_seeds.py

The seeds are committed; rerun this after changing it (it rewrites every
seed directory). Standard library only.
"""

import os
import struct
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
SEEDS = os.path.join(FUZZ, "seeds")
TORTURE = os.path.join(ROOT, "fixtures", "sip-torture")
DTMF = os.path.join(ROOT, "fixtures", "dtmf")

# Captures are cut to this many bytes (the reader handles cut-short files;
# seeds must stay small).
MAX_CAPTURE_SEED = 12_000
# Most RTP packets kept per rtp_dtmf seed.
MAX_RTP_PACKETS = 60


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


# --------------------------------------------------------------------- SIP

OFFER = crlf(
    """v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""
)

OFFER_V6_HOLD = crlf(
    """v=0
o=- 7 8 IN IP6 2001:db8::7
s=call
c=IN IP6 2001:db8::7
t=0 0
m=video 0 RTP/AVP 31
m=audio 30000 RTP/SAVP 0
m=audio 30002 RTP/AVPF 96 97
a=rtpmap:96 PCMA/8000
a=rtpmap:97 telephone-event/8000
a=fmtp:97 0-15
a=ptime:30
a=maxptime:60
a=sendonly
"""
)

ANSWER = crlf(
    """v=0
o=trunk 7 7 IN IP4 198.51.100.7
s=-
c=IN IP4 198.51.100.7
t=0 0
m=audio 41000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
"""
)


def message(start, headers, body=b""):
    head = start + "\r\n"
    for h in headers:
        head += h + "\r\n"
    if body:
        head += "Content-Length: %d\r\n" % len(body)
    else:
        head += "Content-Length: 0\r\n"
    return head.encode() + b"\r\n" + body


def request(method, uri, cseq, branch, to_tag=None, extra=(), body=b"", peer="192.0.2.10:5071",
            call_id="call-1@192.0.2.10"):
    to = "<sip:1000@192.0.2.1>" + (";tag=" + to_tag if to_tag else "")
    headers = [
        "Via: SIP/2.0/UDP %s;branch=%s;rport" % (peer, branch),
        "Max-Forwards: 70",
        'From: "Alice" <sip:alice@%s>;tag=from1' % peer.rsplit(":", 1)[0],
        "To: " + to,
        "Call-ID: " + call_id,
        "CSeq: %d %s" % (cseq, method),
        "Contact: <sip:alice@%s>" % peer,
    ]
    headers += list(extra)
    return message("%s %s SIP/2.0" % (method, uri), headers, body)


def invite(branch="z9hG4bK-1", extra=(), body=OFFER, **kw):
    return request("INVITE", "sip:1000@192.0.2.1", 1, branch,
                   extra=("Content-Type: application/sdp", "Supported: timer") + tuple(extra),
                   body=body, **kw)


def in_dialog(method, cseq, branch, extra=(), body=b"", tag="$T"):
    return request(method, "sip:pinbridge@192.0.2.1:5060", cseq, branch, to_tag=tag,
                   extra=extra, body=body)


def response(status, reason, to_tag="peer1", extra=(), body=b""):
    """A response to our latest request, with the values the harness
    substitutes ($V, $R, $O, $I, $C)."""
    to = "To: $O" + (";tag=" + to_tag if to_tag else "")
    headers = ["Via: $V", "From: $R", to, "Call-ID: $I", "CSeq: $C",
               "Contact: <sip:trunk@198.51.100.7:5060>"]
    headers += list(extra)
    return message("SIP/2.0 %d %s" % (status, reason), headers, body)


DTMF_RELAY = b"Signal=5\r\nDuration=160\r\n"

CHALLENGE = ('Digest realm="trunk.example.net", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
             'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop="auth,auth-int", algorithm=MD5')
CHALLENGE_SHA = ('Digest realm="trunk.example.net", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", qop="auth", '
                 'algorithm=SHA-256, userhash=true')

# A realistic set of messages, standalone (sip_datagram, sip_stream).
STANDALONE = {
    "invite_sdp": invite(extra=("Session-Expires: 1800;refresher=uac", "Min-SE: 90",
                                "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE",
                                "P-Asserted-Identity: <sip:+12015550123@192.0.2.10>",
                                "Accept: application/sdp", "Require: timer",
                                "Date: Sat, 13 Nov 2010 23:29:00 GMT", "Expires: 60")),
    "invite_late_offer": invite(body=b""),
    "invite_utf8": invite(extra=("Subject: R\u00e9union \u20ac\U0001F600",)).replace(
        b'"Alice"', '"Jos\u00e9 M\u00fcller"'.encode()),
    "invite_v6_hold": invite(body=OFFER_V6_HOLD, peer="[2001:db8::7]:5062"),
    "ack": in_dialog("ACK", 1, "z9hG4bK-2", tag="abc123"),
    "bye": in_dialog("BYE", 2, "z9hG4bK-3", tag="abc123"),
    "cancel": request("CANCEL", "sip:1000@192.0.2.1", 1, "z9hG4bK-1"),
    "options": request("OPTIONS", "sip:1000@192.0.2.1", 1, "z9hG4bK-o", extra=("Accept: application/sdp",)),
    "info_dtmf_relay": in_dialog("INFO", 3, "z9hG4bK-4", tag="abc123",
                                 extra=("Content-Type: application/dtmf-relay",), body=DTMF_RELAY),
    "update_sdp": in_dialog("UPDATE", 4, "z9hG4bK-5", tag="abc123",
                            extra=("Content-Type: application/sdp",), body=OFFER),
    "register": request("REGISTER", "sip:192.0.2.1", 1, "z9hG4bK-r", extra=("Expires: 3600",)),
    "message": request("MESSAGE", "sip:1000@192.0.2.1", 1, "z9hG4bK-m",
                       extra=("Content-Type: text/plain",), body=b"hello"),
    "compact_form": crlf("INVITE sip:1000@192.0.2.1 SIP/2.0\n"
                         "v: SIP/2.0/TCP 192.0.2.10:5071;branch=z9hG4bK-c\n"
                         "f: <sip:a@b>;tag=1\nt: <sip:1000@192.0.2.1>\ni: abc\nCSeq: 1 INVITE\n"
                         "m: <sip:a@192.0.2.10>\nk: timer\nx: 90\nc: application/sdp\n"
                         "l: 0\n\n"),
    "trying": message("SIP/2.0 100 Trying", ["Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-x",
                                            "From: <sip:pinbridge@192.0.2.1>;tag=a",
                                            "To: <sip:b@192.0.2.10>", "Call-ID: x@y", "CSeq: 1 INVITE"]),
    "ok_sdp": message("SIP/2.0 200 OK", ["Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-x",
                                        "From: <sip:pinbridge@192.0.2.1>;tag=a",
                                        "To: <sip:b@192.0.2.10>;tag=b", "Call-ID: x@y", "CSeq: 1 INVITE",
                                        "Contact: <sip:b@192.0.2.10>", "Content-Type: application/sdp"],
                      ANSWER),
    "unauthorized": message("SIP/2.0 401 Unauthorized",
                            ["Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-x",
                             "From: <sip:pinbridge@192.0.2.1>;tag=a", "To: <sip:b@192.0.2.10>;tag=b",
                             "Call-ID: x@y", "CSeq: 1 REGISTER", "WWW-Authenticate: " + CHALLENGE,
                             "WWW-Authenticate: " + CHALLENGE_SHA]),
}


def torture():
    out = {}
    for name in sorted(os.listdir(TORTURE)):
        if name.endswith(".dat"):
            with open(os.path.join(TORTURE, name), "rb") as f:
                out["torture_" + name[:-4]] = f.read()
    return out


def ua_scripts():
    """Scripts for ua_sequence: records separated by 0x1e."""
    def script(*records):
        return b"\x1e".join(r if isinstance(r, bytes) else r.encode() for r in records)

    def u(peer, msg):
        return b"U" + str(peer).encode() + msg

    def t(peer, msg):
        return b"T" + str(peer).encode() + msg

    ack = in_dialog("ACK", 1, "z9hG4bK-ack1")
    info = in_dialog("INFO", 2, "z9hG4bK-info1", extra=("Content-Type: application/dtmf-relay",),
                     body=DTMF_RELAY)
    reinvite = in_dialog("INVITE", 3, "z9hG4bK-re1", extra=("Content-Type: application/sdp",),
                         body=OFFER.replace(b"a=sendrecv", b"a=sendonly"))
    reack = in_dialog("ACK", 3, "z9hG4bK-re2")
    update = in_dialog("UPDATE", 4, "z9hG4bK-up1", extra=("Content-Type: application/sdp",
                                                          "Session-Expires: 120;refresher=uas"),
                       body=OFFER)
    bye = in_dialog("BYE", 5, "z9hG4bK-bye1")
    s = {
        "call_udp": script(u(0, invite()), "a0", u(0, ack), u(0, info), "p0 0", "W1000",
                           u(0, reinvite), "p0 0", u(0, reack), u(0, update), "p0 0", "W500",
                           u(0, bye)),
        "call_tcp": script(t(0, invite().replace(b"/UDP", b"/TCP")), "r0", "W2000", "a0",
                           t(0, ack.replace(b"/UDP", b"/TCP")), "W5000", "h0", "W1000"),
        "cancel": script(u(1, invite(peer="198.51.100.7:5060")), "r0", "W200",
                         u(1, request("CANCEL", "sip:1000@192.0.2.1", 1, "z9hG4bK-1",
                                      peer="198.51.100.7:5060")),
                         u(1, request("ACK", "sip:1000@192.0.2.1", 1, "z9hG4bK-1", to_tag="$T",
                                      peer="198.51.100.7:5060"))),
        "ack_timeout": script(u(0, invite()), "a0", "W1000", u(0, invite()), "W40000"),
        "reject_488": script(u(0, invite()), "x0 2", "W600",
                             u(0, request("ACK", "sip:1000@192.0.2.1", 1, "z9hG4bK-1", to_tag="$T"))),
        "session_timer": script(u(0, invite(extra=("Session-Expires: 90;refresher=uas",))), "a0",
                                u(0, ack), "W50000", u(0, response(200, "OK")), "W100000"),
        "late_offer": script(u(0, invite(body=b"")), "a0",
                             u(0, in_dialog("ACK", 1, "z9hG4bK-ack1",
                                            extra=("Content-Type: application/sdp",), body=ANSWER)),
                             "W1000", "h0", "W500", u(0, response(200, "OK"))),
        "outbound_call": script("o1 0", u(1, response(100, "Trying", to_tag="")),
                                u(1, response(407, "Proxy Authentication Required",
                                              extra=("Proxy-Authenticate: " + CHALLENGE,))),
                                u(1, response(180, "Ringing")),
                                u(1, response(200, "OK", extra=("Content-Type: application/sdp",),
                                              body=ANSWER)),
                                "W1000",
                                u(1, message("BYE sip:pinbridge@192.0.2.1:5060 SIP/2.0",
                                             ["Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-pb",
                                              "Max-Forwards: 70",
                                              "From: <sip:+15551234567@198.51.100.7:5060>;tag=peer1",
                                              "To: <sip:pinbridge@example.com>;tag=$F",
                                              "Call-ID: $I", "CSeq: 1 BYE"]))),
        "outbound_tcp_hangup": script("o1 1", t(1, response(183, "Session Progress",
                                                            extra=("Content-Type: application/sdp",),
                                                            body=ANSWER)),
                                      "h0", t(1, response(200, "OK")), "W70000"),
        "message": script("m0", u(0, response(401, "Unauthorized",
                                              extra=("WWW-Authenticate: " + CHALLENGE_SHA,))),
                          u(0, response(202, "Accepted"))),
        "register": script("g1 3600", u(1, response(401, "Unauthorized",
                                                    extra=("WWW-Authenticate: " + CHALLENGE,))),
                           u(1, response(200, "OK", extra=("Expires: 60",))), "W31000",
                           u(1, response(423, "Interval Too Brief", extra=("Min-Expires: 120",))),
                           "u0", u(1, response(200, "OK"))),
        "shutdown": script(u(0, invite()), u(2, invite(peer="[2001:db8::7]:5062",
                                                       call_id="call-2@x")),
                           "a0", u(0, ack), "a1", "s", u(0, response(200, "OK"))),
        "options_v6": script(u(2, STANDALONE["options"])),
        "tcp_segments": script(t(0, b"\r\n\r\n" + invite()[:100]), t(0, invite()[100:]), "a0",
                               t(0, invite(branch="z9hG4bK-big", call_id="big@x").replace(
                                   b"Content-Length: %d" % len(OFFER), b"Content-Length: 999999999"))),
    }
    for name, msg in torture().items():
        s[name] = u(0, msg)
    return s


def stream_seeds():
    m = STANDALONE
    stream = b"\r\n\r\n" + m["invite_sdp"] + m["ack"] + b"\r\n" + m["info_dtmf_relay"] + m["bye"]
    return {
        "one_byte_chunks": b"\x00" + stream,
        "mixed_chunks": b"\x04\x06\x1f\x00\xff" + stream,
        "compact_and_options": b"\x01\x3f" + m["compact_form"] + m["options"],
        "huge_content_length": b"\x00" + b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 999999999\r\n\r\nabc",
        "no_content_length": b"\x02\x10\x20" + m["message"].replace(b"Content-Length: 5\r\n", b""),
        "bad_content_length": b"\x00" + m["options"].replace(b"Content-Length: 0", b"Content-Length: -1") + m["bye"],
    }


# --------------------------------------------------------------------- SDP

def sdp_seeds():
    return {
        "offer": OFFER,
        "offer_v6_hold": OFFER_V6_HOLD,
        "answer": ANSWER,
        "lf_only": OFFER.replace(b"\r\n", b"\n"),
        "media_level_c_inactive": crlf("v=0\no=- 1 1 IN IP4 0.0.0.0\ns= \nt=0 0\n"
                                       "m=audio 5004 RTP/AVP 18 0\nc=IN IP4 0.0.0.0\n"
                                       "a=rtpmap:18 G729/8000\na=inactive\n"),
        "dynamic_pcmu_48k_events": crlf("v=0\no=fs 1 2 IN IP4 host.example.com\ns=FreeSWITCH\n"
                                        "c=IN IP4 host.example.com/127/2\nt=0 0\n"
                                        "m=audio 16384/2 RTP/AVP 102 9 0 101 100\n"
                                        "a=rtpmap:102 opus/48000/2\na=fmtp:102 useinbandfec=1\n"
                                        "a=rtpmap:100 telephone-event/48000\na=rtpmap:101 telephone-event/8000\n"
                                        "a=fmtp:101 0-15\na=ptime:40\na=recvonly\nb=AS:64\n"),
    }


# --------------------------------------------------------------------- pcap

def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def udp_payloads(data):
    """(time in seconds, UDP payload) of a classic pcap or pcapng capture on
    Ethernet, Linux SLL or SLL2 (what the DTMF fixtures use)."""
    out = []

    def frame(link, ts, pkt):
        if link == 1:
            off, eth = 14, struct.unpack(">H", pkt[12:14])[0]
            while eth == 0x8100:
                eth = struct.unpack(">H", pkt[off + 2:off + 4])[0]
                off += 4
        elif link == 113:
            off, eth = 16, struct.unpack(">H", pkt[14:16])[0]
        elif link == 276:
            off, eth = 20, struct.unpack(">H", pkt[0:2])[0]
        else:
            return
        if eth != 0x0800 or len(pkt) < off + 28:
            return
        ihl = (pkt[off] & 0xF) * 4
        if pkt[off + 9] != 17:
            return
        udp = off + ihl
        length = struct.unpack(">H", pkt[udp + 4:udp + 6])[0]
        out.append((ts, pkt[udp + 8:udp + length]))

    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        link = struct.unpack(e + "I", data[20:24])[0]
        pos = 24
        while pos + 16 <= len(data):
            sec, frac, incl, _ = struct.unpack(e + "IIII", data[pos:pos + 16])
            frame(link, sec + frac / (1e9 if nanos else 1e6), data[pos + 16:pos + 16 + incl])
            pos += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        pos, links, e = 0, [], "<"
        while pos + 12 <= len(data):
            if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
                e = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                links = []
            kind, length = struct.unpack(e + "II", data[pos:pos + 8])
            body = data[pos + 8:pos + length - 4]
            if kind == 1:
                # Link type, and the time resolution (if_tsresol, option 9).
                link, units = struct.unpack(e + "H", body[0:2])[0], 1e6
                opt = 8
                while opt + 4 <= len(body):
                    code, olen = struct.unpack(e + "HH", body[opt:opt + 4])
                    if code == 0:
                        break
                    if code == 9 and olen >= 1:
                        r = body[opt + 4]
                        units = 2.0 ** (r & 0x7F) if r & 0x80 else 10.0 ** r
                    opt += 4 + (olen + 3) // 4 * 4
                links.append((link, units))
            elif kind == 6:
                iface, hi, lo, incl = struct.unpack(e + "IIII", body[0:16])
                link, units = links[iface]
                frame(link, ((hi << 32) | lo) / units, body[20:20 + incl])
            pos += length
    return out


def capture_seeds():
    out = {}
    for name in sorted(os.listdir(DTMF)):
        if name.endswith((".pcap", ".pcapng")):
            out[name.replace(".", "_")] = read_file(os.path.join(DTMF, name))[:MAX_CAPTURE_SEED]
    # One small WAV (the detector's other input), cut like the captures.
    out["wav_159D"] = read_file(os.path.join(DTMF, "gen_inband_159D_16k.wav"))[:MAX_CAPTURE_SEED]
    return out


def rtp_seeds():
    """rtp_dtmf inputs: mode byte, telephone-event payload type, then
    (gap_ms u16, len u16, packet) records from the DTMF captures."""
    out = {}
    modes = {"auto": 0, "rfc4733": 1, "inband": 2}
    for name in sorted(os.listdir(DTMF)):
        if not name.endswith((".pcap", ".pcapng")):
            continue
        packets = [(ts, p) for ts, p in udp_payloads(read_file(os.path.join(DTMF, name)))
                   if len(p) >= 12 and p[0] >> 6 == 2 and not 72 <= (p[1] & 0x7F) <= 76]
        if not packets:
            continue
        # The telephone-event payload type: the dynamic one in the capture.
        dynamic = sorted({p[1] & 0x7F for _, p in packets if p[1] & 0x7F >= 96})
        te = dynamic[0] if dynamic else 101
        mode = modes["inband"] if "inband" in name else modes["auto"]
        # Keep the packets around the first telephone-event (or the start).
        first = next((i for i, (_, p) in enumerate(packets) if p[1] & 0x7F == te), 0)
        start = max(0, first - 10)
        chosen = packets[start:start + MAX_RTP_PACKETS]
        if "inband" in name:
            chosen = packets[:MAX_RTP_PACKETS]
        seed = bytes([mode, te])
        last = chosen[0][0]
        for ts, p in chosen:
            gap = max(0, min(65535, int(round((ts - last) * 1000))))
            last = ts
            seed += struct.pack(">HH", gap, len(p)) + p
        out[name.rsplit(".", 1)[0]] = seed
    return out


def rtp_receiver_seeds():
    """rtp_receiver inputs: codec payload type (bit 7: PCMA), telephone-event
    payload type (bit 7: none), then (gap u16, source u8, len u16, packet)
    records. gap: microseconds, or milliseconds with the top bit; source:
    bits 0-1 the sender, bit 7 renegotiate first (SDP address in bits 2-3,
    none with bit 6), bit 5 take a loss interval."""
    ms = lambda n: 0x8000 | n

    def rtp(pt, seq, ts, ssrc, payload=b"\xff" * 160, marker=False):
        return struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                           ts & 0xFFFFFFFF, ssrc) + payload

    def seed(codec_pt, te_pt, records):
        out = bytes([codec_pt, te_pt])
        for gap, source, packet in records:
            out += struct.pack(">HBH", gap, source, len(packet)) + packet
        return out

    def stream(first_seq, n, ssrc=0x1234, first_ts=0, skip=(), source=0, pt=0):
        return [(ms(20), source, rtp(pt, first_seq + i, first_ts + 160 * i, ssrc, marker=i == 0))
                for i in range(n) if i not in skip]

    out = {}
    # Negotiated, then a steady PCMU stream from the SDP address.
    out["steady"] = seed(0, 101, [(0, 0x80, rtp(0, 1, 0, 7))] + stream(2, 40))
    # Loss, reordering and a duplicate, from behind NAT, with intervals.
    recs = [(0, 0x81, rtp(0, 100, 0, 9))] + stream(101, 30, ssrc=9, skip=(5, 6, 20), source=1)
    recs[10], recs[11] = recs[11], recs[10]
    recs.insert(15, recs[14])
    recs = [(g, s | (0x20 if i % 10 == 9 else 0), p) for i, (g, s, p) in enumerate(recs)]
    out["loss_reorder_dup"] = seed(0x80 | 8, 101, recs)
    # Sequence wrap, an SSRC change mid-stream and a restart after a jump.
    recs = [(0, 0x80, rtp(0, 65530, 0, 1))] + stream(65531, 12, ssrc=1)
    recs += stream(9000, 10, ssrc=2, first_ts=5000)
    recs += [(ms(20), 0, rtp(0, 40000, 0, 2)), (ms(20), 0, rtp(0, 40001, 160, 2))]
    recs += stream(40002, 5, ssrc=2, first_ts=320)
    out["wrap_ssrc_resync"] = seed(0, 0x80, recs)
    # Media before negotiation, RTCP, junk, a DTMF press, another sender,
    # jittery arrivals (microsecond gaps) and a re-INVITE to a new address.
    rr = struct.pack(">BBHI", 0x81, 201, 7, 0x1234) + b"\x00" * 24
    sr = struct.pack(">BBHI", 0x80, 200, 6, 0x1234) + b"\x00" * 20
    press = [rtp(101, 20 + k, 3200, 0x1234, struct.pack(">BBH", 5, 0x0A | (0x80 if k >= 3 else 0),
                                                        160 * (k + 1)), marker=k == 0)
             for k in range(6)]
    recs = [(0, 0, rtp(0, 1, 0, 0x1234)), (100, 0x80, rr), (0, 0, b"\x80\x00\x01"),
            (0, 0, b"\x40" + b"\x00" * 20), (0, 0, rtp(13, 2, 160, 0x1234, b"\x28"))]
    recs += [(ms(20) if i % 3 else 19_000 + 400 * i, 0, rtp(0, 3 + i, 320 + 160 * i, 0x1234))
             for i in range(15)]
    recs += [(ms(20), 0, p) for p in press]
    recs += [(ms(20), 2, rtp(0, 500, 0, 0x9999))]
    recs += [(ms(20), 0x80 | 0x08 | 2, rtp(0, 30, 8000, 0x1234))] + stream(31, 5, ssrc=0x1234,
                                                                          first_ts=8160, source=2)
    recs += [(ms(20), 0x80 | 0x40, sr)]
    out["rtcp_junk_dtmf_nat_reinvite"] = seed(0, 101, recs)
    # A real caller's packets (baresip pressing 1234#), as captured.
    for name in ("baresip_1234hash", "gen_rfc4733_1111"):
        path = next((os.path.join(DTMF, f) for f in sorted(os.listdir(DTMF))
                     if f in (name + ".pcap", name + ".pcapng")), None)
        if path is None:
            continue
        packets = [(ts, p) for ts, p in udp_payloads(read_file(path))
                   if len(p) >= 8 and p[0] >> 6 == 2][:MAX_RTP_PACKETS]
        if not packets:
            continue
        dynamic = sorted({p[1] & 0x7F for _, p in packets if 96 <= p[1] & 0x7F <= 127})
        te = dynamic[0] if dynamic else 101
        recs, last = [], packets[0][0]
        for i, (ts, p) in enumerate(packets):
            gap = max(0, min(0x7FFF, int(round((ts - last) * 1000))))
            last = ts
            recs.append((ms(gap), 0x80 if i == 0 else 0, p))
        out["capture_" + name] = seed(0, te, recs)
    return out


# --------------------------------------------------------------------- INFO and digest

def info_digest_seeds():
    return {
        "relay": b"application/dtmf-relay\nSignal=5\r\nDuration=160\r\n",
        "relay_lf_spaces": b"Application/DTMF-Relay; charset=x\n signal = # \n duration = abc\nfoo=bar\n",
        "bare": b"application/dtmf\n11",
        "bare_key": b"application/dtmf\n * ",
        "challenge_md5": CHALLENGE.encode(),
        "challenge_sha_userhash": b"\x01" + CHALLENGE_SHA.encode(),
        "two_challenges": (CHALLENGE + ", " + CHALLENGE_SHA + '\nBasic realm="x"\nDigest realm="r", nonce=abc/=, stale=TRUE, algorithm=SHA-512-256-sess').encode(),
    }


# --------------------------------------------------------------------- config

def config_seeds():
    default = read_file(os.path.join(ROOT, "src", "config", "default.toml"))
    full = b'''[sip]
listen = "127.0.0.1:5080"
transports = ["udp"]
public_address = "203.0.113.7"
max_calls = 100
min_session_expires = 120
answer_delay_ms = 500
t1_ms = 250
t2_ms = 4000
t4_ms = 5000

[rtp]
port_range = "31000-31999"
inactivity_timeout_secs = 0
codecs = ["PCMA"]

[log]
format = "json"
level = "pinbridge=debug,info"

[prompts]
welcome = "prompts/welcome.wav"

[dtmf]
mode = "rfc2833"

[security]
caller_failures = 5
caller_window_secs = 900
ip_failures = 10
ip_window_secs = 900
conference_failures = 20
conference_window_secs = 60
lockout_secs = 900
attack_delay_ms = 3000
trusted_ips = ["192.0.2.1", "2001:db8::1"]

[keypad_test]
numbers = ["9999"]
idle_timeout_secs = 10

[lobby]
numbers = ["7777"]
pin_length = 6
max_attempts = 3

[store]
path = "pinbridge.db"

[verify]
code_length = 6
ttl_secs = 600
max_checks = 5
max_sends_per_hour = 5
key_file = "pinbridge.key"
channels = ["webhook", "voice", "log"]

[identity]
default_country_code = "44"
trusted_proxies = ["192.0.2.1"]

[http]
listen = "127.0.0.1:8080"
api_keys = ["change-me-to-a-long-random-key", "sha256:0000000000000000000000000000000000000000000000000000000000000000"]
max_body_bytes = 16384
join_page = true
dialin_code_ttl_secs = 300
cookie_key_file = "cookie.key"

[delivery.webhook]
url = "https://sms-gateway.internal.example/send"
secret = "a long random string shared with the gateway"
timeout_secs = 10
retries = 3

[delivery.email]
host = "smtp.example.com"
port = 465
security = "tls"
username = "otp@example.com"
password = "smtp-password"
from = "Conference line <otp@example.com>"
ca_file = "ca.pem"

[delivery.log]
enabled = true

[trunk]
proxy = "sip.trunk.example.net:5070"
transport = "tcp"
username = "pinbridge"
password = "trunk-password"
domain = "trunk.example.net"
from_user = "+442079460958"
register = true
register_expires = 600

[[conference]]
name = "main"
numbers = ["1000", "+15551234567"]
pin = "123456"
moderator_pin = "654321"
pin_length = 6
first_digit_timeout_secs = 5
inter_digit_timeout_secs = 5
max_attempts = 3
max_participants = 250
require_moderator = true
end_when_moderator_leaves = true
max_talkers = 3
dtmf_mode = "inband"

[conference.prompts]
hold_music = "music.wav"

[[conference]]
name = "board"
numbers = ["7000"]
flow = "otp"
otp_channels = ["voice", "sip-message"]

[[conference]]
name = "audit"
numbers = ["*"]
flow = "pin+otp"
pin_hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"

[[participant]]
name = "Alice Example"
username = "alice"
phone = "+12015550123"
email = "alice@example.com"
moderator = true
conferences = ["board", "audit"]
channels = ["webhook", "email"]
name_prompt = "alice.wav"

[[participant]]
name = "Bob"
phone = "020 7946 0958"
'''
    return {
        "default": default,
        "full": full,
        "minimal": b'[[conference]]\nname = "a"\n',
        "test_server": b'[sip]\nlisten = "127.0.0.1:5070"\n\n[rtp]\nport_range = "40000-40100"\n\n[prompts]\n\n'
                       b'[[conference]]\nname = "main"\nnumbers = ["*"]\n',
        "bad_codec": default.replace(b'"PCMA"]', b'"G729"]'),
        "unknown_key": default + b"\n[sip.extra]\nfoo = 1\n",
    }


def room_media_seeds():
    """room_media inputs: rules byte, talkers byte, then ops (see the
    target's doc comment): the flows a room goes through."""

    def join(leg, moderator=False, pcma=False, hold=False):
        return bytes([0x00 | leg, (1 if moderator else 0) | (2 if pcma else 0) | (4 if hold else 0)])

    def tick(ms=20):
        return bytes([0x30]) + struct.pack(">H", 0x8000 | ms)

    def audio(leg, sample, step=0):
        return bytes([0x60 | leg, sample, step])

    def event(leg, ev, end, duration_hi=1):
        return bytes([0x70 | leg, ev, 0x8a if end else 0x0a, duration_hi])

    def info(leg, key):
        return bytes([0x40 | leg, "0123456789*#ABCD".index(key)])

    def talk(legs, ticks):
        out = b""
        for _ in range(ticks):
            for leg, sample in legs:
                out += audio(leg, sample)
            out += tick()
        return out

    seeds = {}
    seeds["three_talkers"] = (
        bytes([7 << 2, 2]) + join(0) + join(1) + join(2, pcma=True)
        + talk([(0, 0xA0), (1, 0xB0), (2, 0xC0)], 40)
    )
    seeds["moderator_wait_and_end"] = (
        bytes([0x03 | (7 << 2), 2]) + join(1) + join(2) + talk([(1, 0xA0)], 15)
        + join(3, moderator=True) + talk([(1, 0xA0), (3, 0xC0)], 15)
        + bytes([0x13]) + talk([(1, 0xA0)], 15)
    )
    keys = b""
    for key in "*1":
        keys += info(0, key) + tick()
    keys += talk([(0, 0xA0), (1, 0xB0)], 5)
    for ev in (10, 2):
        keys += event(0, ev, False) + event(0, ev, True, 3) + event(0, ev, True, 3) + tick()
    keys += talk([(1, 0xB0)], 10) + info(0, "*") + tick() + info(0, "8") + talk([(1, 0xB0)], 10)
    seeds["menu_keys"] = bytes([7 << 2, 2]) + join(0) + join(1) + talk([(0, 0xA0), (1, 0xB0)], 10) + keys
    seeds["full_room"] = bytes([0, 2]) + join(0) + join(1) + join(2, moderator=True) + talk([(0, 0xA0)], 10)
    seeds["inactivity"] = bytes([0x20 | (7 << 2), 2]) + join(0) + join(1) + talk([(0, 0xA0)], 60)
    seeds["reoffer_and_hold"] = (
        bytes([7 << 2, 2]) + join(0) + join(1) + talk([(0, 0xA0), (1, 0xB0)], 5)
        + bytes([0x51, 0x02]) + talk([(0, 0xA0)], 5)
        + bytes([0x51, 0x04 | 0x08]) + talk([(0, 0xA0), (1, 0xB0)], 5)
        + bytes([0x50, 0x01 | (2 << 3)]) + talk([(0, 0xA0)], 5)
    )
    seeds["late_ticks"] = bytes([7 << 2, 2]) + join(0) + join(1) + tick(200) + bytes([0x30, 0x13, 0x88]) + tick(20)
    rtcp = bytes([0x80, 201, 0, 1, 0, 0, 0, 1])
    seeds["garbage_and_other_sources"] = (
        bytes([7 << 2, 2]) + join(0) + join(1)
        + bytes([0x20, len(rtcp)]) + rtcp + bytes([0x20, 3, 1, 2, 3])
        + bytes([0x68, 0xA0, 0]) + talk([(0, 0xA0)], 5) + bytes([0x10, 0x10, 0x00]) + join(0) + tick()
    )
    return seeds


def write(target, seeds):
    """Replaces the generated seeds of `target`; regress_* files (inputs
    that once crashed a target) are kept."""
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith("regress_"):
            os.remove(os.path.join(d, name))
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    datagrams = dict(STANDALONE)
    datagrams.update(torture())
    write("sip_datagram", datagrams)
    streams = stream_seeds()
    for name, msg in torture().items():
        streams[name] = b"\x00" + msg if len(msg) < 600 else b"\x03\x0f\x40\xc8" + msg
    write("sip_stream", streams)
    write("ua_sequence", ua_scripts())
    write("sdp", sdp_seeds())
    write("rtp_dtmf", rtp_seeds())
    write("rtp_receiver", rtp_receiver_seeds())
    write("info_digest", info_digest_seeds())
    write("pcap", capture_seeds())
    write("config", config_seeds())
    write("room_media", room_media_seeds())
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(SEEDS) for f in fs)
    print("seeds written to %s: %d bytes" % (SEEDS, total), file=sys.stderr)


if __name__ == "__main__":
    main()
