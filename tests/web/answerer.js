// Chromium as the answering peer. The test calls these with page.evaluate:
//   answer(offerSdp)     -> complete answer SDP (non-trickle), sending fake mic + camera
//   stats()              -> what getStats says crossed, each way, and the selected pair
//   dominantFrequency()  -> the strongest frequency in the received audio (WebAudio)
//   videoCounter()       -> the frame counter drawn by peerbot's TestPattern, read from the picture
//   capabilities()       -> the codecs this Chromium can receive and send
"use strict";

let pc = null;
const received = { tracks: [], connectionStates: [] };
let analyser = null;
let audioContext = null;

const GATHER_LIMIT_MS = 5000;
const COUNTER_BITS = 16;
const BLOCK = 16; // as in peerbot.media.synthetic

function capabilities() {
  const list = (cls, kind) => cls.getCapabilities(kind).codecs.map(
    (c) => c.sdpFmtpLine ? `${c.mimeType} ${c.sdpFmtpLine}` : c.mimeType);
  return {
    receive: { audio: list(RTCRtpReceiver, "audio"), video: list(RTCRtpReceiver, "video") },
    send: { audio: list(RTCRtpSender, "audio"), video: list(RTCRtpSender, "video") },
  };
}

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

function listenTo(stream) {
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

async function answer(offerSdp) {
  pc = new RTCPeerConnection({ iceServers: [] });
  pc.addEventListener("connectionstatechange", () => received.connectionStates.push(pc.connectionState));
  pc.addEventListener("track", (event) => {
    const stream = new MediaStream([event.track]);
    received.tracks.push({ kind: event.track.kind, mid: event.transceiver.mid });
    if (event.track.kind === "audio") listenTo(stream);
    else document.getElementById("remote").srcObject = stream;
  });
  const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
  // Send the fake devices on the transceivers peerbot offered, so no extra m-line appears.
  for (const transceiver of pc.getTransceivers()) {
    const kind = transceiver.receiver.track.kind;
    const track = local.getTracks().find((t) => t.kind === kind);
    if (track) {
      await transceiver.sender.replaceTrack(track);
      transceiver.direction = "sendrecv";
    }
  }
  await pc.setLocalDescription(await pc.createAnswer());
  const complete = await gatheringComplete(pc);
  if (!complete) console.warn(`ICE gathering not complete after ${GATHER_LIMIT_MS} ms: answering anyway`);
  return pc.localDescription.sdp;
}

async function stats() {
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((entry) => byId.set(entry.id, entry));
  const codec = (entry) => {
    const c = byId.get(entry.codecId);
    return c ? { mimeType: c.mimeType, payloadType: c.payloadType, sdpFmtpLine: c.sdpFmtpLine || "" } : null;
  };
  const summary = { inbound: {}, outbound: {}, pair: null, connectionState: pc.connectionState, received };
  report.forEach((entry) => {
    if (entry.type === "inbound-rtp") {
      summary.inbound[entry.kind] = {
        codec: codec(entry), packetsReceived: entry.packetsReceived, packetsLost: entry.packetsLost,
        bytesReceived: entry.bytesReceived, jitter: entry.jitter, framesDecoded: entry.framesDecoded,
        frameWidth: entry.frameWidth, frameHeight: entry.frameHeight, keyFramesDecoded: entry.keyFramesDecoded,
        totalSamplesReceived: entry.totalSamplesReceived, concealedSamples: entry.concealedSamples,
      };
    } else if (entry.type === "outbound-rtp") {
      summary.outbound[entry.kind] = {
        codec: codec(entry), packetsSent: entry.packetsSent, bytesSent: entry.bytesSent,
        framesEncoded: entry.framesEncoded, frameWidth: entry.frameWidth, frameHeight: entry.frameHeight,
        encoderImplementation: entry.encoderImplementation,
      };
    } else if (entry.type === "transport" && entry.selectedCandidatePairId) {
      const pair = byId.get(entry.selectedCandidatePairId);
      const side = (id) => {
        const c = byId.get(id);
        return c ? { type: c.candidateType, address: `${c.address}:${c.port}`, protocol: c.protocol } : null;
      };
      summary.pair = pair && { state: pair.state, local: side(pair.localCandidateId), remote: side(pair.remoteCandidateId) };
    }
  });
  return summary;
}

async function videoCounter() {
  const video = document.getElementById("remote");
  if (!video.srcObject) return { counter: null, width: 0, height: 0 };
  await video.play().catch(() => {});
  const width = video.videoWidth, height = video.videoHeight;
  if (!width || !height) return { counter: null, width, height };
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0, width, height);
  const pixels = context.getImageData(0, 0, COUNTER_BITS * BLOCK, BLOCK).data;
  const rowLength = COUNTER_BITS * BLOCK;
  let counter = 0;
  for (let bit = 0; bit < COUNTER_BITS; bit++) {
    // The block's centre only, as read_frame_counter does: edges bleed after lossy coding.
    let sum = 0, n = 0;
    for (let y = 4; y < BLOCK - 4; y++) {
      for (let x = bit * BLOCK + 4; x < (bit + 1) * BLOCK - 4; x++) {
        const at = (y * rowLength + x) * 4;
        sum += pixels[at] + pixels[at + 1] + pixels[at + 2];
        n += 3;
      }
    }
    counter = (counter << 1) | (sum / n > 128 ? 1 : 0);
  }
  return { counter, width, height };
}
