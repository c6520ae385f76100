// Orga's browser client flow, as @orga-ai/react 1.0.5 (useOrgaAI) and @orga-ai/core 1.0.0
// (connectToRealtime) run it, pointed at a given base URL instead of the SDK's hard-coded
// https://api.orga-ai.com. It also measures the audio both ways with WebAudio.
//
// The test calls, in order:
//   await startSession({baseUrl, ephemeralToken, params})  -> {conversationId, iceServers, candidates}
//   sendSessionUpdate(data)                                 (what the SDK sends when settings change)
//   await snapshot()                                        -> messages, audio meters, getStats summary
//   endSession()
"use strict";

const DATA_CHANNEL_LABEL = "orga-realtime-client-events";
const GATHER_LIMIT_MS = 5000; // useOrgaAI's gatherIceCandidates
const CALL_TIMEOUT_MS = 10000; // connectToRealtime
// connectToRealtime's defaults for the `params` object.
const SDK_DEFAULT_PARAMS = {
  voice: "alloy",
  model: "orga-1-beta",
  temperature: 0.5,
  return_transcription: false,
  instructions: null,
  modalities: ["audio", "video"],
  history: true,
};
const METER_INTERVAL_MS = 10;
const METER_FFT_SIZE = 2048;
const LOUD_RMS = 0.01; // about -40 dBFS: well above the silence the echo sends between beeps
const TONE_RMS_FRACTION = 0.5;
const MIN_HZ = 50; // below this a peak is DC or hum, not the tone

const session = {
  pc: null,
  channel: null,
  audioContext: null,
  localMeter: null,
  remoteMeter: null,
  messages: [], // every data-channel message, in arrival order: {t, type, data}
  states: [], // connection state changes: {t, state}
  startedAt: performance.now(), // reset by startSession: times are ms since the session began
};

function now() {
  return Math.round(performance.now() - session.startedAt);
}

// RMS and dominant frequency of a stream, sampled every METER_INTERVAL_MS by an AnalyserNode.
class LevelMeter {
  constructor(context, stream) {
    this.context = context;
    this.source = context.createMediaStreamSource(stream);
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = METER_FFT_SIZE;
    this.analyser.smoothingTimeConstant = 0; // each reading stands alone
    this.source.connect(this.analyser);
    this.wave = new Float32Array(this.analyser.fftSize);
    this.spectrum = new Float32Array(this.analyser.frequencyBinCount);
    this.samples = []; // [t ms, rms, dominant Hz or null]
    this.timer = setInterval(() => this.read(), METER_INTERVAL_MS);
  }

  read() {
    this.analyser.getFloatTimeDomainData(this.wave);
    let sum = 0;
    for (const v of this.wave) sum += v * v;
    const rms = Math.sqrt(sum / this.wave.length);
    this.samples.push([now(), rms, rms >= LOUD_RMS ? this.dominantHz() : null]);
  }

  dominantHz() {
    this.analyser.getFloatFrequencyData(this.spectrum);
    const binHz = this.context.sampleRate / this.analyser.fftSize;
    let peak = Math.ceil(MIN_HZ / binHz);
    for (let i = peak; i < this.spectrum.length - 1; i++) {
      if (this.spectrum[i] > this.spectrum[peak]) peak = i;
    }
    // Parabolic interpolation over the peak's neighbours (in dB) refines the bin to a frequency.
    const [a, b, c] = [this.spectrum[peak - 1], this.spectrum[peak], this.spectrum[peak + 1]];
    const denominator = a - 2 * b + c;
    const offset = denominator !== 0 && Number.isFinite(denominator) ? (0.5 * (a - c)) / denominator : 0;
    return (peak + offset) * binHz;
  }

  summary() {
    const rms = this.samples.map((s) => s[1]);
    const peakRms = rms.length ? Math.max(...rms) : 0;
    // The tone is read near each beep's top only: its attack and its decay tail smear the spectrum.
    const tops = this.samples.filter((s) => s[2] !== null && s[1] >= TONE_RMS_FRACTION * peakRms);
    const hz = tops.map((s) => s[2]).sort((x, y) => x - y);
    return {
      readings: this.samples.length,
      sampleRate: this.context.sampleRate,
      binHz: this.context.sampleRate / this.analyser.fftSize,
      peakRms,
      meanRms: rms.length ? rms.reduce((x, y) => x + y, 0) / rms.length : 0,
      toneReadings: tops.length,
      medianHz: hz.length ? hz[Math.floor(hz.length / 2)] : null,
      envelope: this.samples.map((s) => [s[0], s[1]]),
    };
  }

  stop() {
    clearInterval(this.timer);
    this.source.disconnect();
  }
}

// The SDK gets the ICE servers with the token from the app's backend (@orga-ai/node's
// getSessionConfig calls this route); fetching them here exercises the route from a browser.
async function fetchIceServers(baseUrl, ephemeralToken) {
  const response = await fetch(`${baseUrl}/v1/realtime/ice-config`, {
    headers: { Authorization: `Bearer ${ephemeralToken}` },
  });
  if (!response.ok) {
    throw new Error(`ice-config failed: ${response.status} ${await response.text()}`);
  }
  return (await response.json()).iceServers;
}

// useOrgaAI's gatherIceCandidates: every candidate until gathering completes, or what came in 5 s.
function gatherIceCandidates(pc) {
  return new Promise((resolve) => {
    const candidates = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      pc.removeEventListener("icecandidate", onIceCandidate);
      resolve(candidates);
    };
    const onIceCandidate = (event) => {
      if (event.candidate) {
        candidates.push({
          candidate: event.candidate.candidate,
          sdpMid: event.candidate.sdpMid ?? undefined,
          sdpMLineIndex: event.candidate.sdpMLineIndex ?? undefined,
        });
      } else if (pc.iceGatheringState === "complete") {
        finish();
      }
    };
    pc.addEventListener("icecandidate", onIceCandidate);
    setTimeout(finish, GATHER_LIMIT_MS);
  });
}

// connectToRealtime: POST the offer, gathered candidates and params; 10 s at most.
async function connectToRealtime(baseUrl, ephemeralToken, pc, candidates, params) {
  const body = {
    offer: { sdp: pc.localDescription.sdp, type: pc.localDescription.type, candidates },
    params: { ...SDK_DEFAULT_PARAMS, ...params },
  };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CALL_TIMEOUT_MS);
  try {
    const response = await fetch(`${baseUrl}/v1/realtime/calls`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${ephemeralToken}` },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      throw new Error(`calls failed: ${response.status} ${await response.text()}`);
    }
    const { answer, conversation_id: conversationId } = await response.json();
    if (!answer || !conversationId) {
      throw new Error("Invalid response: missing answer or conversation_id");
    }
    return { answer, conversationId };
  } finally {
    clearTimeout(timer);
  }
}

function onMessage(event) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch (error) {
    data = { unparsed: String(event.data) };
  }
  session.messages.push({ t: now(), type: data.type ?? null, data });
}

function onRemoteTrack(event) {
  if (event.track.kind !== "audio") return;
  const stream = event.streams[0] ?? new MediaStream([event.track]);
  // Chromium feeds WebAudio from a remote WebRTC track only while a media element plays it.
  const element = document.getElementById("assistant-audio");
  element.srcObject = stream;
  element.play().catch(() => {});
  session.remoteMeter = new LevelMeter(session.audioContext, stream);
}

async function startSession({ baseUrl, ephemeralToken, params = {} }) {
  session.startedAt = performance.now();
  session.audioContext = new AudioContext();
  await session.audioContext.resume();

  const iceServers = await fetchIceServers(baseUrl, ephemeralToken);
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: "all", iceCandidatePoolSize: 0 });
  session.pc = pc;
  pc.addEventListener("connectionstatechange", () => session.states.push({ t: now(), state: pc.connectionState }));
  pc.addEventListener("track", onRemoteTrack);

  // The SDK's transceivers, then the channel. Its senders start empty and get the tracks by
  // replaceTrack once mic and camera are enabled (no renegotiation); here that happens up front.
  const audio = pc.addTransceiver("audio", { direction: "sendrecv" });
  const video = pc.addTransceiver("video", { direction: "sendonly" });
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const [microphone] = media.getAudioTracks();
  const [camera] = media.getVideoTracks();
  await audio.sender.replaceTrack(microphone);
  await video.sender.replaceTrack(camera);
  session.localMeter = new LevelMeter(session.audioContext, new MediaStream([microphone]));

  const channel = pc.createDataChannel(DATA_CHANNEL_LABEL);
  session.channel = channel;
  channel.addEventListener("message", onMessage);

  const offer = await pc.createOffer({ offerToReceiveAudio: true, offerToReceiveVideo: false });
  await pc.setLocalDescription(offer);
  const candidates = await gatherIceCandidates(pc);
  const { answer, conversationId } = await connectToRealtime(baseUrl, ephemeralToken, pc, candidates, params);
  await pc.setRemoteDescription(new RTCSessionDescription({ sdp: answer.sdp, type: answer.type }));
  return {
    conversationId,
    iceServers,
    candidates,
    microphone: microphone.label,
    camera: { label: camera.label, ...camera.getSettings() },
  };
}

// What useOrgaAI's sendUpdatedParams sends: the key is `event`, not `type`.
function sendSessionUpdate(data) {
  session.channel.send(JSON.stringify({ event: "session.update", data }));
}

function codecOf(report, stats) {
  const codec = report.codecId ? stats.get(report.codecId) : null;
  return codec ? `${codec.mimeType}/${codec.clockRate}${codec.channels ? "/" + codec.channels : ""}` : null;
}

function candidateOf(stats, id) {
  const c = stats.get(id);
  return c ? { type: c.candidateType, protocol: c.protocol, address: c.address, port: c.port } : null;
}

function rtpSummary(report, stats) {
  const fields = {
    "outbound-rtp": ["packetsSent", "bytesSent", "framesEncoded", "framesSent", "frameWidth", "frameHeight",
      "encoderImplementation"],
    "inbound-rtp": ["packetsReceived", "packetsLost", "bytesReceived", "jitter", "totalSamplesReceived",
      "concealedSamples", "totalAudioEnergy", "totalSamplesDuration"],
  }[report.type];
  const out = { codec: codecOf(report, stats) };
  for (const name of fields) if (report[name] !== undefined) out[name] = report[name];
  return out;
}

async function statsSummary(pc) {
  const stats = await pc.getStats();
  const out = { outbound: {}, inbound: {}, candidatePair: null, dtlsState: null };
  for (const report of stats.values()) {
    if (report.type === "outbound-rtp") {
      out.outbound[report.kind] = rtpSummary(report, stats);
    } else if (report.type === "inbound-rtp") {
      out.inbound[report.kind] = rtpSummary(report, stats);
    } else if (report.type === "transport" && report.selectedCandidatePairId) {
      const pair = stats.get(report.selectedCandidatePairId);
      out.candidatePair = {
        state: pair.state,
        nominated: pair.nominated,
        currentRoundTripTime: pair.currentRoundTripTime,
        local: candidateOf(stats, pair.localCandidateId),
        remote: candidateOf(stats, pair.remoteCandidateId),
      };
      out.dtlsState = report.dtlsState;
    }
  }
  return out;
}

async function snapshot() {
  return {
    connectionState: session.pc ? session.pc.connectionState : "none",
    states: session.states,
    channelState: session.channel ? session.channel.readyState : "none",
    messages: session.messages,
    localAudio: session.localMeter ? session.localMeter.summary() : null,
    remoteAudio: session.remoteMeter ? session.remoteMeter.summary() : null,
    stats: session.pc ? await statsSummary(session.pc) : null,
  };
}

function endSession() {
  for (const meter of [session.localMeter, session.remoteMeter]) meter?.stop();
  session.pc?.getSenders().forEach((sender) => sender.track?.stop());
  session.pc?.close();
}
