#!/usr/bin/env python3
"""Write unicode lists (one U+XXXX per line) for the subsets.
l1.txt  : ASCII + Latin-1 + CJK punct + fullwidth forms + GB2312 level-1 hanzi (3755)
gb2312.txt : same base + all GB2312 hanzi (level 1 + level 2 = 6763)
"""
import sys, os
out = sys.argv[1] if len(sys.argv) > 1 else "."
base = set(range(0x20, 0x7F))            # ASCII printable
base |= set(range(0xA0, 0x100))          # Latin-1 supplement (digits/punct/symbols)
base |= set(range(0x3000, 0x3040))       # CJK symbols & punctuation (〔〕 etc)
base |= set(range(0xFF00, 0xFFF0))       # half/full-width forms
base |= {0x2010,0x2013,0x2014,0x2015,0x2016,0x2018,0x2019,0x201C,0x201D,0x2026,0x2030,0x2103,0x00B7,0x2116,0x2190,0x2191,0x2192,0x2193,0x2264,0x2265,0x00D7,0x00F7,0x2032,0x2033,0x2022,0x20AC,0x2212}
# characters the application needs regardless of GB2312 level (闵 U+95F5 is level 2!)
EXTRA = ("浦东新区黄浦区徐汇区长宁区静安区普陀区虹口区杨浦区闵行区宝山区嘉定区金山区"
         "松江区青浦区奉贤区崇明区低一般较高高风险〔〕号罚")
base |= {ord(c) for c in EXTRA}
l1, l2 = set(), set()
for cp in range(0x4E00, 0xA000):
    try:
        b = chr(cp).encode("gb2312")
    except UnicodeEncodeError:
        continue
    if 0xB0 <= b[0] <= 0xD7: l1.add(cp)
    elif 0xD8 <= b[0] <= 0xF7: l2.add(cp)
assert len(l1) == 3755, len(l1)
assert len(l1) + len(l2) == 6763, len(l1) + len(l2)
for name, s in (("l1.txt", base | l1), ("gb2312.txt", base | l1 | l2)):
    with open(os.path.join(out, name), "w") as f:
        f.write("\n".join("U+%04X" % c for c in sorted(s)) + "\n")
    print(name, len(s))
