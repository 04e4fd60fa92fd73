/** `lory verify`'s first half: every file an artifact's manifest lists is there, of its size and sha256. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from './errors.js';
import { hashFile } from './hash.js';
import { contentHash, tryReadManifest, type Manifest } from './manifest.js';

export async function verifyFiles(dir: string): Promise<Manifest> {
  if (!existsSync(dir)) throw new InputError(`${dir}: not found`);
  if (!statSync(dir).isDirectory()) throw new InputError(`${dir}: is a file, not an artifact directory`);
  const manifest = tryReadManifest(dir);
  if (!manifest) throw new InputError(`${dir}: not a lory artifact (no manifest.json)`);
  for (const name of Object.keys(manifest.files).sort()) {
    const entry = manifest.files[name]!;
    const path = join(dir, name);
    if (!existsSync(path)) throw new InputError(`${dir}: ${name} is missing`);
    const bytes = statSync(path).size;
    if (bytes !== entry.bytes) throw new InputError(`${dir}: ${name} is ${bytes} bytes, the manifest says ${entry.bytes}`);
    const sha = await hashFile(path);
    if (sha !== entry.sha256) throw new InputError(`${dir}: ${name} does not match its sha256 in the manifest (the file changed after it was written)`);
  }
  if (contentHash(manifest.files) !== manifest.contentHash) throw new InputError(`${dir}: the manifest's contentHash does not match its file list`);
  return manifest;
}
