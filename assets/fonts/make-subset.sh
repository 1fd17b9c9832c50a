#!/usr/bin/env bash
# Rebuilds NotoSansCJKsc-Regular-gb2312.otf, the font `credit-risk report` draws its
# charts with: Noto Sans CJK SC Regular 2.004 (SIL OFL 1.1, see OFL.txt) cut down to
# ASCII, Latin-1, CJK punctuation, full-width forms and the 6,763 hanzi of GB2312.
# Source: Debian bookworm package fonts-noto-cjk 1:20220127+repack1-1, file
# NotoSansCJK-Regular.ttc, face 2 ("Noto Sans CJK SC"). Needs apt-get (download only)
# and python3 (fonttools in a venv).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${WORK:-/tmp/fontsrc}"
VENV="${VENV:-/tmp/fontvenv}"
mkdir -p "$WORK" && cd "$WORK"
ls fonts-noto-cjk_*_all.deb >/dev/null 2>&1 || apt-get download 'fonts-noto-cjk=1:20220127+repack1-1'
mkdir -p x && dpkg-deb -x fonts-noto-cjk_*_all.deb x
SRC="$WORK/x/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
[ -x "$VENV/bin/pyftsubset" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q 'fonttools==4.68.0'; }
"$VENV/bin/python" "$HERE/gen_unicodes.py" "$WORK"
"$VENV/bin/pyftsubset" "$SRC" --font-number=2 --unicodes-file="$WORK/gb2312.txt" \
    --layout-features='' --no-hinting --desubroutinize --name-IDs='*' --notdef-outline \
    --output-file="$HERE/NotoSansCJKsc-Regular-gb2312.otf"
