"""Helpers for the audio tests: tiny Ogg/Vorbis files that decode to a lot of audio, and the peak
resident memory of a command."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import soundfile


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


CRC_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32 with polynomial 0x04C11DB7, not reflected, initial value 0."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def ogg_page(flags: int, granule: int, serial: int, sequence: int, packets: list[bytes]) -> bytes:
    """One Ogg page holding whole `packets`, each under 255 bytes."""
    lacing = bytes(len(p) for p in packets)
    head = b"OggS" + bytes([0, flags]) + struct.pack("<qIII", granule, serial, sequence, 0) + bytes([len(lacing)])
    page = head + lacing + b"".join(packets)
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def vorbis_silence(path: Path, seconds: float, channels: int, rate: int = 192_000) -> Path:
    """An Ogg/Vorbis file of `seconds` of silence with `channels` at `rate`, made in under a second.

    libvorbis encodes 64 channels at 192 kHz at about 15 M samples/s (30 s would take 25 s). Silence
    encodes to one packet repeated after the first two, so libvorbis encodes 0.1 s, that packet is
    repeated as often as `seconds` needs, and the pages are rebuilt (granule positions, sequence
    numbers, CRCs) the way libogg writes them: the result is byte for byte what libvorbis writes for
    the whole length, bar the random stream serial number (checked in test_memory.py).
    """
    buf = io.BytesIO()
    soundfile.write(buf, np.zeros((rate // 10, channels), np.float32), rate, format="OGG", subtype="VORBIS")
    data = buf.getvalue()
    pos, packets, partial, head_end, head_pages, serial = 0, [], b"", 0, 0, 0
    while pos < len(data):
        serial = struct.unpack("<I", data[pos + 14 : pos + 18])[0]
        lacing = data[pos + 27 : pos + 27 + data[pos + 26]]
        pos += 27 + len(lacing)
        for size in lacing:
            partial, pos = partial + data[pos : pos + size], pos + size
            if size < 255:
                packets.append(partial)
                partial = b""
        if not head_end:
            head_pages += 1
            if len(packets) >= 3:
                assert len(packets) == 3 and not partial, "the three Vorbis headers end a page"
                head_end = pos
    ident, audio = packets[0], packets[3:]
    short, long = 1 << (ident[28] & 15), 1 << (ident[28] >> 4)  # the stream's two block sizes
    assert len(set(audio[2:])) == 1 and len(audio[2]) < 255, "silence: one packet repeated after the first two"
    frames = round(seconds * rate)
    start = short // 4 + long // 4  # samples out after the first two packets (a short block, then a long one)
    audio = audio[:2] + [audio[2]] * -(-(frames - start) // (long // 2))  # each further packet: long / 2 samples
    out, position = [data[:head_end]], 0
    for first in range(0, len(audio), 255):
        chunk = audio[first : first + 255]
        position += start + (len(chunk) - 2) * (long // 2) if first == 0 else len(chunk) * (long // 2)
        last = first + 255 >= len(audio)  # the last page: end of stream, its granule trims the last block
        out.append(ogg_page(4 if last else 0, frames if last else position, serial, head_pages + first // 255, chunk))
    path.write_bytes(b"".join(out))
    return path


# Forks and execs argv, waits for it and writes its ru_maxrss (KiB) to the pipe fd it is given. A small process of its
# own, so that the measured child does not inherit the test process's memory high-water mark: on
# Linux, exec folds the old address space's peak into the new program's ru_maxrss, and a vfork'd
# child of a 2 GB pytest process would report 2 GB however little it used.
RSS_LAUNCHER = """import os, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
sys.exit(min(255, abs(os.waitstatus_to_exitcode(status))))
"""


def peak_rss_mb(argv: list[str], timeout: float = 300) -> tuple[int, str, float]:
    """Run `argv`: (exit code, stderr, the child's peak resident memory in MiB, from its own rusage).

    The child runs under `RSS_LAUNCHER` (see there why); `os.wait4` there reports this child's
    maximum alone. A child still running after `timeout` s is killed with its launcher.
    """
    import signal
    import sys

    read_end, write_end = os.pipe()
    launcher = [sys.executable, "-S", "-c", RSS_LAUNCHER, str(write_end), *argv]
    with subprocess.Popen(
        launcher,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(write_end,),
        start_new_session=True,
    ) as proc:
        os.close(write_end)
        killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        try:
            err = proc.stderr.read().decode(errors="replace")  # until the child closes it, i.e. exits
            proc.wait()
        finally:
            killer.cancel()
        with os.fdopen(read_end, "rb") as pipe:
            reported = pipe.read()
    assert proc.returncode != -9 and reported, f"{argv} ran past {timeout} s"
    return proc.returncode, err, int(reported) / 1024  # ru_maxrss is in KiB on Linux
