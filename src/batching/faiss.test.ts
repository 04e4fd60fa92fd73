import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/testing.js';
import { blasInfo, chooseCoreType, FAISS_ADDON_PATH, FaissIndex } from './faiss.js';
import { mulberry32 } from './random.js';

function randomUnitVectors(n: number, d: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let j = 0; j < d; j++) norm += (x[i * d + j] = rand() - 0.5) ** 2;
    for (let j = 0; j < d; j++) x[i * d + j]! /= Math.sqrt(norm);
  }
  return x;
}

/** The slow, obviously correct reference: every inner product, sorted. */
function bruteForce(x: Float32Array, q: Float32Array, d: number, k: number): Array<Array<[number, number]>> {
  const n = x.length / d;
  const out: Array<Array<[number, number]>> = [];
  for (let a = 0; a < q.length / d; a++) {
    const scores: Array<[number, number]> = [];
    for (let b = 0; b < n; b++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += q[a * d + j]! * x[b * d + j]!;
      scores.push([b, s]);
    }
    out.push(scores.sort((p, r) => r[1] - p[1]).slice(0, k));
  }
  return out;
}

describe('FAISS binding', () => {
  const d = 32;
  const x = randomUnitVectors(500, d, 1);
  const q = randomUnitVectors(40, d, 2);

  it('finds the same neighbours and inner products as brute force with exact IndexFlatIP', async () => {
    const index = FaissIndex.create(d, 'Flat', 'ip');
    await index.add(x);
    assert.equal(index.ntotal, 500);
    const { distances, labels } = await index.search(q, 5);
    const ref = bruteForce(x, q, d, 5);
    for (let a = 0; a < 40; a++) {
      for (let r = 0; r < 5; r++) {
        assert.equal(Number(labels[a * 5 + r]), ref[a]![r]![0], `query ${a} rank ${r}`);
        assert.ok(Math.abs(distances[a * 5 + r]! - ref[a]![r]![1]) < 1e-5);
      }
    }
    await index.dispose();
    assert.equal(index.disposed, true);
    await assert.rejects(index.search(q, 5), /disposed/);
  });

  it('writes results into the caller’s arrays in place and marks missing neighbours with -1', async () => {
    const index = FaissIndex.create(d, 'Flat', 'ip');
    await index.add(x.subarray(0, 3 * d));
    const into = { distances: new Float32Array(40 * 4), labels: new BigInt64Array(40 * 4) };
    const result = await index.search(q, 4, into);
    assert.equal(result.labels, into.labels);
    assert.equal(into.labels[3], -1n);
    assert.ok(into.labels[0]! >= 0n && into.labels[0]! < 3n);
    await index.dispose();
  });

  it('takes factory strings with search parameters: IVF with nprobe = nlist is exact, HNSW takes efSearch', async () => {
    const ivf = FaissIndex.create(d, 'IVF8,Flat', 'ip');
    await assert.rejects(ivf.add(x), /must be trained first/);
    await ivf.train(x);
    await ivf.add(x);
    ivf.setParameter('nprobe', 8);
    const exact = await ivf.search(q, 3);
    const ref = bruteForce(x, q, d, 3);
    for (let a = 0; a < 40; a++) assert.equal(Number(exact.labels[a * 3]), ref[a]![0]![0]);
    const hnsw = FaissIndex.create(d, 'HNSW16', 'ip');
    await hnsw.add(x);
    hnsw.setParameter('efSearch', 64);
    assert.equal((await hnsw.search(q, 1)).labels.length, 40);
    await ivf.dispose();
    await hnsw.dispose();
  });

  it('turns FAISS errors into exceptions instead of aborting the process', async () => {
    assert.throws(() => FaissIndex.create(d, 'NoSuchIndex42', 'ip'), { name: 'FaissError', message: /cannot build FAISS index 'NoSuchIndex42'/ });
    const flat = FaissIndex.create(d, 'Flat', 'ip');
    assert.throws(() => flat.setParameter('nprobe', 4), { name: 'FaissError', message: /cannot set nprobe=4/ });
    await assert.rejects(flat.add(new Float32Array(d + 1)), /not a whole number of 32-d vectors/);
    await assert.rejects(FaissIndex.read('/nonexistent/index.faiss'), /file not found/);
    await flat.add(x);
    await assert.rejects(flat.search(q, 0), /k must be a positive integer/);
    await flat.dispose();
  });

  it('saves and loads an index that answers the same', async () => {
    const path = join(tempDir('faiss'), 'index.faiss');
    const index = FaissIndex.create(d, 'IVF4,Flat', 'ip');
    await index.train(x);
    await index.add(x);
    index.setParameter('nprobe', 2);
    await index.write(path);
    const loaded = await FaissIndex.read(path);
    loaded.setParameter('nprobe', 2);
    assert.deepEqual((await loaded.search(q, 3)).labels, (await index.search(q, 3)).labels);
    await index.dispose();
    await loaded.dispose();
  });

  it('searches on a worker thread: the event loop keeps turning during a long search', async () => {
    const big = randomUnitVectors(20000, 64, 3);
    const index = FaissIndex.create(64, 'Flat', 'ip');
    index.setThreads(1);
    await index.add(big);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    await index.search(big.subarray(0, 4000 * 64), 10);
    const elapsed = performance.now() - started;
    clearInterval(timer);
    assert.ok(elapsed < 50 || ticks >= 3, `${ticks} timer ticks during a ${elapsed.toFixed(0)} ms search`);
    await index.dispose();
  });

  it('refuses counts that overrun the arrays, natively as well as in the wrapper', async () => {
    const { loadFaiss } = await import('./faiss.js');
    const raw = (loadFaiss() as unknown as { factory(d: number, s: string, m: string): { add(x: Float32Array, n: number): Promise<void>; dispose(): void } }).factory(d, 'Flat', 'ip');
    assert.throws(() => raw.add(new Float32Array(4), 25e6), /vectors holds 4 values; the call needs 800000000/);
    raw.dispose();
  });

  it('chooses the OpenBLAS kernel family from CPU flags, and a user-set OPENBLAS_CORETYPE wins', () => {
    assert.equal(chooseCoreType(new Set(['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'])), 'SkylakeX');
    assert.equal(chooseCoreType(new Set(['avx2', 'fma'])), 'Haswell');
    assert.equal(chooseCoreType(new Set(['sse2'])), undefined);
    assert.match(blasInfo().config, /OpenBLAS 0\.3/);
    const probe = `process.env.OPENBLAS_CORETYPE='Prescott'; console.log(require(${JSON.stringify(FAISS_ADDON_PATH)}).blasCoreName())`;
    assert.equal(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }).trim(), 'Prescott');
  });

  it('applies its OpenBLAS choice through loadFaiss() when the user set none, and honours a user value and "off"', () => {
    const module = JSON.stringify(new URL('./faiss.js', import.meta.url).href);
    const probe = (env: Record<string, string | undefined>) => {
      const code = `import(${module}).then((m) => { m.loadFaiss(); console.log(JSON.stringify([process.env.OPENBLAS_CORETYPE ?? null, m.blasInfo().coreName])); })`;
      const childEnv: Record<string, string | undefined> = { ...process.env, OPENBLAS_CORETYPE: undefined, LORY_OPENBLAS_CORETYPE: undefined, ...env };
      for (const key of Object.keys(childEnv)) if (childEnv[key] === undefined) delete childEnv[key];
      return JSON.parse(execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', env: childEnv as NodeJS.ProcessEnv }).trim()) as [string | null, string];
    };
    const [chosen, coreName] = probe({});
    const expected = chooseCoreType(new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/)));
    assert.equal(chosen, expected ?? null, 'lory set OPENBLAS_CORETYPE from the CPU flags');
    if (expected) assert.equal(coreName.toLowerCase(), expected.toLowerCase(), 'and OpenBLAS runs that kernel family');
    assert.equal(probe({ OPENBLAS_CORETYPE: 'Prescott' })[1], 'Prescott', 'a user value wins');
    assert.equal(probe({ LORY_OPENBLAS_CORETYPE: 'off' })[0], null, '"off" leaves OpenBLAS to detect');
  });
});
