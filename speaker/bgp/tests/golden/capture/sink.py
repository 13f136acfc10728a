#!/usr/bin/env python3
"""Holds a BGP session open so a router sends its table to it (captured with tcpdump).
Usage: sink.py LOCAL REMOTE v4|v6 ASN SECONDS
Opens a session as ASN (4-octet AS capability, MP for the family), answers with KEEPALIVEs for
SECONDS, then sends Cease and closes. Prints the type of each message received."""
import socket, struct, sys, time
local, remote, fam, asn, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
afi = 1 if fam == 'v4' else 2
def msg(kind, body): return b'\xff' * 16 + struct.pack('>HB', 19 + len(body), kind) + body
caps = bytes([1, 4, 0, afi, 0, 1]) + bytes([2, 0]) + bytes([65, 4]) + struct.pack('>I', asn)
two = asn if asn < 65536 else 23456
opn = struct.pack('>BHH4s', 4, two, 90, socket.inet_aton('198.51.100.3')) + bytes([len(caps) + 2, 2, len(caps)]) + caps
s = socket.socket(socket.AF_INET if fam == 'v4' else socket.AF_INET6, socket.SOCK_STREAM)
s.bind((local, 0)); s.connect((remote, 179))
s.sendall(msg(1, opn))
buf, kinds, end = b'', [], time.time() + seconds
s.settimeout(0.5)
while time.time() < end:
    try:
        data = s.recv(65536)
        if not data: break
        buf += data
    except socket.timeout:
        pass
    while len(buf) >= 19 and len(buf) >= struct.unpack('>H', buf[16:18])[0]:
        l = struct.unpack('>H', buf[16:18])[0]
        kinds.append(buf[18]); buf = buf[l:]
        if kinds[-1] in (1, 4): s.sendall(msg(4, b''))
print('received', kinds)
s.sendall(msg(3, bytes([6, 2])))
s.close()
