"""What passes along an existing Orbit call: the signalling relay (offer, answer, ICE candidates),
quality metrics and recordings."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ..orbit import routes
from ..orbit.models import Call
from ._fields import metric
from ._json_api import ApiError, read_json_object
from ._orbit_auth import Actor
from ._orbit_hub import EventHub
from ._orbit_state import CallBook

_METRICS = ("bitrate", "packet_loss", "jitter", "rtt")


class CallDataApi:
    """Handlers that relay signalling to the other party and keep a call's metrics and recordings."""

    def __init__(self, calls: CallBook, hub: EventHub) -> None:
        self._calls = calls
        self._hub = hub

    async def offer(self, request: web.Request, actor: Actor) -> web.Response:
        return await self._relay_sdp(request, actor, "offer", routes.CALL_OFFER)

    async def answer(self, request: web.Request, actor: Actor) -> web.Response:
        return await self._relay_sdp(request, actor, "answer", routes.CALL_ANSWER)

    async def ice_candidate(self, request: web.Request, actor: Actor) -> web.Response:
        body = await read_json_object(request)
        candidate, mid, index = body.get("candidate"), body.get("sdpMid"), body.get("sdpMLineIndex")
        if not isinstance(candidate, str):
            raise ApiError(400, "invalid_request", "candidate must be a string")
        if mid is not None and not isinstance(mid, str):
            raise ApiError(400, "invalid_request", "sdpMid must be a string")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1024):
            raise ApiError(400, "invalid_request", "sdpMLineIndex must be an integer from 0 to 1023")
        call = self._calls.signalling(request.match_info["call_id"], actor.acting, "a candidate")
        data = {"candidate": candidate, "sdpMid": mid, "sdpMLineIndex": index, "from_user_id": actor.acting}
        return await self._relay(call, actor.acting, routes.CALL_ICE_CANDIDATE, data)

    async def submit_metrics(self, request: web.Request, actor: Actor) -> web.Response:
        body = await read_json_object(request)
        values = {name: metric(body, name) for name in _METRICS}
        sample = self._calls.add_metrics(request.match_info["call_id"], actor.acting, values)
        return web.json_response(sample.to_json(), status=201)

    async def get_metrics(self, request: web.Request, actor: Actor) -> web.Response:
        call_id = request.match_info["call_id"]
        samples = self._calls.metrics(call_id, actor.acting)
        return web.json_response({"call_id": call_id, "samples": [s.to_json() for s in samples]})

    async def toggle_record(self, request: web.Request, actor: Actor) -> web.Response:
        recording = self._calls.toggle_recording(request.match_info["call_id"], actor.acting)
        return web.json_response(recording.to_json())

    async def list_recordings(self, request: web.Request, actor: Actor) -> web.Response:
        call_id = request.match_info["call_id"]
        recordings = self._calls.recordings(call_id, actor.acting)
        return web.json_response({"call_id": call_id, "recordings": [r.to_json() for r in recordings]})

    async def _relay_sdp(self, request: web.Request, actor: Actor, what: str, event_type: str) -> web.Response:
        body = await read_json_object(request)
        sdp = body.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise ApiError(400, "invalid_request", "sdp must be a non-empty string")
        call = self._calls.signalling(request.match_info["call_id"], actor.acting, f"an {what}")
        return await self._relay(call, actor.acting, event_type, {"sdp": sdp, "from_user_id": actor.acting})

    async def _relay(self, call: Call, sender: str, event_type: str, data: Mapping[str, object]) -> web.Response:
        delivered = await self._hub.publish(call.other_party(sender), event_type, {"call_id": call.id, **data})
        return web.json_response({"call_id": call.id, "delivered": delivered})
