/**
 * The offline bundle's transport format: one gzipped tar cut into parts of a chosen size, each with
 * its SHA-256, listed in manifest.json and in SHA256SUMS (the format `sha256sum -c` reads, so
 * install.sh checks the parts with no Node.js on the machine).
 */
import { createHash } from 'node:crypto';
import { createReadStream, renameSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError } from '../artifacts/errors.js';
import { hashFile } from '../artifacts/hash.js';

export const MANIFEST_FILE = 'manifest.json';
export const CHECKSUMS_FILE = 'SHA256SUMS';
/** The joined payload's checksum, checked by install.sh after joining (a second guard on the order). */
export const PAYLOAD_CHECKSUM_FILE = 'PAYLOAD.sha256';

export interface BundlePart {
  file: string;
  bytes: number;
  sha256: string;
}

export interface BundleManifest {
  format: 'lory-bundle';
  version: 1;
  createdAt: string;
  payload: BundlePart;
  partSize: number;
  parts: BundlePart[];
  /** What the payload holds (versions, sources); free-form, for people and for the install step. */
  contents: Record<string, unknown>;
}

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** '60M', '1G', '512K' or a byte count → bytes (binary units, as split(1) reads them). */
export function parsePartSize(text: string): number {
  const m = /^(\d+)([KMG]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m ? Number(m[1]) * UNITS[m[2]!.toUpperCase()]! : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new InputError(`--part-size: expected a positive size such as 60M, 1G or 512K, got '${text}'`);
  }
  return bytes;
}

/** Cuts `path` into `<name>.part-000`, `-001`, … of `partSize` bytes (the last one shorter) in `outDir`. */
export async function splitFile(path: string, outDir: string, partSize: number): Promise<BundlePart[]> {
  const parts: BundlePart[] = [];
  let current: { file: string; handle: Awaited<ReturnType<typeof open>>; bytes: number; hash: ReturnType<typeof createHash> } | undefined;
  const finish = async () => {
    if (!current) return;
    await current.handle.close();
    parts.push({ file: current.file, bytes: current.bytes, sha256: current.hash.digest('hex') });
    current = undefined;
  };
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    let buf = chunk as Buffer;
    while (buf.length > 0) {
      if (!current) {
        const file = `${basename(path)}.part-${String(parts.length).padStart(3, '0')}`;
        current = { file, handle: await open(join(outDir, file), 'w'), bytes: 0, hash: createHash('sha256') };
      }
      const take = buf.subarray(0, partSize - current.bytes);
      await current.handle.write(take);
      current.hash.update(take);
      current.bytes += take.length;
      buf = buf.subarray(take.length);
      if (current.bytes === partSize) await finish();
    }
  }
  await finish();
  return parts;
}

/** `sha256sum -c` input: one "<hash>  <file>" line per part. */
export function checksumLines(parts: readonly BundlePart[]): string {
  return parts.map((p) => `${p.sha256}  ${p.file}\n`).join('');
}

/** Writes a file through a temp name and a rename, so a reader never sees half of it. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Splits the payload into `outDir` and writes manifest.json, SHA256SUMS and PAYLOAD.sha256 beside the parts. */
export async function writeParts(
  payloadPath: string,
  outDir: string,
  partSize: number,
  contents: Record<string, unknown>,
): Promise<BundleManifest> {
  const payload = await hashPayload(payloadPath);
  const parts = await splitFile(payloadPath, outDir, partSize);
  const manifest: BundleManifest = { format: 'lory-bundle', version: 1, createdAt: new Date().toISOString(), payload, partSize, parts, contents };
  writeAtomic(join(outDir, CHECKSUMS_FILE), checksumLines(parts));
  writeAtomic(join(outDir, PAYLOAD_CHECKSUM_FILE), checksumLines([payload]));
  writeAtomic(join(outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

async function hashPayload(path: string): Promise<BundlePart> {
  return { file: basename(path), bytes: statSync(path).size, sha256: await hashFile(path) };
}
