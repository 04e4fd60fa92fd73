/**
 * Test/bench adapter: run an exported model and get plain host tensors back. The one place in
 * src/graph that touches a runtime, so swapping backends is a one-file change.
 */
import ort from 'onnxruntime-node';
import type { AnyTypedArray, DType } from '../onnx/dtype.js';

export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: AnyTypedArray;
}

export interface LoadedModel {
  run(feeds: Record<string, HostTensor>, outputs?: string[]): Promise<Record<string, HostTensor>>;
  dispose(): Promise<void>;
}

export async function loadModel(bytes: Uint8Array, options: { threads?: number } = {}): Promise<LoadedModel> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: options.threads ?? 1, interOpNumThreads: 1 });
  return {
    async run(feeds, outputs) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor(v.dtype as 'float32', v.data as Float32Array, v.shape);
      const res = outputs ? await session.run(ortFeeds, outputs) : await session.run(ortFeeds);
      const out: Record<string, HostTensor> = {};
      for (const [k, v] of Object.entries(res)) out[k] = { dtype: v.type as DType, shape: [...v.dims], data: v.data as AnyTypedArray };
      return out;
    },
    dispose: () => session.release(),
  };
}

export async function runModel(bytes: Uint8Array, feeds: Record<string, HostTensor>, outputs?: string[]): Promise<Record<string, HostTensor>> {
  const m = await loadModel(bytes);
  try {
    return await m.run(feeds, outputs);
  } finally {
    await m.dispose();
  }
}
