#!/usr/bin/env bash
# Regenerates the committed seed corpora under fuzz/seeds/<target>/ from nothing but the ffmpeg
# CLI and hand-written bytes (nothing is downloaded). The outputs are tiny on purpose (a few
# hundred bytes each): libFuzzer mutates small inputs far faster, and the decoders only need a
# valid header and a frame or two to show the fuzzer their paths.
#   bash fuzz/scripts/make-seeds.sh        (needs ffmpeg with libx264, libvpx, libopus, libwebp, libtheora, libmp3lame)
set -euo pipefail
cd "$(dirname "$0")/.."
S=seeds
rm -rf "$S"
mkdir -p "$S"/{job_parse,sniff,photo,probe_av}
# bitexact + no metadata: no encoder/version strings, so the seeds are smaller and reproducible.
ff() { local out="${*: -1}"; ffmpeg -nostdin -hide_banner -loglevel error -y "${@:1:$#-1}" -fflags +bitexact -map_metadata -1 "$out"; }

# ---- photo: every supported still format, small, a few pixel layouts each -----------------
P=$S/photo
ff -f lavfi -i testsrc2=s=16x12:d=1 -frames:v 1 -q:v 20 "$P/rgb.jpg"
ff -f lavfi -i testsrc2=s=16x12:d=1 -frames:v 1 -q:v 20 -pix_fmt gray "$P/gray.jpg"
ff -f lavfi -i testsrc2=s=17x9:d=1 -frames:v 1 -q:v 20 -pix_fmt yuvj444p "$P/444.jpg"
# The same JPEG with an Exif APP1 carrying orientation 6 (rotate 90°), written by hand.
python3 - "$P/rgb.jpg" "$P/exif6.jpg" <<'PY'
import struct, sys
src = open(sys.argv[1], 'rb').read()
tiff = b'MM\x00\x2a' + struct.pack('>I', 8) + struct.pack('>H', 1) \
     + struct.pack('>HHII', 0x0112, 3, 1, 6 << 16) + struct.pack('>I', 0)
app1 = b'Exif\x00\x00' + tiff
open(sys.argv[2], 'wb').write(src[:2] + b'\xff\xe1' + struct.pack('>H', len(app1) + 2) + app1 + src[2:])
PY
ff -f lavfi -i "color=c=red@0.5:s=16x12,format=rgba" -frames:v 1 "$P/rgba.png"
ff -f lavfi -i testsrc2=s=16x12:d=1 -frames:v 1 -pix_fmt pal8 "$P/pal8.png"
ff -f lavfi -i testsrc2=s=12x16:d=1 -frames:v 1 -pix_fmt gray16be "$P/gray16.png"
ff -f lavfi -i testsrc2=s=16x12:r=2:d=1 -frames:v 2 "$P/anim.gif"
ff -f lavfi -i testsrc2=s=16x12:d=1 -frames:v 1 -c:v libwebp -quality 10 "$P/lossy.webp"
ff -f lavfi -i testsrc2=s=16x12:d=1 -frames:v 1 -c:v libwebp -lossless 1 "$P/lossless.webp"
ff -f lavfi -i "color=c=blue@0.5:s=16x12,format=rgba" -frames:v 1 -c:v libwebp -quality 10 "$P/alpha.webp"
ff -f lavfi -i testsrc2=s=8x6:d=1 -frames:v 1 "$P/rgb24.bmp"
ff -f lavfi -i testsrc2=s=8x6:d=1 -frames:v 1 -pix_fmt pal8 "$P/pal8.bmp"
ff -f lavfi -i "color=c=green@0.5:s=8x6,format=bgra" -frames:v 1 "$P/bgra.bmp"

# ---- probe_av: each demuxer the pipeline forces, a tenth of a second each ------------------
A=$S/probe_av
V="-f lavfi -i testsrc2=s=16x16:r=10:d=0.2"
AU="-f lavfi -i sine=f=440:r=8000:d=0.1"
NOSEI="-bsf:v filter_units=remove_types=6"   # drop x264's settings SEI (~600 bytes of text)
ff $V $AU -c:v libx264 -preset ultrafast -crf 51 $NOSEI -c:a aac -b:a 8k -ac 1 -shortest "$A/h264_aac.mp4"
ff $V -c:v libx264 -preset ultrafast -crf 51 $NOSEI "$A/rot90.mov"
# A 90° display matrix in the video track's tkhd (what phones write), patched in by hand.
python3 - "$A/rot90.mov" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
ident = struct.pack('>9i', 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
rot90 = struct.pack('>9i', 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
at = b.index(b'tkhd'); at = b.index(ident, at)
b[at:at + 36] = rot90
open(sys.argv[1], 'wb').write(bytes(b))
PY
ff $V -c:v mpeg4 -q:v 31 "$A/mpeg4.3gp"
ff $V $AU -c:v libvpx -b:v 10k -c:a libopus -b:a 6k -shortest "$A/vp8_opus.webm"
ff $AU -c:a libopus -b:a 6k "$A/opus_only.webm"
ff $V -c:v libx264 -preset ultrafast -crf 51 $NOSEI "$A/h264.mkv"
ff $AU -c:a flac "$A/flac.mka"
ff $V -c:v mpeg4 -q:v 31 "$A/mpeg4.avi"
# The AVI muxer reserves 4 KB of JUNK for an OpenDML index; drop every JUNK chunk (sizes fixed up).
python3 - "$A/mpeg4.avi" <<'PY'
import struct, sys
def walk(b):
    out, i = b'', 0
    while i + 8 <= len(b):
        cid, size = b[i:i+4], struct.unpack('<I', b[i+4:i+8])[0]
        body = b[i+8:i+8+size]; i += 8 + size + (size & 1)
        if cid == b'JUNK':
            continue
        if cid in (b'LIST', b'RIFF'):
            body = body[:4] + walk(body[4:])
        out += cid + struct.pack('<I', len(body)) + body + (b'\0' if len(body) & 1 else b'')
    return out
data = walk(open(sys.argv[1], 'rb').read()); open(sys.argv[1], 'wb').write(data)
PY
ff $AU -c:a libopus -b:a 6k "$A/opus.ogg"
ff $AU -c:a libmp3lame -b:a 8k "$A/audio.mp3"
ff $AU -c:a aac -b:a 8k "$A/aac.m4a"
ff $AU -c:a aac -b:a 8k -f adts "$A/audio.aac"
ff -f lavfi -i sine=f=440:r=8000:d=0.02 -c:a pcm_s16le "$A/pcm.wav"
ff $AU -c:a flac "$A/audio.flac"
# FLAC's muxer writes an 8 KB PADDING block (and a SEEKTABLE); keep the other metadata blocks.
python3 - "$A/audio.flac" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read(); i = 4; blocks = []
while True:
    h = b[i]; n = int.from_bytes(b[i+1:i+4], 'big'); blocks.append((h & 0x7f, b[i+4:i+4+n])); i += 4 + n
    if h & 0x80:
        break
keep = [(t, x) for t, x in blocks if t not in (1, 3)]
out = b'fLaC' + b''.join(bytes([t | (0x80 if k == len(keep) - 1 else 0)]) + len(x).to_bytes(3, 'big') + x for k, (t, x) in enumerate(keep))
open(sys.argv[1], 'wb').write(out + b[i:])
PY
# AMR-NB (12.2 kbit/s frames: TOC 0x3C + 31 bytes) and AMR-WB magic, by hand: no encoder needed.
python3 -c "import sys; sys.stdout.buffer.write(b'#!AMR\n' + (b'\x3c' + bytes(31)) * 5)" > "$A/nb.amr"
python3 -c "import sys; sys.stdout.buffer.write(b'#!AMR-WB\n' + (b'\x44' + bytes(60)) * 3)" > "$A/wb.amr"

# ---- sniff: the first bytes of every seed above, plus hand-made magic the pipeline refuses ---
N=$S/sniff
for f in "$P"/* "$A"/*; do head -c 96 "$f" > "$N/$(basename "$f")"; done
# Theora/Vorbis Ogg first pages, HEIC/AVIF/JXL/TIFF headers and ID3+MP3 frames, by hand.
python3 - "$N" <<'PY'
import struct, sys, os
d = sys.argv[1]
def w(name, b): open(os.path.join(d, name), 'wb').write(b)
def ogg_page(packet):
    return b'OggS\x00\x02' + bytes(8) + struct.pack('<I', 1) + struct.pack('<I', 0) + bytes(4) + bytes([1, len(packet)]) + packet
w('theora.ogv', ogg_page(b'\x80theora\x03\x02\x01' + bytes(33)))
w('vorbis.ogg', ogg_page(b'\x01vorbis' + bytes(23)))
w('flac.oga', ogg_page(b'\x7fFLAC\x01\x00' + bytes(20)))
w('speex.spx', ogg_page(b'Speex   1.2' + bytes(20)))
def ftyp(major, compat=()):
    body = major + bytes(4) + b''.join(compat)
    return struct.pack('>I', 8 + len(body)) + b'ftyp' + body
w('heic.heic', ftyp(b'heic', [b'mif1', b'heic']) + struct.pack('>I', 8) + b'meta')
w('mif1.heif', ftyp(b'mif1', [b'mif1']))
w('avif.avif', ftyp(b'avif', [b'avif', b'mif1']))
w('m4a_brand.m4a', ftyp(b'M4A ', [b'M4A ', b'isom']))
w('3gp_brand.3gp', ftyp(b'3gp4', [b'3gp4']))
w('qt.mov', ftyp(b'qt  ', [b'qt  ']) + struct.pack('>I', 8) + b'moov')
w('jxl_bare.jxl', b'\xff\x0a' + bytes(14))
w('jxl_box.jxl', b'\x00\x00\x00\x0cJXL \r\n\x87\n' + ftyp(b'jxl ', [b'jxl ']))
w('le.tiff', b'II*\x00' + struct.pack('<I', 8) + bytes(8))
w('be.tiff', b'MM\x00*' + struct.pack('>I', 8) + bytes(8))
w('rf64.wav', b'RF64' + b'\xff' * 4 + b'WAVEds64' + bytes(8))
id3 = b'ID3\x04\x00\x00' + bytes([0, 0, 0, 10]) + bytes(10)
frame = b'\xff\xfb\x90\x64' + bytes(413)
w('id3.mp3', id3 + frame + frame[:8])
w('id3_adts.aac', id3 + b'\xff\xf1\x50\x80\x02\x1f\xfc' + bytes(9) + b'\xff\xf1\x50\x80\x02\x1f\xfc')
PY

# ---- job_parse: the contract's example, its variants, and near misses ----------------------
J=$S/job_parse
cat > "$J/media.json" <<'JSON'
{"schema":"mediagate.job.v1","job_id":"j-01HZX3","kind":"media","message":{"message_id":"m-123","conversation_id":"c-9","first_contact":false},"sender":{"account_id":"a-1","age_band":"adult"},"recipients":[{"account_id":"a-2","age_band":"16_17"},{"account_id":"a-3","age_band":"adult","nudity_filter":true}],"items":[{"item_id":"0","source":{"bucket":"incoming","key":"u/a-1/8d2e.jpg"},"declared_type":"image/jpeg"}],"caption":"hi"}
JSON
cat > "$J/voice.json" <<'JSON'
{"schema":"mediagate.job.v1","job_id":"j-2","kind":"voice_note","message":{"message_id":"m-2","conversation_id":"c-2","first_contact":true},"sender":{"account_id":"a-1","age_band":"adult"},"recipients":[{"account_id":"a-2","age_band":"adult"}],"items":[{"item_id":"v","source":{"bucket":"incoming","key":"v.ogg"}}],"reprocess":true,"revision":3}
JSON
cat > "$J/under16_two_buckets.json" <<'JSON'
{"schema":"mediagate.job.v1","job_id":"j.3","kind":"media","message":{"message_id":"m","conversation_id":"c","first_contact":true},"sender":{"account_id":"s","age_band":"under_16"},"recipients":[{"account_id":"r","age_band":"adult","nudity_filter":false}],"items":[{"item_id":"0","source":{"bucket":"incoming","key":"a"}},{"item_id":"1","source":{"bucket":"other","key":"b"}}]}
JSON
cat > "$J/bad_ids.json" <<'JSON'
{"schema":"mediagate.job.v1","job_id":"../x","kind":"media","message":{"message_id":".m","conversation_id":"c/9"},"items":[{"item_id":"0"},{"item_id":"0"}]}
JSON
printf '{"schema":"mediagate.job.v2","job_id":"j-9"}' > "$J/other_schema.json"
printf '[1,2,{"job_id":"x"}]' > "$J/array.json"
printf '{"job_id":"j-1","schema":' > "$J/truncated.json"

for d in "$S"/*; do echo "$d: $(ls "$d" | wc -l) files, $(cat "$d"/* | wc -c) bytes"; done
