/**
 * Test/bench adapter over lory's runtime: run an exported model with host tensors in and out.
 * Training tests use the runtime directly (resident values); this is for one-off evaluations.
 */
import { loadRuntime, type HostTensor, type Session, type SessionOptions } from '../../runtime/index.js';

export type { HostTensor };

export interface LoadedModel {
  readonly session: Session;
  run(feeds: Record<string, HostTensor>, outputs?: string[]): Promise<Record<string, HostTensor>>;
  dispose(): Promise<void>;
}

export async function loadModel(bytes: Uint8Array, options: SessionOptions = {}): Promise<LoadedModel> {
  const session = await loadRuntime().createSession(bytes, { intraOpThreads: 1, ...options });
  return {
    session,
    async run(feeds, outputs) {
      const res = await session.run(feeds, outputs ? { outputs } : {});
      const out: Record<string, HostTensor> = {};
      for (const [k, v] of Object.entries(res)) {
        out[k] = { dtype: v.dtype, shape: [...v.shape], data: v.read() };
        v.dispose();
      }
      return out;
    },
    async dispose() {
      session.dispose();
    },
  };
}

export async function runModel(bytes: Uint8Array, feeds: Record<string, HostTensor>, outputs?: string[], options: SessionOptions = {}): Promise<Record<string, HostTensor>> {
  const m = await loadModel(bytes, options);
  try {
    return await m.run(feeds, outputs);
  } finally {
    await m.dispose();
  }
}
