/**
 * Generation speed with and without the key/value cache (`npm run bench:generate`).
 *
 * The demo's model shape (d 128, 4 layers, 4 heads, V 2048, Lory with 4 experts, prompt routing) with
 * seeded random weights (speed does not depend on the values), at several context lengths. Each
 * round generates the same greedy continuation of a 16-token prompt with the cache and then without
 * it; rounds alternate the two so that load from other processes hits both alike. Reported: median
 * tokens/s over the decode phase (first to last generated token: the prompt and graph compilation
 * are excluded), CPU ms per token (process.cpuUsage: less distorted by a shared machine), and the
 * ratio cached/uncached.
 */
import { initParams, resolveModelConfig } from '../src/model/index.js';
import { generateTokens } from '../src/generate/generate.js';
import { randomTokens } from '../src/model/testing.js';
import { median } from './stats.js';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const TOKENS = Number(process.env.TOKENS ?? 48);
const THREADS = Number(process.env.THREADS ?? 2);

async function measure(model: ReturnType<typeof resolveModelConfig>, params: ReturnType<typeof initParams>, prompt: number[], cache: boolean) {
  let t0 = 0;
  let c0 = 0;
  let t1 = 0;
  let c1 = 0;
  let n = 0;
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const r = await generateTokens(model, params, prompt, 0, {
    temperature: 0, topK: 0, topP: 1, seed: 0, stopAtEos: false, maxTokens: TOKENS, cache, threads: THREADS,
    onToken: () => {
      n++;
      if (n === 1) [t0, c0] = [performance.now(), cpu()];
      [t1, c1] = [performance.now(), cpu()];
    },
  });
  const steps = n - 1; // decode steps between the first and the last generated token
  return { tokens: r.tokens, tokensPerSecond: (1000 * steps) / (t1 - t0), cpuMsPerToken: (c1 - c0) / steps };
}

async function main() {
  console.log(`generate: ${TOKENS} greedy tokens after a 16-token prompt, ${ROUNDS} alternating rounds, ${THREADS} ORT threads; medians`);
  console.log('context  experts  cached tok/s  uncached tok/s  speed-up  cached CPU ms/tok  uncached CPU ms/tok  same tokens');
  for (const context of [256, 512, 1024]) {
    for (const experts of [1, 4]) {
      const model = resolveModelConfig({ vocabSize: 2048, dModel: 128, nLayers: 4, nHeads: 4, dFf: 384, contextLength: context, segmentLength: 64, experts, ffnImpl: 'standard' });
      const params = initParams(model, 1);
      const prompt = randomTokens(16, 2048, 3);
      const cached: Array<Awaited<ReturnType<typeof measure>>> = [];
      const full: Array<Awaited<ReturnType<typeof measure>>> = [];
      await measure(model, params, prompt, true); // warm-up (allocations, page faults)
      for (let i = 0; i < ROUNDS; i++) {
        cached.push(await measure(model, params, prompt, true));
        full.push(await measure(model, params, prompt, false));
      }
      const same = cached.every((c, i) => c.tokens.join() === full[i]!.tokens.join());
      const m = (xs: typeof cached, k: 'tokensPerSecond' | 'cpuMsPerToken') => median(xs.map((x) => x[k]));
      console.log(
        `${String(context).padStart(7)}  ${String(experts).padStart(7)}  ${m(cached, 'tokensPerSecond').toFixed(1).padStart(12)}  ${m(full, 'tokensPerSecond').toFixed(1).padStart(14)}  ${(m(cached, 'tokensPerSecond') / m(full, 'tokensPerSecond')).toFixed(1).padStart(7)}×  ${m(cached, 'cpuMsPerToken').toFixed(2).padStart(17)}  ${m(full, 'cpuMsPerToken').toFixed(2).padStart(19)}  ${same ? 'yes' : 'NO'}`,
      );
    }
  }
}

await main();
