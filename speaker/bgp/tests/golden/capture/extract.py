#!/usr/bin/env python3
"""Prints every BGP message in a pcap (Ethernet link type), per TCP direction, as hex.
Usage: extract.py file.pcap  -> lines "src>dst type len hex" in stream order."""
import struct, sys, ipaddress

def packets(path):
    data = open(path, 'rb').read()
    magic = struct.unpack('<I', data[:4])[0]
    endian = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
    linktype = struct.unpack(endian + 'I', data[20:24])[0]
    assert linktype == 1, f"linktype {linktype}"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + 'IIII', data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl

streams = {}   # (src, sport, dst, dport) -> {seq: payload}
order = []
for frame in packets(sys.argv[1]):
    ethertype = struct.unpack('>H', frame[12:14])[0]
    ip = frame[14:]
    if ethertype == 0x0800:
        ihl = (ip[0] & 0xf) * 4
        proto, src, dst = ip[9], ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
        total = struct.unpack('>H', ip[2:4])[0]
        seg = ip[ihl:total]
    elif ethertype == 0x86dd:
        proto, src, dst = ip[6], ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
        plen = struct.unpack('>H', ip[4:6])[0]
        seg = ip[40:40 + plen]
    else:
        continue
    if proto != 6:
        continue
    sport, dport, seq = struct.unpack('>HHI', seg[:8])
    doff = (seg[12] >> 4) * 4
    payload = seg[doff:]
    key = (str(src), sport, str(dst), dport)
    if key not in streams:
        streams[key] = {}
        order.append(key)
    if payload:
        streams[key].setdefault(seq, payload)

for key in order:
    segs = streams[key]
    if not segs:
        continue
    # Concatenate in sequence order (no wrap within these short captures); skip retransmissions.
    buf = b''
    nxt = None
    for seq in sorted(segs):
        p = segs[seq]
        if nxt is not None and seq < nxt:
            p = p[nxt - seq:]
        buf += p
        nxt = seq + len(segs[seq]) if nxt is None or seq + len(segs[seq]) > nxt else nxt
    i = 0
    while i + 19 <= len(buf):
        assert buf[i:i + 16] == b'\xff' * 16, "lost sync"
        length = struct.unpack('>H', buf[i + 16:i + 18])[0]
        msg = buf[i:i + length]
        print(f"{key[0]}:{key[1]}>{key[2]}:{key[3]} type={msg[18]} len={length} {msg.hex()}")
        i += length
