"""Counts the pixels of given colors in a PNG (8-bit RGB or RGBA, not interlaced), with only the
standard library: the HTML report's screenshot test asks whether a failing trial's diff lines
(their backgrounds) and its events timeline (its border) are on screen.

Usage: pngcount.py FILE NAME=RRGGBB... ; prints NAME=COUNT for each.
"""
import sys, zlib, struct
def pixels(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, w = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(line)); prev = line
    return w, h, bpp, out
w, h, bpp, rows = pixels(sys.argv[1])
want = {name: tuple(int(v[i:i + 2], 16) for i in (0, 2, 4)) for name, v in (a.split('=') for a in sys.argv[2:])}
counts = {k: 0 for k in want}
for row in rows:
    for x in range(w):
        px = tuple(row[x * bpp:x * bpp + 3])
        for k, v in want.items():
            if px == v: counts[k] += 1
print(' '.join(f'{k}={n}' for k, n in counts.items()))
