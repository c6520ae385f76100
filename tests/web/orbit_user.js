// A browser participant of an Orbit call, speaking this project's Orbit signalling
// (protocol/orbit-calls.md): call:* events arrive on the event WebSocket, and the REST routes,
// sent with `Authorization: Bearer <user token>` and `X-Client-Id: <publishable key>`, accept or
// initiate the call, submit the offer or answer and trickle ICE candidates both ways.
// Chromium's fake microphone (a 400 Hz beep) and camera are what it sends.
//
// The test calls, with page.evaluate:
//   await start({baseUrl, token, clientId})  -> the event WebSocket is open
//   await answerNextCall({timeoutMs})        -> accepts the next call:incoming, answers its offer: {callId, type, callerId}
//   await callUser(calleeId, type)           -> initiates; once accepted, sends the offer: {callId, type}
//   await waitConnected(timeoutMs)           -> the peer connection is connected
//   await stats()                            -> getStats: codecs, packets, frames each way, the selected pair
//   await dominantFrequency()                -> the strongest frequency of the received audio (WebAudio)
//   await hangUp()                           -> POST /calls/{id}/end and close: the call object
//   callState()                              -> ended {reason, endedBy}, candidates each way, events, errors
"use strict";

const API = "/api/v1";
const startedAt = performance.now();
const orbit = { baseUrl: null, token: null, clientId: null, socket: null, inbox: [], waiters: [], events: [], closes: [] };
let call = null; // the current call
let audioContext = null;
let analyser = null;

const now = () => Math.round(performance.now() - startedAt);
const callIdOf = (event) => event.data.call_id ?? event.data.id ?? null;

// --- the REST routes and the event WebSocket -------------------------------------------

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${orbit.token}`, "X-Client-Id": orbit.clientId };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${orbit.baseUrl}${API}${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} failed: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function start({ baseUrl, token, clientId }) {
  Object.assign(orbit, { baseUrl, token, clientId });
  const url = new URL(`${API}/ws`, baseUrl.replace(/^http/, "ws"));
  url.searchParams.set("token", token);
  url.searchParams.set("client_id", clientId);
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    orbit.socket = socket;
    socket.addEventListener("open", () => resolve({ url: `${url.origin}${url.pathname}` }));
    socket.addEventListener("error", () => reject(new Error("the event WebSocket failed")));
    socket.addEventListener("close", (e) => orbit.closes.push({ t: now(), code: e.code, reason: e.reason }));
    socket.addEventListener("message", (e) => onEvent(JSON.parse(e.data)));
  });
}

// Signalling of the current call, run one after the other in arrival order.
const SIGNALS = {
  "call:offer": (data) => onOffer(data),
  "call:answer": async (data) => {
    await call.pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
    await addRemoteCandidates();
  },
  "call:ice-candidate": async (data) => {
    call.remoteQueue.push(data);
    call.candidatesReceived.push(data.candidate);
    if (call.pc?.remoteDescription) await addRemoteCandidates();
  },
  "call:ended": async (data) => {
    call.ended = { t: now(), reason: data.reason ?? null, endedBy: data.ended_by ?? null };
    closePeer();
  },
};

function onEvent(event) {
  const callId = callIdOf(event);
  orbit.events.push({ t: now(), type: event.type, callId, reason: event.data.reason ?? null });
  const handler = SIGNALS[event.type];
  if (call && callId === call.id && handler) {
    const current = call;
    current.chain = current.chain.then(() => handler(event.data)).catch((e) => current.errors.push(`${event.type}: ${e}`));
  }
  orbit.inbox.push(event);
  wake();
}

// The first event (already received or to come) that matches; each event is taken once.
function waitFor(match, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      orbit.waiters = orbit.waiters.filter((w) => w !== waiter);
      reject(new Error(`no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    const waiter = { match, resolve: (event) => { clearTimeout(timer); resolve(event); } };
    orbit.waiters.push(waiter);
    wake();
  });
}

function wake() {
  for (const waiter of [...orbit.waiters]) {
    const at = orbit.inbox.findIndex(waiter.match);
    if (at >= 0) {
      const [event] = orbit.inbox.splice(at, 1);
      orbit.waiters = orbit.waiters.filter((w) => w !== waiter);
      waiter.resolve(event);
    }
  }
}

// --- the call ------------------------------------------------------------------------

function newCall(id, role, type) {
  let answered;
  const settled = new Promise((resolve, reject) => { answered = { resolve, reject }; });
  return {
    id, role, type, pc: null, local: null, iceServers: null, answered, settled,
    chain: Promise.resolve(), sending: Promise.resolve(), sdpPosted: false,
    localQueue: [], remoteQueue: [], candidatesSent: [], candidatesReceived: [], candidateErrors: [],
    states: [], tracks: [], ended: null, errors: [],
  };
}

async function newPeer() {
  const current = call;
  const { iceServers } = await api("GET", "/calls/turn-credentials");
  current.iceServers = iceServers;
  // One transport for everything, like peerbot: one set of candidates, all for the first section.
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  current.pc = pc;
  current.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: current.type === "video" });
  pc.addEventListener("connectionstatechange", () => current.states.push({ t: now(), state: pc.connectionState }));
  pc.addEventListener("track", onTrack);
  pc.addEventListener("icecandidate", (event) => {
    if (!event.candidate) return; // end of gathering: nothing to send
    current.localQueue.push(event.candidate.toJSON());
    sendLocalCandidates(current);
  });
  return pc;
}

// Trickle: each candidate is posted once our description has gone out, in gathering order.
function sendLocalCandidates(current) {
  if (!current.sdpPosted) return;
  for (const c of current.localQueue.splice(0)) {
    const body = { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
    current.sending = current.sending
      .then(() => api("POST", `/calls/${current.id}/ice-candidates`, body))
      .then(() => current.candidatesSent.push(c.candidate), (e) => current.errors.push(`ice-candidates: ${e}`));
  }
}

async function addRemoteCandidates() {
  for (const data of call.remoteQueue.splice(0)) {
    const index = data.sdpMLineIndex ?? (data.sdpMid == null ? 0 : null);
    try {
      await call.pc.addIceCandidate({ candidate: data.candidate, sdpMid: data.sdpMid ?? null, sdpMLineIndex: index });
    } catch (e) {
      call.candidateErrors.push(`${data.candidate}: ${e}`);
    }
  }
}

async function onOffer(data) {
  try {
    const pc = await newPeer();
    await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
    // Send the fake devices on the offered transceivers, so no extra section appears.
    for (const transceiver of pc.getTransceivers()) {
      const track = call.local.getTracks().find((t) => t.kind === transceiver.receiver.track.kind);
      if (track) {
        await transceiver.sender.replaceTrack(track);
        transceiver.direction = "sendrecv";
      }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await api("POST", `/calls/${call.id}/answer`, { sdp: pc.localDescription.sdp });
    call.sdpPosted = true;
    sendLocalCandidates(call);
    await addRemoteCandidates();
    call.answered.resolve();
  } catch (e) {
    call.answered.reject(e);
    throw e;
  }
}

function onTrack(event) {
  call.tracks.push(event.track.kind);
  const stream = new MediaStream([event.track]);
  if (event.track.kind === "video") {
    document.getElementById("remote").srcObject = stream;
    return;
  }
  // Remote WebRTC audio only flows into WebAudio while a media element plays the stream too.
  const sink = new Audio();
  sink.muted = true;
  sink.srcObject = stream;
  sink.play().catch(() => {});
  audioContext = new AudioContext();
  analyser = audioContext.createAnalyser();
  analyser.fftSize = 16384; // 2.9 Hz bins at 48 kHz
  analyser.smoothingTimeConstant = 0;
  audioContext.createMediaStreamSource(stream).connect(analyser);
}

async function answerNextCall({ timeoutMs = 15000 } = {}) {
  const incoming = await waitFor((e) => e.type === "call:incoming", timeoutMs, "call:incoming");
  call = newCall(incoming.data.id, "callee", incoming.data.type);
  await api("POST", `/calls/${call.id}/accept`);
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`no call:offer within ${timeoutMs} ms`)), timeoutMs));
  await Promise.race([call.settled, timeout]);
  return { callId: call.id, type: call.type, callerId: incoming.data.caller_id };
}

async function callUser(calleeId, type = "voice", { timeoutMs = 15000 } = {}) {
  const placed = await api("POST", "/calls", { callee_id: calleeId, type });
  call = newCall(placed.id, "caller", type);
  const reply = await waitFor(
    (e) => callIdOf(e) === placed.id && ["call:accepted", "call:rejected", "call:ended"].includes(e.type),
    timeoutMs, "call:accepted");
  if (reply.type !== "call:accepted") throw new Error(`not accepted: ${reply.type} ${reply.data.reason ?? ""}`);
  const pc = await newPeer();
  for (const track of [...call.local.getAudioTracks(), ...call.local.getVideoTracks()]) {
    pc.addTransceiver(track, { direction: "sendrecv", streams: [call.local] });
  }
  await pc.setLocalDescription(await pc.createOffer());
  await api("POST", `/calls/${call.id}/offer`, { sdp: pc.localDescription.sdp });
  call.sdpPosted = true;
  sendLocalCandidates(call);
  return { callId: call.id, type };
}

async function waitConnected(timeoutMs = 10000) {
  const deadline = performance.now() + timeoutMs;
  while (call?.pc?.connectionState !== "connected") {
    if (performance.now() > deadline) throw new Error(`not connected within ${timeoutMs} ms: ${call?.pc?.connectionState}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return call.states;
}

function closePeer() {
  call.local?.getTracks().forEach((t) => t.stop());
  call.pc?.close();
}

async function hangUp() {
  const ended = await api("POST", `/calls/${call.id}/end`);
  closePeer();
  return ended;
}

function callState() {
  return {
    id: call?.id ?? null, role: call?.role ?? null, type: call?.type ?? null, iceServers: call?.iceServers ?? null,
    connectionState: call?.pc?.connectionState ?? "none", states: call?.states ?? [], tracks: call?.tracks ?? [],
    ended: call?.ended ?? null, candidatesSent: call?.candidatesSent ?? [], candidatesReceived: call?.candidatesReceived ?? [],
    candidateErrors: call?.candidateErrors ?? [], errors: call?.errors ?? [], events: orbit.events, socketCloses: orbit.closes,
  };
}

// --- measurements ----------------------------------------------------------------------

async function stats() {
  const report = await call.pc.getStats();
  const codec = (entry) => {
    const c = report.get(entry.codecId);
    return c ? `${c.mimeType}/${c.clockRate}` : null;
  };
  const side = (id) => {
    const c = report.get(id);
    return c ? { type: c.candidateType, address: `${c.address}:${c.port}`, protocol: c.protocol } : null;
  };
  const out = { inbound: {}, outbound: {}, pair: null };
  report.forEach((entry) => {
    if (entry.type === "inbound-rtp") {
      out.inbound[entry.kind] = {
        codec: codec(entry), packetsReceived: entry.packetsReceived, packetsLost: entry.packetsLost,
        framesDecoded: entry.framesDecoded, frameWidth: entry.frameWidth, frameHeight: entry.frameHeight,
        totalAudioEnergy: entry.totalAudioEnergy,
      };
    } else if (entry.type === "outbound-rtp") {
      out.outbound[entry.kind] = {
        codec: codec(entry), packetsSent: entry.packetsSent, framesSent: entry.framesSent,
        frameWidth: entry.frameWidth, frameHeight: entry.frameHeight,
      };
    } else if (entry.type === "transport" && entry.selectedCandidatePairId) {
      const pair = report.get(entry.selectedCandidatePairId);
      out.pair = pair && { local: side(pair.localCandidateId), remote: side(pair.remoteCandidateId) };
    }
  });
  return out;
}

