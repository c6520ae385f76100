"""The child process of ``_recognizer``: pocketsphinx decoding utterances read from stdin.

Run as a script (``python -P _recognizer_worker.py``), so that it imports nothing of peerbot.
stdin carries records of one kind byte, a 4-byte big-endian length and a payload: ``B`` begins an
utterance, ``A`` is 16 kHz int16 mono audio, ``E`` ends the utterance. stdout says ``ready`` once
the model is loaded, then one JSON string (the hypothesis, ``""`` for nothing) per ``E``.
"""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

SAMPLE_RATE = 16000
BEGIN, AUDIO, END = b"B", b"A", b"E"


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="ERROR")  # the bundled US English model
    stdout.write(b"ready\n")
    stdout.flush()
    in_utterance = False
    while True:
        head = _read_exactly(stdin, 5)
        if head is None:
            return  # the server closed the pipe: the call is over
        payload = _read_exactly(stdin, int.from_bytes(head[1:], "big"))
        if payload is None:
            return
        kind = head[:1]
        if kind == BEGIN:
            if in_utterance:
                decoder.end_utt()
            decoder.start_utt()
            in_utterance = True
        elif kind == AUDIO and in_utterance:
            decoder.process_raw(payload, False, False)
        elif kind == END:
            text = ""
            if in_utterance:
                decoder.end_utt()
                hyp = decoder.hyp()
                text = hyp.hypstr if hyp is not None else ""
                in_utterance = False
            stdout.write(json.dumps(text).encode() + b"\n")
            stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
