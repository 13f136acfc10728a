#!/usr/bin/env python3
"""Replays oxelb's golden UPDATEs to a real router over a real BGP session.
Usage: feed.py LOCAL REMOTE v4|v6 CHECK_CMD...
Opens a session as AS 64512 (4-octet AS capability, MP for the family), sends
oxelb-eor-<fam>, oxelb-update-<fam>, runs CHECK "announced", then oxelb-withdraw-<fam>, CHECK "withdrawn"."""
import os, socket, struct, subprocess, sys, time
G = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '')
local, remote, fam = sys.argv[1:4]
check = sys.argv[4:]
afi = 1 if fam == 'v4' else 2
hexf = lambda n: bytes.fromhex(open(G + n + '.hex').read().strip())
def msg(kind, body): return b'\xff' * 16 + struct.pack('>HB', 19 + len(body), kind) + body
caps = bytes([1, 4, 0, afi, 0, 1]) + bytes([2, 0]) + bytes([65, 4]) + struct.pack('>I', 64512)
opn = struct.pack('>BHH4s', 4, 64512, 90, socket.inet_aton('198.51.100.3')) + bytes([len(caps) + 2, 2, len(caps)]) + caps
fa = socket.AF_INET if fam == 'v4' else socket.AF_INET6
s = socket.socket(fa, socket.SOCK_STREAM)
s.bind((local, 0)); s.connect((remote, 179))
s.sendall(msg(1, opn))
buf = b''
def read_msgs():
    global buf
    s.settimeout(0.5)
    try:
        buf += s.recv(65536)
    except socket.timeout:
        pass
    out = []
    while len(buf) >= 19:
        l = struct.unpack('>H', buf[16:18])[0]
        if len(buf) < l: break
        out.append(buf[:l]); buf = buf[l:]
    return out
got = []
for _ in range(10):
    got += read_msgs()
    if any(m[18] == 1 for m in got): break
print('received', [m[18] for m in got])
assert any(m[18] == 1 for m in got), 'no OPEN'
assert not any(m[18] == 3 for m in got), 'NOTIFICATION: ' + str([m.hex() for m in got])
s.sendall(msg(4, b''))
time.sleep(1)
for name in ['oxelb-eor-' + fam, 'oxelb-update-' + fam]:
    s.sendall(hexf(name)); print('sent', name)
time.sleep(3)
for m in read_msgs():
    assert m[18] != 3, 'NOTIFICATION ' + m.hex()
    s.sendall(msg(4, b''))
print('--- after announce:'); print(subprocess.run(check, capture_output=True, text=True).stdout)
s.sendall(hexf('oxelb-withdraw-' + fam)); print('sent oxelb-withdraw-' + fam)
time.sleep(3)
for m in read_msgs():
    assert m[18] != 3, 'NOTIFICATION ' + m.hex()
print('--- after withdraw:'); print(subprocess.run(check, capture_output=True, text=True).stdout)
s.sendall(msg(3, bytes([6, 2])))  # Cease / Administrative Shutdown
s.close()
