import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../artifacts/index.js';
import { loadPipeline } from '../pipeline/load.js';
import { adamStateBytes, allreduceSeconds, commShare, computeSeconds, exposedSeconds, gradientBytes, ringAllreduceSeconds, type Cluster } from './scaling.js';

const FILE = join(PROJECT_ROOT, 'pipelines', 'paper-0.3b-8e.yaml');
const model = () => loadPipeline(FILE).runs[0]!.model;
const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.abs(expected) + 1e-15, `${what}: ${actual} ≠ ${expected}`);

// paper-0.3b-8e by hand: V 32000, d 1024, L 24, f 2816, E 8, T 256.
// P = 2·V·d + d + L·(4d² + 2d + E·3·d·f + d·E) = 65,536,000 + 1,024 + 24·73,410,560.
const P_HAND = 1_827_390_464;
// Forward FLOPs/token at S = 4096: 8d²L 201,326,592 + 4SdL 402,653,184 + 6dfL 415,236,096
// + 6EdfL/T 12,976,128 + 2dEL/T 1,536 + 2dV 65,536,000 = 1,097,729,536; training ×3.
const TRAIN_FLOPS_HAND = 3_293_188_608;

const NVLINK = 300e9;
const IB = 25e9;
const EIGHT_BY_EIGHT: Cluster = { name: '8×8', nodes: 8, gpusPerNode: 8, intraNode: NVLINK, interNode: IB };

test('ring allreduce: 2(N−1)/N · bytes / bandwidth', () => {
  close(ringAllreduceSeconds(1e9, 8, NVLINK), (2 * 7) / 8 / 300, '1 GB over 8 GPUs at 300 GB/s (5.83 ms)');
  close(ringAllreduceSeconds(1e9, 2, IB), 1 / 25, 'two ranks send the whole buffer once');
  assert.equal(ringAllreduceSeconds(1e9, 1, IB), 0, 'one rank has nothing to exchange');
});

test('cluster allreduce: one node is a plain NVLink ring, 8×8 adds an 8-node ring over the node link', () => {
  const bytes = 4 * P_HAND;
  close(allreduceSeconds(bytes, { ...EIGHT_BY_EIGHT, nodes: 1 }), (1.75 * bytes) / NVLINK, 'one node');
  close(allreduceSeconds(bytes, { ...EIGHT_BY_EIGHT, gpusPerNode: 1 }), (1.75 * bytes) / IB, 'eight single-GPU nodes');
  // 1.75 · 7,309,561,856 B · (1/300e9 + 1/25e9) = 0.04264 + 0.51166 s
  close(allreduceSeconds(bytes, EIGHT_BY_EIGHT), 0.55430844074666667, '8×8 hierarchical');
});

test("paper-0.3b-8e: total parameters by hand, equal to `lory params`' count; gradient bytes 4P and 2P", () => {
  const g = gradientBytes(model());
  assert.equal(g.total, P_HAND);
  const printed = JSON.parse(spawnSync(join(PROJECT_ROOT, 'bin', 'lory'), ['params', '--json', FILE], { encoding: 'utf8' }).stdout) as Array<{ params: { total: number; active: number } }>;
  assert.equal(printed[0]!.params.total, g.total);
  assert.equal(printed[0]!.params.active, g.active);
  // Active: one merged expert per layer instead of 8: 7 experts' FFN (3·d·f each) fewer per layer.
  assert.equal(g.active, P_HAND - 24 * 7 * 3 * 1024 * 2816);
  assert.equal(g.fp32, 4 * P_HAND);
  assert.equal(g.bf16, 2 * P_HAND);
});

test('compute per step, communication share serial and overlapped, ZeRO-1 moments: paper-0.3b-8e on 8×8 by hand', () => {
  const compute = computeSeconds(model(), { peak: 312e12, mfu: 0.4, tokens: 256 * 4096, seq: 4096 }, 64);
  close(compute, (TRAIN_FLOPS_HAND * 1_048_576) / (64 * 312e12 * 0.4), 'compute');
  close(compute, 0.43233655571692308, 'compute, as a number');
  const comm = 0.55430844074666667;
  const share = commShare(comm, compute);
  close(share.serial, comm / (comm + compute), 'serial share (0.562)');
  const exposed = comm - (2 / 3) * compute; // 0.26608 s
  close(share.overlapped, exposed / (compute + exposed), 'overlapped share (0.381)');
  assert.equal(exposedSeconds(0.1, 0.3), 0, 'communication shorter than the backward pass is hidden entirely');
  assert.equal(commShare(0.1, 0.3).overlapped, 0);
  assert.equal(adamStateBytes(model(), 64, false), 8 * P_HAND);
  assert.equal(adamStateBytes(model(), 64, true), (8 * P_HAND) / 64);
});
