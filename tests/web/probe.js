// Shared by the test pages: what the page hears, from the globals `analyser` and `audioContext`
// that each page script sets when the remote audio track arrives.
async function dominantFrequency() {
  if (!analyser) return { frequency: null, level: null, state: "no audio track received" };
  await audioContext.resume();
  const bins = new Float32Array(analyser.frequencyBinCount);
  const sums = new Float64Array(analyser.frequencyBinCount);
  // Several looks 100 ms apart, summed in linear power: one glitchy look cannot decide.
  for (let look = 0; look < 5; look++) {
    await new Promise((r) => setTimeout(r, 100));
    analyser.getFloatFrequencyData(bins);
    for (let i = 1; i < bins.length; i++) sums[i] += Math.pow(10, bins[i] / 10);
  }
  let best = 1;
  for (let i = 2; i < sums.length; i++) if (sums[i] > sums[best]) best = i;
  return {
    frequency: best * audioContext.sampleRate / analyser.fftSize,
    level: 10 * Math.log10(sums[best] / 5),
    state: audioContext.state,
  };
}
