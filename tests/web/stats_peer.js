// Chromium as the answering peer whose getStats() is the ground truth for peerbot's figures.
// The test calls these with page.evaluate, one connection at a time:
//   answer(offerSdp) -> complete answer SDP (non-trickle), sending the fake mic + camera
//   figures()        -> per kind: inbound-rtp, outbound-rtp, remote-inbound-rtp; the selected pair
//   stopSending()    -> the senders stop sending media (RTCP goes on), so counters can settle
//   renderedFrames() -> each picture of peerbot's video that reached a sink (MediaStreamTrackProcessor)
//   pageStalls()     -> how often the page's own thread was held up >= STALL_MS since answer()
//   hangup()         -> closes the connection and the devices
"use strict";

let pc = null;
let local = null;
let rendered = [];
let generation = 0; // which answer() the rendered frames belong to

function watchRenderedFrames(track) {
  // The time each decoded picture reaches a sink of the track (as libwebrtc's renderer-side
  // counters see them; a compositor callback would miss the frames it skips under load), so
  // peerbot's freeze meter can be run over the very frames whose freezes libwebrtc counts.
  const mine = generation;
  const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
  (async () => {
    while (mine === generation) {
      const { value: frame, done } = await reader.read();
      if (done) break;
      if (mine === generation) {
        rendered.push({ time: performance.now() / 1000, width: frame.displayWidth, height: frame.displayHeight });
      }
      frame.close();
    }
    reader.cancel().catch(() => {});
  })().catch((error) => console.warn(`frame reader stopped: ${error}`));
}

function renderedFrames() {
  return rendered;
}

// The frames are timed when this page's thread reads them: while the thread is held up (a loaded
// machine), they wait and come out together, which peerbot's meter rightly sees as a freeze that
// libwebrtc's sink did not have. Each such stall is counted, so the test can allow for it.
const STALL_MS = 100;
let stalls = 0;
let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  if (now - lastTick >= STALL_MS) stalls += 1;
  lastTick = now;
}, 20);

function pageStalls() {
  return stalls;
}
const GATHER_LIMIT_MS = 5000;

function gatheringComplete(connection) {
  if (connection.iceGatheringState === "complete") return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), GATHER_LIMIT_MS);
    connection.addEventListener("icegatheringstatechange", () => {
      if (connection.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve(true);
      }
    });
  });
}

async function answer(offerSdp) {
  pc = new RTCPeerConnection({ iceServers: [] });
  rendered = [];
  stalls = 0;
  generation += 1;
  pc.addEventListener("track", (event) => {
    // Rendered, so libwebrtc's renderer-side figures (freezeCount) are measured.
    if (event.track.kind !== "video") return;
    const video = document.getElementById("remote");
    video.srcObject = new MediaStream([event.track]);
    watchRenderedFrames(event.track);
  });
  local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
  for (const transceiver of pc.getTransceivers()) {
    const track = local.getTracks().find((t) => t.kind === transceiver.receiver.track.kind);
    if (track) {
      await transceiver.sender.replaceTrack(track);
      transceiver.direction = "sendrecv";
    }
  }
  await pc.setLocalDescription(await pc.createAnswer());
  if (!(await gatheringComplete(pc))) console.warn(`ICE gathering not complete after ${GATHER_LIMIT_MS} ms`);
  return pc.localDescription.sdp;
}

const pick = (entry, names) => Object.fromEntries(names.filter((n) => entry[n] !== undefined).map((n) => [n, entry[n]]));

const INBOUND = ["ssrc", "packetsReceived", "packetsLost", "jitter", "framesPerSecond", "framesDecoded",
  "framesReceived", "framesDropped", "freezeCount", "totalFreezesDuration", "pauseCount", "nackCount",
  "retransmittedPacketsReceived", "fecPacketsReceived", "concealedSamples", "totalSamplesReceived"];
const OUTBOUND = ["ssrc", "packetsSent", "framesPerSecond", "framesEncoded", "framesSent",
  "retransmittedPacketsSent", "nackCount", "frameWidth", "frameHeight"];
const REMOTE_INBOUND = ["ssrc", "packetsLost", "fractionLost", "jitter", "roundTripTime",
  "totalRoundTripTime", "roundTripTimeMeasurements", "reportsReceived"];

async function figures() {
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((entry) => byId.set(entry.id, entry));
  const out = { audio: {}, video: {}, pair: null };
  const remote = {};
  report.forEach((entry) => {
    const kind = entry.kind;
    const codec = (e) => (byId.get(e.codecId) || {}).mimeType || null;
    if (entry.type === "inbound-rtp") out[kind].inbound = { ...pick(entry, INBOUND), mimeType: codec(entry) };
    else if (entry.type === "outbound-rtp") out[kind].outbound = { ...pick(entry, OUTBOUND), mimeType: codec(entry) };
    else if (entry.type === "remote-inbound-rtp") (remote[kind] = remote[kind] || []).push(pick(entry, REMOTE_INBOUND));
    else if (entry.type === "transport" && entry.selectedCandidatePairId) {
      const pair = byId.get(entry.selectedCandidatePairId);
      out.pair = pair ? pick(pair, ["currentRoundTripTime", "totalRoundTripTime", "responsesReceived"]) : null;
    }
  });
  // peerbot (aiortc) also reports on Chromium's RTX SSRC: keep the report on the media stream sent.
  for (const kind of ["audio", "video"]) {
    const sent = out[kind].outbound;
    out[kind].remoteInbound = (remote[kind] || []).find((r) => sent && r.ssrc === sent.ssrc);
    out[kind].otherRemoteInbound = (remote[kind] || []).filter((r) => !sent || r.ssrc !== sent.ssrc);
  }
  return out;
}

async function stopSending() {
  for (const sender of pc.getSenders()) await sender.replaceTrack(null);
}

function hangup() {
  if (pc) pc.close();
  if (local) local.getTracks().forEach((t) => t.stop());
  pc = null;
  local = null;
  generation += 1;
  document.getElementById("remote").srcObject = null;
}
