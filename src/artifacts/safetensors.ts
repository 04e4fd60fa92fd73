/**
 * The safetensors format, read and written: an 8-byte little-endian header length, a JSON header
 * naming each tensor's dtype, shape and byte range [begin, end) relative to the data, then the raw
 * little-endian data, tensors back to back. The header is padded with spaces to a multiple of 8
 * bytes so every tensor starts 8-aligned (what the Rust/Python readers produce and prefer).
 *
 * Embedding weights (fp16) are widened to float32 by `readSafetensors`; checkpoints use the strict
 * `readTensors`, which keeps F32/F64 as they are and names the tensor and file on any damage.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { InputError, inputFileError } from './errors.js';

export interface FloatTensor {
  shape: number[];
  data: Float32Array;
}

export type StDtype = 'F16' | 'F32' | 'F64' | 'I32' | 'I64' | 'U8';
const BYTES: Record<StDtype, number> = { F16: 2, F32: 4, F64: 8, I32: 4, I64: 8, U8: 1 };

export interface StoredTensor {
  dtype: StDtype;
  shape: number[];
  /** F32 → Float32Array, F64 → Float64Array, others → the raw bytes (Uint8Array). */
  data: Float32Array | Float64Array | Uint8Array;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** IEEE 754 half → float32, exactly (subnormals, infinities and NaN included). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** All half → float values, precomputed once: a lookup beats bit twiddling per element. */
let halfTable: Float32Array | undefined;
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

function parseHeader(file: Buffer, path: string): { header: Record<string, unknown>; base: number } {
  if (file.length < 8) throw new InputError(`${path}: not a safetensors file (too short: ${file.length} bytes)`);
  const headerLength = Number(file.readBigUInt64LE(0));
  if (headerLength <= 0 || 8 + headerLength > file.length) throw new InputError(`${path}: not a safetensors file (bad header length; truncated?)`);
  try {
    const header = JSON.parse(file.toString('utf8', 8, 8 + headerLength)) as unknown;
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Error('not an object');
    return { header: header as Record<string, unknown>, base: 8 + headerLength };
  } catch {
    throw new InputError(`${path}: not a safetensors file (header is not a JSON object)`);
  }
}

/** Float tensors of a safetensors file as float32 (F16 widened); integer tensors are skipped. */
export function readSafetensors(path: string): Map<string, FloatTensor> {
  const file = readFileSync(path);
  const { header, base } = parseHeader(file, path);
  const out = new Map<string, FloatTensor>();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const entry = raw as HeaderEntry;
    const [start, end] = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    const bytes = file.subarray(base + start, base + end);
    if (entry.dtype !== 'F16' && entry.dtype !== 'F32') continue; // integer buffers (e.g. position_ids) are not weights
    if (bytes.length !== count * (entry.dtype === 'F16' ? 2 : 4)) throw new InputError(`${path}: tensor ${name} has ${bytes.length} bytes for shape [${entry.shape}]`);
    // Copy into a fresh (aligned) buffer, then view it; little-endian like every machine lory runs on.
    const aligned = new Uint8Array(bytes).buffer;
    let data: Float32Array;
    if (entry.dtype === 'F16') {
      const table = halfLookup();
      const halves = new Uint16Array(aligned);
      data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = table[halves[i]!]!;
    } else {
      data = new Float32Array(aligned);
    }
    out.set(name, { shape: entry.shape, data });
  }
  return out;
}

/**
 * Every tensor of a safetensors file, validated strictly: known dtype, integer shape, offsets inside
 * the file, contiguous and non-overlapping, byte length = product(shape) × dtype size.
 */
export function readTensors(path: string): { tensors: Map<string, StoredTensor>; metadata: Record<string, string> } {
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch (error) {
    throw inputFileError(error, path);
  }
  const { header, base } = parseHeader(file, path);
  const dataBytes = file.length - base;
  const tensors = new Map<string, StoredTensor>();
  let metadata: Record<string, string> = {};
  const spans: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const e = raw as Partial<HeaderEntry>;
    const dtype = e?.dtype as StDtype;
    if (!(dtype in BYTES)) throw new InputError(`${path}: tensor ${name} has unsupported dtype ${JSON.stringify(e?.dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new InputError(`${path}: tensor ${name} has a malformed shape`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1]! < offsets[0]!) {
      throw new InputError(`${path}: tensor ${name} has malformed data_offsets`);
    }
    const [start, end] = offsets as [number, number];
    if (end > dataBytes) throw new InputError(`${path}: tensor ${name} ends at byte ${end} of data, but the file holds ${dataBytes} (truncated)`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - start !== count * BYTES[dtype]) throw new InputError(`${path}: tensor ${name} has ${end - start} bytes for ${dtype} shape [${shape}]`);
    spans.push([start, end, name]);
    const bytes = new Uint8Array(file.subarray(base + start, base + end)); // a copy: aligned, and the file buffer can go
    const data = dtype === 'F32' ? new Float32Array(bytes.buffer) : dtype === 'F64' ? new Float64Array(bytes.buffer) : bytes;
    tensors.set(name, { dtype, shape: [...shape], data });
  }
  spans.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [start, end, name] of spans) {
    if (start !== at) throw new InputError(`${path}: tensor ${name} starts at byte ${start}, expected ${at} (overlapping or gapped data)`);
    at = end;
  }
  if (at !== dataBytes) throw new InputError(`${path}: ${dataBytes - at} bytes after the last tensor`);
  return { tensors, metadata };
}

export interface TensorToWrite {
  shape: readonly number[];
  data: Float32Array | Float64Array;
}

/**
 * Write tensors (in the given order) to `path` atomically: a temporary file beside it, flushed, then
 * renamed, so a crash never leaves a half-written file under the real name.
 */
export function writeSafetensors(path: string, tensors: ReadonlyArray<readonly [string, TensorToWrite]>, metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const dtype = t.data instanceof Float64Array ? 'F64' : 'F32';
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`writeSafetensors: tensor ${name} has ${t.data.length} values for shape [${t.shape}]`);
    if (name in header) throw new Error(`writeSafetensors: duplicate tensor name ${name}`);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, Buffer.from(json, 'utf8'));
    for (const [, t] of tensors) writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
