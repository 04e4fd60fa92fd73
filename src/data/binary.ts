/** Small helpers for lory's binary files: sequential buffered writes and little-endian uint64 tables. */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

/** Appends bytes to a file through a buffer, so millions of small writes cost few system calls. */
export class BufferedWriter {
  private readonly fd: number;
  private readonly buffer: Buffer;
  private used = 0;
  bytesWritten = 0;

  constructor(path: string, capacity = 1 << 22) {
    this.fd = openSync(path, 'w');
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  write(bytes: Uint8Array): void {
    if (bytes.byteLength > this.buffer.length - this.used) this.flush();
    if (bytes.byteLength > this.buffer.length) writeAll(this.fd, bytes);
    else {
      this.buffer.set(bytes, this.used);
      this.used += bytes.byteLength;
    }
    this.bytesWritten += bytes.byteLength;
  }

  writeTyped(array: ArrayBufferView): void {
    this.write(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  }

  flush(): void {
    if (this.used > 0) writeAll(this.fd, this.buffer.subarray(0, this.used));
    this.used = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

/**
 * writeSync may write less than asked (a nearly full disk writes what fits and reports no error);
 * writing on until every byte is out turns that into the ENOSPC it is, instead of a silently short file.
 */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}

/** Reads a whole file into a fresh, aligned ArrayBuffer (typed-array views need alignment). */
export function readWholeFile(path: string): ArrayBuffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const out = new ArrayBuffer(size);
    const view = new Uint8Array(out);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, view, done, Math.min(size - done, 1 << 30), done);
      if (n === 0) throw new Error(`${path}: file shrank while reading`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** A table of uint64 offsets read into doubles (exact below 2^53, far above any corpus here). */
export function readOffsets(path: string): Float64Array {
  const raw = new BigUint64Array(readWholeFile(path));
  const out = new Float64Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = Number(raw[i]);
  return out;
}

export function offsetsBytes(offsets: ArrayLike<number>): Uint8Array {
  const raw = new BigUint64Array(offsets.length);
  for (let i = 0; i < offsets.length; i++) raw[i] = BigInt(offsets[i]!);
  return new Uint8Array(raw.buffer);
}
