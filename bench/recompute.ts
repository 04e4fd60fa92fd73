/**
 * train.recompute: peak memory and step time of the compiled train step with and without per-layer
 * recomputation, at a shape where activations dominate (seq 1024, d 256). One configuration per
 * process, so the peak RSS is that run's:
 *
 *   /usr/bin/time -f %M node dist/bench/recompute.js <dense|lory|lory-standard> <0|1> [steps]
 *
 * prints the median step wall and CPU time and the losses (the same, bit for bit, either way).
 */
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { initParams, loryTrainSpec, modelSessionOptions, resolveModelConfig } from '../src/model/index.js';
import { randomTokens } from '../src/model/testing.js';
import { Trainer } from '../src/train/trainer.js';
import { median } from './stats.js';

const [kind = 'dense', flag = '0', stepsArg = '3'] = process.argv.slice(2);
const recompute = flag === '1';
const B = 2;
const S = 1024;
const base = { vocabSize: 2048, dModel: 256, nLayers: 8, nHeads: 4, dFf: 768, contextLength: S };
const lory = { ...base, experts: 4, segmentLength: 256 };
const c = resolveModelConfig(kind === 'lory' ? lory : kind === 'lory-standard' ? { ...lory, ffnImpl: 'standard' } : base);
const ids = (v: number[]) => ({ dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(v.map(BigInt)) });

const trainer = await Trainer.create(compileTrainStep(loryTrainSpec(c, { batch: B, seq: S, recompute })), initParams(c, 1), modelSessionOptions(c), ['step']);
const times: number[] = [];
const cpu: number[] = []; // process CPU time (ORT's threads included): the work, less sensitive to a busy machine
const losses: number[] = [];
for (let step = 1; step <= Number(stepsArg); step++) {
  const batch = { tokens: ids(randomTokens(B * S, c.vocabSize, step)), targets: ids(randomTokens(B * S, c.vocabSize, 100 + step)) };
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = await trainer.step(batch, 1e-3, step);
  times.push(performance.now() - t0);
  const c1 = process.cpuUsage(c0);
  cpu.push((c1.user + c1.system) / 1000);
  for (const v of Object.values(r.diagnostics)) v.dispose();
  losses.push(r.loss);
}
trainer.dispose();
console.log(JSON.stringify({ kind, recompute, ffnImpl: c.ffnImpl, medianStepMs: Math.round(median(times)), medianStepCpuMs: Math.round(median(cpu)), losses }));
