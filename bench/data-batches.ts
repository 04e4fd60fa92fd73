/**
 * build-batches at scale: a synthetic corpus of N documents (default 100,000) in T topics — each
 * document ~60 words drawn mostly from its topic's vocabulary, embedded as its topic's direction plus
 * noise (384-d) — prepared, then batched by similarity and at random, each in a child process so its
 * peak memory is its own. Also: an approximate index (IVF) against exact search on the same vectors
 * (time, recall), and what the OpenBLAS kernel choice (OPENBLAS_CORETYPE) does to exact search.
 * `--part scale` times the kNN, graph and traversal phases alone on synthetic vectors at several sizes
 * (each run a child under /usr/bin/time for its peak RSS), to project build-batches to millions of
 * documents (docs/distributed-scaling.md); `--index synthetic` skips FAISS and gives each document k
 * random neighbours of its own topic, to time the graph and traversal where FAISS would take too long.
 * Run: npm run build && node dist/bench/data-batches.js [--docs 100000] [--part all|batches|ivf|blas]
 *      node dist/bench/data-batches.js --part scale --sizes 25000,50000,100000 --index Flat [--param nprobe=8] [--repeats 3]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '../src/batching/random.js';
import { median } from './stats.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const D = 384;
const self = fileURLToPath(import.meta.url);

function unitRows(n: number, topics: number, seed: number, noise: number): { vectors: Float32Array; topic: Uint32Array } {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const centres = Float32Array.from({ length: topics * D }, gauss);
  const vectors = new Float32Array(n * D);
  const topic = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const t = (topic[i] = Math.floor(rand() * topics));
    let norm = 0;
    for (let j = 0; j < D; j++) norm += (vectors[i * D + j] = centres[t * D + j]! + noise * gauss()) ** 2;
    for (let j = 0; j < D; j++) vectors[i * D + j]! /= Math.sqrt(norm);
  }
  return { vectors, topic };
}

async function setup(dir: string, n: number): Promise<void> {
  const { prepare } = await import('../src/data/prepare.js');
  const { openTokenStore } = await import('../src/data/token-store.js');
  const { writeEmbeddingsArtifact } = await import('../src/embed/store.js');
  const topics = 200;
  const { vectors, topic } = unitRows(n, topics, 1, 1.2);
  const rand = mulberry32(2);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const words = Array.from({ length: 40 + Math.floor(rand() * 40) }, () => (rand() < 0.7 ? `t${topic[i]}w${Math.floor(rand() * 300)}` : `common${Math.floor(rand() * 3000)}`));
    lines.push(JSON.stringify({ id: `doc${i}`, domain: `topic${topic[i]! % 20}`, text: words.join(' ') }));
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'corpus.jsonl'), `${lines.join('\n')}\n`);
  let t = performance.now();
  await prepare({ inputs: [join(dir, 'corpus.jsonl')], out: join(dir, 'tokens'), vocabSize: 4096 });
  console.log(`setup: ${n.toLocaleString('en')} documents prepared in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const store = openTokenStore(join(dir, 'tokens'));
  t = performance.now();
  await writeEmbeddingsArtifact({ out: join(dir, 'embeddings'), tokenStore: store, vectors, dim: D, encoder: { name: 'synthetic-topics', maxTokens: 0 } });
}

/** Child: one build-batches run; prints its stats as JSON. */
async function child(dir: string, strategy: 'similarity' | 'random'): Promise<void> {
  const { buildBatches } = await import('../src/batching/build-batches.js');
  const t = performance.now();
  const { manifest } = await buildBatches({ tokens: join(dir, 'tokens'), embeddings: join(dir, 'embeddings'), out: join(dir, `batches-${strategy}`), strategy, seqLen: 2047, force: true });
  const wall = (performance.now() - t) / 1000;
  process.stdout.write(JSON.stringify({ wall, maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024), stats: manifest.stats }));
}

async function ivf(n: number): Promise<void> {
  const { FaissIndex } = await import('../src/batching/faiss.js');
  const { allKnn } = await import('../src/batching/knn.js');
  const { vectors } = unitRows(n, 200, 1, 1.2);
  for (const [index, params] of [
    ['Flat', {}],
    ['IVF1024,Flat', { nprobe: 1 }],
    ['IVF1024,Flat', { nprobe: 8 }],
    ['HNSW32', { efSearch: 64 }],
  ] as Array<[string, Record<string, number>]>) {
    const t = performance.now();
    const r = await allKnn(vectors, D, { k: 10, index, params, recallSample: 1000 });
    const s = (performance.now() - t) / 1000;
    console.log(`kNN ${index.padEnd(13)} ${JSON.stringify(params).padEnd(15)} ${s.toFixed(1).padStart(6)} s  recall@10 ${r.recall === undefined ? '1 (exact)' : r.recall.toFixed(3)}`);
  }
  void FaissIndex;
}

/** Child: exact search timing under whatever OPENBLAS_CORETYPE the parent set. */
async function blasChild(): Promise<void> {
  const { blasInfo, FaissIndex } = await import('../src/batching/faiss.js');
  const { vectors } = unitRows(20000, 100, 3, 1);
  const index = FaissIndex.create(D, 'Flat', 'ip');
  await index.add(vectors);
  await index.search(vectors.subarray(0, 1000 * D), 11);
  const t = performance.now();
  await index.search(vectors, 11);
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - t) / 1000, core: blasInfo().coreName }));
}

const K = 10;
const TOPICS = 200;

/** k random members of each document's own topic (never itself): a kNN graph's shape without FAISS. */
function topicNeighbours(n: number, seed: number): { neighbors: Int32Array; scores: Float32Array; n: number; k: number } {
  const rand = mulberry32(seed);
  const topic = Uint32Array.from({ length: n }, () => Math.floor(rand() * TOPICS));
  const byTopic = Array.from({ length: TOPICS }, () => [] as number[]);
  topic.forEach((t, i) => byTopic[t]!.push(i));
  const neighbors = new Int32Array(n * K);
  const scores = new Float32Array(n * K);
  for (let i = 0; i < n; i++) {
    const members = byTopic[topic[i]!]!;
    const found: Array<[number, number]> = [];
    while (found.length < K) {
      const j = members[Math.floor(rand() * members.length)]!;
      if (j !== i) found.push([j, 0.5 + 0.5 * rand()]);
    }
    found.sort((a, b) => b[1] - a[1]);
    found.forEach(([j, s], r) => ((neighbors[i * K + r] = j), (scores[i * K + r] = s)));
  }
  return { neighbors, scores, n, k: K };
}

/** Child: generation, kNN, graph and traversal of n synthetic documents; prints seconds per phase as JSON. */
async function scaleChild(n: number, index: string, params: Record<string, number>): Promise<void> {
  const { allKnn } = await import('../src/batching/knn.js');
  const { undirectedGraph } = await import('../src/batching/graph.js');
  const { traverse } = await import('../src/batching/traverse.js');
  const seconds: Record<string, number> = {};
  const timed = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
    const t = performance.now();
    const r = await f();
    seconds[name] = (performance.now() - t) / 1000;
    return r;
  };
  let recall: number | null = null;
  let knn;
  if (index === 'synthetic') knn = await timed('generate', () => topicNeighbours(n, 1));
  else {
    const { vectors } = await timed('generate', () => unitRows(n, TOPICS, 1, 1.2));
    const r = await timed('knn', () => allKnn(vectors, D, { k: K, index, params, recallSample: index === 'Flat' ? 0 : 1000 }));
    recall = r.recall ?? null;
    knn = r;
  }
  const graph = await timed('graph', () => undirectedGraph(knn));
  const t = await timed('traverse', () => traverse(graph));
  process.stdout.write(JSON.stringify({ seconds, recall, paths: t.paths, edges: graph.adj.length }));
}

/** Runs a scale child under /usr/bin/time; its peak RSS (kB, the last stderr line) joins its JSON. */
function runScaleChild(n: number, index: string, params: Record<string, number>): { seconds: Record<string, number>; recall: number | null; paths: number; peakMB: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, self, '--scale-child', String(n), index, JSON.stringify(params)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`scale child (${n}, ${index}) failed: ${r.stderr}`);
  const kb = Number(r.stderr.trim().split('\n').pop());
  return { ...(JSON.parse(r.stdout) as { seconds: Record<string, number>; recall: number | null; paths: number }), peakMB: Math.round(kb / 1024) };
}

/** `--param name=value` (repeatable) as FAISS search parameters. */
function searchParams(): Record<string, number> {
  const out: Record<string, number> = {};
  process.argv.forEach((a, i) => {
    if (a !== '--param') return;
    const [name, value] = process.argv[i + 1]!.split('=');
    out[name!] = Number(value);
  });
  return out;
}

function scale(): void {
  const sizes = arg('sizes', '25000,50000,100000').split(',').map(Number);
  const index = arg('index', 'Flat');
  const params = searchParams();
  const repeats = Number(arg('repeats', '3'));
  console.log(`phase seconds: median of ${repeats} (each run a fresh child); peak RSS: median, /usr/bin/time -f %M`);
  console.log('documents  index                 generate      kNN    graph  traverse  peak RSS  recall@10  paths');
  for (const n of sizes) {
    const runs = Array.from({ length: repeats }, () => runScaleChild(n, index, params));
    const m = (phase: string) => (runs[0]!.seconds[phase] === undefined ? '—' : median(runs.map((r) => r.seconds[phase]!)).toFixed(2));
    const label = `${index}${Object.keys(params).length ? ` ${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(',')}` : ''}`;
    console.log(
      `${n.toLocaleString('en').padStart(9)}  ${label.padEnd(20)} ${m('generate').padStart(9)} ${m('knn').padStart(8)} ${m('graph').padStart(8)} ${m('traverse').padStart(9)} ` +
        `${`${median(runs.map((r) => r.peakMB))} MB`.padStart(9)}  ${(runs[0]!.recall === null ? (index === 'Flat' ? 'exact' : '—') : median(runs.map((r) => r.recall!)).toFixed(3)).padStart(9)}  ${runs[0]!.paths}` +
        `   (kNN runs: ${runs.map((r) => (r.seconds.knn ?? 0).toFixed(1)).join(', ')})`,
    );
  }
}

function runChild(args: string[], env: Record<string, string | undefined> = {}): Record<string, unknown> {
  const out = execFileSync(process.execPath, [self, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  return JSON.parse(out) as Record<string, unknown>;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!, process.argv[4] as 'similarity' | 'random');
  if (process.argv[2] === '--blas-child') return blasChild();
  if (process.argv[2] === '--scale-child') return scaleChild(Number(process.argv[3]), process.argv[4]!, JSON.parse(process.argv[5]!) as Record<string, number>);
  const n = Number(arg('docs', '100000'));
  const part = arg('part', 'all');
  const dir = arg('dir', join(os.tmpdir(), `lory-bench-batches-${n}`));
  console.log(`lory build-batches benchmark: ${os.availableParallelism()} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}, ${new Date().toISOString()}, work dir ${dir}`);
  if (part === 'scale') {
    scale();
    console.log(`load at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}`);
    return;
  }
  if (part === 'all' || part === 'batches') {
    await setup(dir, n);
    for (const strategy of ['similarity', 'random'] as const) {
      const r = runChild(['--child', dir, strategy]) as { wall: number; maxRssMB: number; stats: { seconds: Record<string, number>; adjacency: { similarity: { order: number; random: number }; sameDomain: { order: number; random: number } }; duplicatesDropped: number; trainInstances: number } };
      const s = r.stats;
      console.log(
        `${strategy.padEnd(10)} wall ${r.wall.toFixed(1)} s, peak RSS ${r.maxRssMB} MB; phases ${Object.entries(s.seconds).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}; ` +
          `adjacent cosine ${s.adjacency.similarity.order.toFixed(3)} (random ${s.adjacency.similarity.random.toFixed(3)}), same domain ${(100 * s.adjacency.sameDomain.order).toFixed(1)}% (random ${(100 * s.adjacency.sameDomain.random).toFixed(1)}%), ${s.trainInstances} instances`,
      );
    }
  }
  if (part === 'all' || part === 'ivf') await ivf(n);
  if (part === 'all' || part === 'blas') {
    const auto = runChild(['--blas-child']);
    const detected = runChild(['--blas-child'], { LORY_OPENBLAS_CORETYPE: 'off' });
    const generic = runChild(['--blas-child'], { OPENBLAS_CORETYPE: 'Prescott' });
    console.log(`exact search 20k×384 (k=10): lory's choice (${auto.core}) ${(auto.seconds as number).toFixed(2)} s; OpenBLAS's own detection (${detected.core}) ${(detected.seconds as number).toFixed(2)} s; generic kernels (${generic.core}) ${(generic.seconds as number).toFixed(2)} s = ${((generic.seconds as number) / (auto.seconds as number)).toFixed(1)}x slower`);
  }
}

await main();
