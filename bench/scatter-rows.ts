/**
 * The embedding gradient's row scatter-add, three ways, at 2 threads (the default here), on resident
 * tensors (no copies into JS): lory's ScatterAddRows op (the default), the standard ScatterElements
 * lowering (the fallback without lory's op library), and ORT's ScatterND(reduction='add') — the old,
 * racy lowering, timed only as the speed it used to have: its results are wrong (docs/graph.md), and
 * the bench prints by how much. Shapes: the demo/issue model (V 4096, 8×256 tokens, d 128), a middle
 * one, and the paper's 0.3B (V 32000, 4×4096 tokens, d 1024).
 * Run: npm run build && node dist/bench/scatter-rows.js [--repeats 9]
 */
import * as G from '../src/graph/index.js';
import type { LowerContext, Node, Tensor } from '../src/graph/index.js';
import { customOpLibrary, isBuilt, loadRuntime, type ResidentValue } from '../src/runtime/index.js';
import { mulberry32 } from '../src/random/index.js';
import { median } from './stats.js';

const THREADS = 2;
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const REPEATS = arg('--repeats', 9);
const SHAPES = [
  { name: 'demo (V 4096, n 2048, d 128)', V: 4096, N: 2048, W: 128 },
  { name: 'middle (V 8192, n 8192, d 512)', V: 8192, N: 8192, W: 512 },
  { name: 'paper 0.3B (V 32000, n 16384, d 1024)', V: 32000, N: 16384, W: 1024 },
];

/** The pre-fix lowering, kept here only to time it: zeros + ScatterND(add). */
const RacyScatterND = G.defineOp<{ rows: number }>({
  opType: 'RacyScatterND',
  domain: '',
  infer: (ins, a) => [{ dtype: ins[1]!.dtype, shape: [a.rows, ins[1]!.shape[1]!] }],
  lower(ctx: LowerContext, n: Node) {
    const [ids, u] = n.inputs as [Tensor, Tensor];
    const rows = n.attrs.rows as number;
    const zeros = ctx.tmp(n, 'zeros');
    ctx.emit(n, 'ConstantOfShape', [ctx.i64([rows, u.shape[1]!])], [zeros], { value: { dtype: 'float32', shape: [1], data: new Float32Array(1) } });
    const idx = ctx.tmp(n, 'idx');
    ctx.emit(n, 'Reshape', [ctx.value(ids), ctx.i64([ids.size, 1])], [idx]);
    ctx.emit(n, 'ScatterND', [zeros, idx, ctx.value(u)], [ctx.out(n)], { reduction: 'add' });
  },
});

function model(variant: 'lory' | 'standard' | 'scatternd', V: number, N: number, W: number): Uint8Array {
  const g = new G.Graph();
  const ids = g.input('ids', 'int64', [N]);
  const u = g.input('u', 'float32', [N, W]);
  const out = variant === 'scatternd' ? RacyScatterND([ids, u], { rows: V })[0]! : G.scatterAdd(ids, u, V, { scatter: variant });
  return G.exportModel(g, { outputs: { out }, inputs: [ids, u] }).bytes;
}

async function main() {
  const lib = customOpLibrary('lory-ops');
  if (!lib || !isBuilt(lib)) throw new Error('lory-ops library is not built (node kernels/build.mjs)');
  const rt = loadRuntime();
  console.log(`row scatter-add, ${THREADS} threads, median of ${REPEATS} runs (after 2 warm-up runs), resident inputs and outputs`);
  console.log('| shape | ScatterAddRows (lory) | ScatterElements (standard) | ScatterND (old, racy) | standard / lory | ScatterND / lory | ScatterND max rel. error |');
  console.log('|---|---|---|---|---|---|---|');
  for (const { name, V, N, W } of SHAPES) {
    const rand = mulberry32(3);
    const idHost = BigInt64Array.from({ length: N }, () => BigInt(Math.min(V - 1, Math.floor(Math.exp(rand() * Math.log(V))) - 1)));
    const uHost = Float32Array.from({ length: N * W }, () => rand() - 0.5);
    const ids = rt.tensor('int64', [N], idHost);
    const u = rt.tensor('float32', [N, W], uHost);
    const times: Record<string, number> = {};
    const results: Record<string, Float32Array> = {};
    for (const variant of ['lory', 'standard', 'scatternd'] as const) {
      const session = await rt.createSession(model(variant, V, N, W), { intraOpThreads: THREADS, ...(variant === 'lory' ? { customOpLibraries: [lib.path] } : {}) });
      const out: ResidentValue = rt.tensor('float32', [V, W]);
      const run = () => session.run({ ids, u }, { into: { out } });
      await run();
      await run();
      const ts: number[] = [];
      for (let r = 0; r < REPEATS; r++) {
        const t = performance.now();
        await run();
        ts.push(performance.now() - t);
      }
      times[variant] = median(ts);
      results[variant] = out.read() as Float32Array;
      out.dispose();
      session.dispose();
    }
    let err = 0;
    let scale = 0;
    const ref = results.lory!;
    for (let i = 0; i < ref.length; i++) {
      err = Math.max(err, Math.abs(results.scatternd![i]! - ref[i]!));
      scale = Math.max(scale, Math.abs(ref[i]!));
    }
    const same = Buffer.compare(Buffer.from(results.lory!.buffer), Buffer.from(results.standard!.buffer)) === 0;
    const f = (ms: number) => `${ms.toFixed(2)} ms`;
    console.log(
      `| ${name} | ${f(times.lory!)} | ${f(times.standard!)} | ${f(times.scatternd!)} | ${(times.standard! / times.lory!).toFixed(2)}× | ${(times.scatternd! / times.lory!).toFixed(2)}× | ${(err / scale).toExponential(1)} (last run) |`,
    );
    if (!same) console.log(`  WARNING: lory and standard lowerings differ in bits at ${name}`);
    ids.dispose();
    u.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
