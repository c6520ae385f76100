"""A demo Orbit user that plays back what it hears: the far side of a local call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from ..errors import PeerbotError

if TYPE_CHECKING:
    from ..orbit.call import CallType

log = logging.getLogger(__name__)

ECHO_DELAY = 0.3  # seconds of silence before the playback, so an echo is told apart from sidetone
WAIT_FOR_CALL = 3600.0  # seconds ``echo_every_call`` waits for a call before it starts waiting again


class SignedInUser(Protocol):
    """An app user with a token: keyword arguments for ``peerbot.orbit.call``/``answer``."""

    @property
    def call_kwargs(self) -> dict[str, Any]: ...


_User = TypeVar("_User", bound=SignedInUser, covariant=True)


class UserDirectory(Protocol[_User]):
    """Where another user of the same app is signed in (upserted, with a fresh token)."""

    async def as_user(self, external_id: str) -> _User: ...


async def _echo_one_call(participant: SignedInUser, external_id: str, in_call: asyncio.Event, *,
                         calls: str | None = None, type: CallType = "voice", ring_timeout: float | None = None) -> None:
    from .. import orbit
    from ..media import AudioSource, TestPattern

    out = AudioSource(queue_seconds=2.0)
    options = {**participant.call_kwargs, **({"ring_timeout": ring_timeout} if ring_timeout is not None else {})}
    session = (orbit.call(calls, out, TestPattern(), type=type, **options) if calls
               else orbit.answer(out, TestPattern(), **options))
    try:
        async with session as call:
            in_call.set()
            frames = call.audio_frames(sample_rate=out.sample_rate, channels=1)
            await out.capture(np.zeros(int(ECHO_DELAY * out.sample_rate), np.int16), out.sample_rate)
            async for frame in frames:
                await out.capture(frame.data, frame.sample_rate)
    except (PeerbotError, TimeoutError) as exc:  # the call ended, never connected, or never came
        log.debug("echo participant %s: %s", external_id, exc)


@contextlib.asynccontextmanager
async def echo_participant(target: UserDirectory[_User], external_id: str, *, calls: str | None = None,
                           type: CallType = "voice", ring_timeout: float | None = None) -> AsyncIterator[_User]:
    """User ``external_id`` plays back what it hears, 0.3 s late: it answers the next call or,
    with ``calls=<user id>``, places one (of ``type``). Video calls get a test pattern back."""
    participant = await target.as_user(external_id)
    in_call = asyncio.Event()
    echo = _echo_one_call(participant, external_id, in_call, calls=calls, type=type, ring_timeout=ring_timeout)
    task = asyncio.create_task(echo, name=f"echo-{external_id}")
    try:
        yield participant
    finally:
        if in_call.is_set():
            await asyncio.wait({task}, timeout=2.0)  # it hears the hang-up and leaves by itself
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def echo_every_call(target: UserDirectory[_User], external_id: str, *, retry_after: float = 1.0) -> None:
    """User ``external_id`` answers every call, one at a time, playing back what it hears; until cancelled."""
    participant = await target.as_user(external_id)
    while True:
        in_call = asyncio.Event()
        started = time.monotonic()
        await _echo_one_call(participant, external_id, in_call, ring_timeout=WAIT_FOR_CALL)
        if not in_call.is_set() and time.monotonic() - started < retry_after:
            await asyncio.sleep(retry_after)  # the server refused or went away: do not spin
