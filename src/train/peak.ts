/**
 * The machine's measured matmul peak, the denominator of MFU: a square float32 GEMM through the same
 * ONNX Runtime CPU session settings training uses, best of a few runs (the best run is the one least
 * disturbed by other work on a shared machine).
 */
import { exportModel } from '../graph/onnx/lower.js';
import { Graph, matmul } from '../graph/index.js';
import { loadRuntime, type DeviceName, type SessionOptions } from '../runtime/index.js';

export interface PeakProbe {
  /** FLOP/s of the best run. */
  flops: number;
  size: number;
  runs: number;
}

/** On a GPU (`options.executionProvider` cuda) the operands live in its memory and the GEMM is larger. */
export async function measureGemmPeak(options: SessionOptions = {}, size = options.executionProvider === 'cuda' ? 4096 : 512, runs = 6): Promise<PeakProbe> {
  const g = new Graph();
  const a = g.input('a', 'float32', [size, size]);
  const b = g.input('b', 'float32', [size, size]);
  const { bytes } = exportModel(g, { outputs: { c: matmul(a, b) }, inputs: [a, b] });
  const rt = loadRuntime();
  const session = await rt.createSession(bytes, { logId: 'gemm-peak', ...options });
  const data = Float32Array.from({ length: size * size }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const device: DeviceName = options.executionProvider === 'cuda' ? `cuda:${options.deviceId ?? 0}` : 'cpu';
  const A = rt.tensor('float32', [size, size], data, device);
  const B = rt.tensor('float32', [size, size], data, device);
  try {
    let best = Infinity;
    for (let r = 0; r < runs + 1; r++) {
      const t = performance.now();
      const out = await session.run({ a: A, b: B });
      const dt = (performance.now() - t) / 1000;
      for (const v of Object.values(out)) v.dispose();
      if (r > 0) best = Math.min(best, dt); // the first run warms up the session
    }
    return { flops: (2 * size ** 3) / best, size, runs };
  } finally {
    A.dispose();
    B.dispose();
    session.dispose();
  }
}
