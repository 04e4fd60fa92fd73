/**
 * Run by bench/data-parallel.ts under `mpirun -np 2`: the time of the gradient allreduce alone — one
 * in-place MPI_Allreduce per parameter tensor of the model, on resident (ORT-owned) buffers, right
 * after a barrier so no waiting for a slower rank is counted. Prints the median over repeats (rank 0).
 *
 * Usage: mpirun -np 2 node dist/bench/allreduce-probe.js '<model yaml object>' [repeats]
 */
import { parse } from 'yaml';
import { paramSpecs } from '../src/model/index.js';
import { sizeOf } from '../src/graph/shape.js';
import { parseModelConfig } from '../src/model/config.js';
import { launchFromEnv, World } from '../src/parallel/mpi.js';
import { loadRuntime } from '../src/runtime/index.js';
import { median } from './stats.js';

const model = parseModelConfig(parse(`{ ${process.argv[2]} }`));
const repeats = Number(process.argv[3] ?? 20);
const world = World.join(launchFromEnv()!);
const rt = loadRuntime();
const values = paramSpecs(model).map((s) => rt.tensor('float32', [...s.shape], Float32Array.from({ length: sizeOf(s.shape) }, () => Math.random())));
const views = values.map((v) => v.view());
const times: number[] = [];
for (let k = 0; k < repeats; k++) {
  await world.barrier();
  const t0 = performance.now();
  await world.allreduce(views, 'sum');
  times.push(performance.now() - t0);
}
const bytes = views.reduce((n, v) => n + v.byteLength, 0);
if (world.isRoot) console.log(JSON.stringify({ tensors: views.length, bytes, ms: median(times) }));
for (const v of values) v.dispose();
world.finalize();
