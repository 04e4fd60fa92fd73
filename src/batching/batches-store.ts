/**
 * Structural checks of a batches artifact (what `lory build-batches` writes), for `lory verify` and
 * for any stage that reads one: instance files whose sizes match the counts, an order that names each
 * kept document once, a shuffle that is a permutation, neighbour lists inside the store.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, readManifest, type Manifest } from '../artifacts/index.js';
import { readWholeFile } from '../data/binary.js';
import { BATCHES_KIND, BATCHES_VERSION, type BatchesStats } from './build-batches.js';

export function checkBatches(dir: string): Manifest<BatchesStats> {
  const manifest = readManifest<BatchesStats>(dir, BATCHES_KIND, BATCHES_VERSION);
  const s = manifest.stats;
  const damaged = (why: string) => new InputError(`${dir}: damaged batches: ${why}; rebuild it with \`lory build-batches … --force\``);
  const bytesPerToken = s.dtype === 'uint16' ? 2 : s.dtype === 'uint32' ? 4 : NaN;
  if (!Number.isFinite(bytesPerToken)) throw damaged(`dtype '${String(s.dtype)}' is neither uint16 nor uint32`);
  const size = (name: string) => manifest.files[name]?.bytes ?? -1;
  const instance = (s.seqLen + 1) * bytesPerToken;
  if (size('train.bin') !== s.trainInstances * instance) throw damaged(`train.bin holds ${size('train.bin')} bytes, not ${s.trainInstances} instances of ${s.seqLen + 1} ${s.dtype} tokens`);
  if (size('valid.bin') !== s.validInstances * instance) throw damaged(`valid.bin holds ${size('valid.bin')} bytes, not ${s.validInstances} instances of ${s.seqLen + 1} ${s.dtype} tokens`);

  const order = new Uint32Array(readWholeFile(join(dir, 'order.bin')));
  if (order.length !== s.documentsKept) throw damaged(`order.bin names ${order.length} documents, but ${s.documentsKept} were kept`);
  const seen = new Uint8Array(s.documents);
  for (const id of order) {
    if (id >= s.documents) throw damaged(`order.bin names document ${id} of ${s.documents}`);
    if (seen[id]) throw damaged(`order.bin names document ${id} twice`);
    seen[id] = 1;
  }
  const shuffle = new Uint32Array(readWholeFile(join(dir, 'shuffle.bin')));
  const instances = s.trainInstances + s.validInstances;
  if (shuffle.length !== instances) throw damaged(`shuffle.bin holds ${shuffle.length} entries for ${instances} instances`);
  const hit = new Uint8Array(instances);
  for (const i of shuffle) {
    if (i >= instances || hit[i]) throw damaged('shuffle.bin is not a permutation of the instances');
    hit[i] = 1;
  }
  if (existsSync(join(dir, 'knn.bin'))) {
    const k = s.knn?.k ?? 0;
    const neighbors = new Int32Array(readWholeFile(join(dir, 'knn.bin')));
    if (neighbors.length !== s.documents * k) throw damaged(`knn.bin holds ${neighbors.length} ids, not ${s.documents}×${k}`);
    for (const j of neighbors) if (j < -1 || j >= s.documents) throw damaged(`knn.bin names document ${j} of ${s.documents}`);
    const scores = new Float32Array(readWholeFile(join(dir, 'knn-scores.bin')));
    if (scores.length !== neighbors.length) throw damaged(`knn-scores.bin holds ${scores.length} scores for ${neighbors.length} neighbours`);
    for (const x of scores) if (!Number.isFinite(x)) throw damaged('knn-scores.bin holds a value that is not a finite number');
  }
  return manifest;
}
