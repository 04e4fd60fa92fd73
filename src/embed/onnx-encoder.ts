/**
 * A user's own sentence encoder exported to ONNX (e.g. Contriever) with its tokenizer.json. Inputs
 * are found by name (input_ids, attention_mask, token_type_ids when present); the output is a
 * [batch, dim] embedding when the model has one (named like "sentence_embedding"), else the first
 * [batch, seq, dim] output (last_hidden_state), mean-pooled over real tokens here. Either way lory
 * L2-normalises the result.
 */
import { CPU, deviceSessionOptions, loadRuntime, type Device, type HostTensor, type Session, type TensorInfo } from '../runtime/index.js';
import { InputError } from '../artifacts/index.js';
import { meanPoolNormalize, planBatches, type Encoder } from './encoder.js';

function intTensor(info: TensorInfo, B: number, S: number, fill: (b: number, s: number) => number): HostTensor {
  const n = B * S;
  if (info.dtype === 'int64') {
    const data = new BigInt64Array(n);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) data[b * S + s] = BigInt(fill(b, s));
    return { dtype: 'int64', shape: [B, S], data };
  }
  if (info.dtype === 'int32') {
    const data = new Int32Array(n);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) data[b * S + s] = fill(b, s);
    return { dtype: 'int32', shape: [B, S], data };
  }
  if (info.dtype === 'float32') {
    const data = new Float32Array(n);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) data[b * S + s] = fill(b, s);
    return { dtype: 'float32', shape: [B, S], data };
  }
  throw new InputError(`encoder input '${info.name}' has type ${info.dtype}; lory feeds int64, int32 or float32`);
}

export class OnnxEncoder implements Encoder {
  private constructor(
    readonly name: string,
    private readonly session: Session,
    private readonly output: TensorInfo,
    readonly dim: number,
    readonly maxSequence: number,
    private readonly fixedBatch: number | undefined,
    private readonly batchTokens: number,
    private readonly maxBatch: number,
    private readonly padId: number,
  ) {}

  static async load(path: string, name: string, options: { threads?: number; batchTokens?: number; maxBatch?: number; maxSequence: number; padId: number; device?: Device }): Promise<OnnxEncoder> {
    let session: Session;
    try {
      session = await loadRuntime().createSession(path, { ...deviceSessionOptions(options.device ?? CPU), ...(options.threads ? { intraOpThreads: options.threads } : {}) });
    } catch (error) {
      throw new InputError(`--encoder ${path}: ONNX Runtime cannot load it (${(error as Error).message.split('\n')[0]})`);
    }
    const names = session.inputs.map((i) => i.name);
    if (!names.includes('input_ids')) throw new InputError(`--encoder ${path}: has no 'input_ids' input (its inputs: ${names.join(', ')})`);
    const unknown = names.filter((n) => !['input_ids', 'attention_mask', 'token_type_ids'].includes(n));
    if (unknown.length > 0) throw new InputError(`--encoder ${path}: lory cannot feed input(s) ${unknown.join(', ')}`);
    const pooled = session.outputs.find((o) => o.shape.length === 2 && /embedding/i.test(o.name));
    const output = pooled ?? session.outputs.find((o) => o.shape.length === 3);
    if (!output) throw new InputError(`--encoder ${path}: needs a [batch, dim] '*embedding*' output or a [batch, seq, dim] output`);
    const dim = output.shape[output.shape.length - 1]!;
    if (dim <= 0) throw new InputError(`--encoder ${path}: output '${output.name}' must have a fixed last dimension`);
    const ids = session.inputs.find((i) => i.name === 'input_ids')!;
    const fixedSeq = ids.shape[1]! > 0 ? ids.shape[1]! : undefined;
    const fixedBatch = ids.shape[0]! > 0 ? ids.shape[0]! : undefined;
    return new OnnxEncoder(name, session, output, dim, fixedSeq ?? options.maxSequence, fixedBatch, options.batchTokens ?? 4096, options.maxBatch ?? 64, options.padId);
  }

  async embed(ids: number[][], out: Float32Array, onRows?: (n: number) => void): Promise<void> {
    // Dynamic shapes: pad each batch to its longest sequence, rounded up to 16; fixed shapes: to them.
    const fixedSeq = this.session.inputs.find((i) => i.name === 'input_ids')!.shape[1]! > 0 ? this.maxSequence : undefined;
    const buckets = fixedSeq ? [fixedSeq] : Array.from({ length: Math.ceil(this.maxSequence / 16) }, (_, i) => Math.min(this.maxSequence, 16 * (i + 1)));
    const maxBatch = this.fixedBatch ?? this.maxBatch;
    for (const batch of planBatches(ids.map((s) => s.length), this.batchTokens, maxBatch, buckets)) {
      const S = batch.length;
      const B = this.fixedBatch ?? batch.rows.length;
      const seqs = batch.rows.map((r) => ids[r]!);
      const token = (b: number, s: number) => (b < seqs.length && s < seqs[b]!.length ? 1 : 0);
      const feeds: Record<string, HostTensor> = {};
      for (const input of this.session.inputs) {
        if (input.name === 'input_ids') feeds[input.name] = intTensor(input, B, S, (b, s) => (token(b, s) ? seqs[b]![s]! : this.padId));
        else if (input.name === 'attention_mask') feeds[input.name] = intTensor(input, B, S, token);
        else feeds[input.name] = intTensor(input, B, S, () => 0);
      }
      const result = await this.session.run(feeds, { outputs: [this.output.name] });
      const value = result[this.output.name]!;
      const data = value.read() as Float32Array;
      value.dispose();
      const rows = new Float32Array(B * this.dim);
      if (this.output.shape.length === 3) {
        const mask = new Uint8Array(B * S);
        for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) mask[b * S + s] = token(b, s);
        meanPoolNormalize(data, mask, B, S, this.dim, rows);
      } else {
        rows.set(data.subarray(0, B * this.dim));
        for (let b = 0; b < B; b++) {
          const row = rows.subarray(b * this.dim, (b + 1) * this.dim);
          const norm = Math.max(Math.sqrt(row.reduce((a, x) => a + x * x, 0)), 1e-12);
          for (let j = 0; j < this.dim; j++) row[j]! /= norm;
        }
      }
      batch.rows.forEach((r, j) => out.set(rows.subarray(j * this.dim, (j + 1) * this.dim), r * this.dim));
      onRows?.(batch.rows.length);
    }
  }

  dispose(): void {
    this.session.dispose();
  }
}
