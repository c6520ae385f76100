"""The local Orbit server's memory: users, and calls with their state machine, metrics and recordings.

No HTTP here and no awaiting: every change is checked and made in one synchronous step, so two
requests racing on one call cannot both win. Refusals are ``ApiError``\\ s with the API's statuses.
Memory is bounded: a cap on users and on live calls per user (429), and on calls kept, where the
oldest finished calls make room for new ones; metrics and recordings keep their latest entries.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..orbit.models import Call, MetricsSample, Recording, User, utc_now
from ._json_api import ApiError


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class Directory:
    """The app's users, by id and by external id."""

    def __init__(self, max_users: int = 1000) -> None:
        self._users: dict[str, User] = {}
        self._by_external_id: dict[str, str] = {}
        self._max_users = max_users

    def upsert(self, external_id: str, display_name: str, metadata: Mapping[str, Any] | None) -> tuple[User, bool]:
        """Create the user, or update (and reactivate) the one with ``external_id``; say whether it is new."""
        user_id = self._by_external_id.get(external_id)
        if user_id is not None:
            user = self._users[user_id]
            changes: dict[str, Any] = {"display_name": display_name, "is_active": True}
            if metadata is not None:
                changes["metadata"] = dict(metadata)
            return self._store(replace(user, **changes)), False
        if len(self._users) >= self._max_users:
            raise ApiError(429, "too_many_users", f"the server holds its maximum of {self._max_users} users")
        user = User(new_id("usr"), external_id, display_name, dict(metadata or {}), True, utc_now())
        self._by_external_id[external_id] = user.id
        return self._store(user), True

    def get(self, user_id: str) -> User:
        user = self._users.get(user_id)
        if user is None:
            raise ApiError(404, "user_not_found", f"no user with id {user_id!r}")
        return user

    def get_by_external_id(self, external_id: str) -> User:
        user_id = self._by_external_id.get(external_id)
        if user_id is None:
            raise ApiError(404, "user_not_found", f"no user with external id {external_id!r}")
        return self._users[user_id]

    def active(self, user_id: str) -> User:
        """The user, who must exist (404) and be active (403)."""
        user = self.get(user_id)
        if not user.is_active:
            raise ApiError(403, "user_inactive", f"user {user_id!r} is deactivated")
        return user

    def list(self, active_only: bool | None) -> list[User]:
        return [u for u in self._users.values() if active_only is None or u.is_active == active_only]

    def update(self, user_id: str, display_name: str | None, metadata: Mapping[str, Any] | None) -> User:
        user = self.get(user_id)
        changes: dict[str, Any] = {}
        if display_name is not None:
            changes["display_name"] = display_name
        if metadata is not None:
            changes["metadata"] = dict(metadata)
        return self._store(replace(user, **changes))

    def deactivate(self, user_id: str) -> User:
        return self._store(replace(self.get(user_id), is_active=False))

    def _store(self, user: User) -> User:
        self._users[user.id] = user
        return user


class CallBook:
    """Calls and what hangs off them. Every method takes the acting user and checks it is a party."""

    def __init__(self, max_calls: int = 1000, max_live_calls_per_user: int = 4, max_samples: int = 1000) -> None:
        self.calls: dict[str, Call] = {}
        self._metrics: dict[str, deque[MetricsSample]] = {}
        self._recordings: dict[str, deque[Recording]] = {}
        self._max_calls = max_calls
        self._max_live = max_live_calls_per_user
        self._max_samples = max_samples

    def create(self, caller_id: str, callee_id: str, call_type: str) -> Call:
        if caller_id == callee_id:
            raise ApiError(400, "invalid_callee", "a user cannot call itself")
        for user_id in (caller_id, callee_id):
            if sum(1 for c in self.calls.values() if c.status in _LIVE and user_id in (c.caller_id, c.callee_id)) \
                    >= self._max_live:
                who = "the caller" if user_id == caller_id else "the callee"
                raise ApiError(429, "too_many_calls", f"{who} already has {self._max_live} live calls")
        self._make_room()
        call = Call(new_id("call"), caller_id, callee_id, call_type, "ringing", utc_now())  # type: ignore[arg-type]
        self.calls[call.id] = call
        self._metrics[call.id] = deque(maxlen=self._max_samples)
        self._recordings[call.id] = deque(maxlen=self._max_samples)
        return call

    def _make_room(self) -> None:
        if len(self.calls) < self._max_calls:
            return
        finished = next((c.id for c in self.calls.values() if c.status not in _LIVE), None)  # oldest first
        if finished is None:
            raise ApiError(429, "too_many_calls", f"the server holds its maximum of {self._max_calls} live calls")
        del self.calls[finished], self._metrics[finished], self._recordings[finished]

    def of_party(self, call_id: str, user_id: str) -> Call:
        """The call, which must exist (404) and have ``user_id`` as a party (403)."""
        call = self.calls.get(call_id)
        if call is None:
            raise ApiError(404, "call_not_found", f"no call with id {call_id!r}")
        if user_id not in (call.caller_id, call.callee_id):
            raise ApiError(403, "not_a_participant", "the acting user is not a party of this call")
        return call

    def accept(self, call_id: str, user_id: str) -> Call:
        call = self._answerable(call_id, user_id, "accept")
        return self._store(replace(call, status="accepted"))

    def reject(self, call_id: str, user_id: str) -> Call:
        call = self._answerable(call_id, user_id, "reject")
        return self._store(replace(call, status="rejected", ended_at=utc_now()))

    def end(self, call_id: str, user_id: str) -> tuple[Call, str]:
        """End a ringing or accepted call; return it and the reason (``cancelled`` or ``hangup``)."""
        call = self.of_party(call_id, user_id)
        _require_status(call, ("ringing", "accepted"), "end")
        reason = "cancelled" if call.status == "ringing" else "hangup"
        self._stop_recording(call.id)
        return self._store(replace(call, status="ended", ended_at=utc_now())), reason

    def miss(self, call_id: str) -> Call | None:
        """Mark a still ringing call missed; ``None`` if it was answered or ended meanwhile."""
        call = self.calls.get(call_id)
        if call is None or call.status != "ringing":
            return None
        return self._store(replace(call, status="missed", ended_at=utc_now()))

    def signalling(self, call_id: str, user_id: str, what: str) -> Call:
        """The call an offer, answer or candidate is relayed on: ringing or accepted."""
        call = self.of_party(call_id, user_id)
        _require_status(call, ("ringing", "accepted"), f"relay {what} on")
        return call

    def add_metrics(self, call_id: str, user_id: str, values: Mapping[str, float]) -> MetricsSample:
        self.of_party(call_id, user_id)
        sample = MetricsSample(user_id=user_id, recorded_at=utc_now(), **values)
        self._metrics[call_id].append(sample)
        return sample

    def metrics(self, call_id: str, user_id: str) -> list[MetricsSample]:
        self.of_party(call_id, user_id)
        return list(self._metrics[call_id])

    def toggle_recording(self, call_id: str, user_id: str) -> Recording:
        """Stop the running recording, or start one (only while the call is accepted)."""
        call = self.of_party(call_id, user_id)
        stopped = self._stop_recording(call_id)
        if stopped is not None:
            return stopped
        _require_status(call, ("accepted",), "record")
        recording = Recording(new_id("rec"), call_id, user_id, utc_now())
        self._recordings[call_id].append(recording)
        return recording

    def recordings(self, call_id: str, user_id: str) -> list[Recording]:
        self.of_party(call_id, user_id)
        return list(self._recordings[call_id])

    def _answerable(self, call_id: str, user_id: str, action: str) -> Call:
        call = self.of_party(call_id, user_id)
        if user_id != call.callee_id:
            raise ApiError(403, "not_the_callee", f"only the callee can {action} a call")
        _require_status(call, ("ringing",), action)
        return call

    def _stop_recording(self, call_id: str) -> Recording | None:
        recordings = self._recordings[call_id]
        if recordings and recordings[-1].active:
            recordings[-1] = replace(recordings[-1], stopped_at=utc_now())
            return recordings[-1]
        return None

    def _store(self, call: Call) -> Call:
        self.calls[call.id] = call
        return call


_LIVE = ("ringing", "accepted")


def _require_status(call: Call, allowed: tuple[str, ...], action: str) -> None:
    if call.status not in allowed:
        raise ApiError(409, "invalid_call_state", f"cannot {action} a call that is {call.status}")
