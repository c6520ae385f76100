"""Sessions and conversations opened for a test, all closed when it ends.

:class:`SessionFactory` opens Orga sessions (``peerbot.orga.connect`` with the target's
credentials) and remembers each; :meth:`SessionFactory.aclose` hangs up every one still open.
:class:`ConversationFactory` runs a script over a session of its own and returns the measured
:class:`~peerbot.conversation.ConversationResult`. Both put what they measured in a
:class:`~peerbot.testing.report.PeerbotReport` when given one. The pytest fixtures
``peerbot_session`` and ``peerbot_conversation`` are these, with ``aclose`` at teardown.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..conversation.results import ConversationResult
    from ..conversation.script import Script
    from ..media.source import MediaSource
    from ..orga.session import OrgaSession
    from .report import PeerbotReport

__all__ = ["CLOSE_TIMEOUT", "ConversationFactory", "SessionFactory"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 15.0
"""Seconds a session may take to hang up at teardown before it is given up on (with a warning)."""


class SessionFactory:
    """``await factory(source, video, **options)``: a started ``OrgaSession`` with the target's
    ``connect_kwargs`` (``api_key``, ``base_url``, ``user_email``; empty: from ``ORGA_*``), ``options``
    on top. Every session it opened is in ``sessions``; ``aclose()`` closes those still open."""

    def __init__(self, connect_kwargs: Mapping[str, Any] | None = None, *, report: PeerbotReport | None = None) -> None:
        self.connect_kwargs = dict(connect_kwargs or {})
        self.report = report
        self.sessions: list[OrgaSession] = []

    async def __call__(self, source: MediaSource | None = None, video: MediaSource | None = None,
                       **options: Any) -> OrgaSession:
        return await self.open(source, video, **options)

    async def open(self, source: MediaSource | None = None, video: MediaSource | None = None, *,
                   in_report: bool = True, **options: Any) -> OrgaSession:
        """Open and start a session; ``in_report=False``: its call quality stays out of the report
        (a conversation's result carries its own)."""
        from ..orga.session import connect

        session = connect(source, video, **{**self.connect_kwargs, **options})
        self.sessions.append(session)  # before start: a start that fails halfway is still closed at the end
        await session.start()
        if in_report and self.report is not None:
            self.report.add(session)
        return session

    async def aclose(self) -> None:
        """Hang up every session, the last opened first; one that does not end within
        ``CLOSE_TIMEOUT`` or fails to close is logged, the others are closed all the same."""
        for session in reversed(self.sessions):
            try:
                await asyncio.wait_for(session.close(), CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("a session did not close within %g s at the end of the test", CLOSE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - closing the others matters more than this one's error
                log.warning("a session failed to close at the end of the test: %s", exc)


class ConversationFactory:
    """``await factory(script, **options)``: run ``script`` (a ``Script``, or the path of a TOML or
    JSON script, relative to ``base``) over a new session from ``sessions`` (``options`` go to
    ``peerbot.orga.connect``, e.g. ``voice=``), hang up, and return the ``ConversationResult``."""

    def __init__(self, sessions: SessionFactory, *, base: str | Path | None = None) -> None:
        self.sessions = sessions
        self.base = Path(base) if base is not None else None
        self._index = itertools.count()

    async def __call__(self, script: Script | str | Path, **options: Any) -> ConversationResult:
        from ..conversation import UtteranceSource, converse, prepare_utterances

        script = self.script(script)
        index = next(self._index)
        # The speech is made before the call: the TTS takes a moment that should not count in the session.
        utterances = await asyncio.to_thread(prepare_utterances, script)
        source = UtteranceSource()
        session = await self.sessions.open(source, in_report=False,
                                           **{"return_transcription": True, "reconnect": False, **options})
        try:
            result = await converse(script, session, source, utterances=utterances, index=index)
        finally:
            await session.close()
        if self.sessions.report is not None:
            self.sessions.report.add(result)
        return result

    def script(self, script: Script | str | Path) -> Script:
        """``script`` as a ``Script``: loaded from its file when it is a path."""
        from ..conversation import Script, load_script

        if isinstance(script, Script):
            return script
        if not isinstance(script, (str, Path)):
            raise ConfigurationError(f"a conversation is a Script or the path of a script file,"
                                     f" not {type(script).__name__}")
        path = Path(script)
        if not path.is_absolute() and self.base is not None:
            path = self.base / path
        return load_script(path)
