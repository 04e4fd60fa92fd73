/**
 * A reader for the safetensors format: an 8-byte little-endian header length, a JSON header naming
 * each tensor's dtype, shape and byte range, then the raw little-endian data. Half-precision
 * tensors are widened to float32 (ONNX Runtime's CPU kernels lory uses are float32).
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../artifacts/index.js';

export interface FloatTensor {
  shape: number[];
  data: Float32Array;
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

export function readSafetensors(path: string): Map<string, FloatTensor> {
  const file = readFileSync(path);
  if (file.length < 8) throw new InputError(`${path}: not a safetensors file (too short)`);
  const headerLength = Number(file.readBigUInt64LE(0));
  if (headerLength <= 0 || 8 + headerLength > file.length) throw new InputError(`${path}: not a safetensors file (bad header length)`);
  let header: Record<string, HeaderEntry | Record<string, string>>;
  try {
    header = JSON.parse(file.toString('utf8', 8, 8 + headerLength)) as typeof header;
  } catch {
    throw new InputError(`${path}: not a safetensors file (header is not JSON)`);
  }
  const base = 8 + headerLength;
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
