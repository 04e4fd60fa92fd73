/**
 * Test helpers for eval, inspect and generate: a byte-level tokenizer without merges (one token per
 * UTF-8 byte, so token and byte counts can be checked by hand), held-out stores made with it by the
 * real `prepare`, and tiny checkpoints written by the real checkpoint writer.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepare } from '../data/prepare.js';
import { byteLevelTokenizerJson } from '../data/tokenizer.js';
import { tempDir, writeJsonl } from '../data/testing.js';
import { initParams, resolveModelConfig, type ModelConfig, type ParamValues } from '../model/index.js';
import { writeCheckpoint } from '../train/checkpoint.js';

/** EOS (id 0) + 256 byte symbols, no merges: every UTF-8 byte is one token. */
export function byteTokenizer(dir: string, eos?: string): string {
  const path = join(dir, 'tokenizer.json');
  writeFileSync(path, JSON.stringify(byteLevelTokenizerJson([], 257, eos)));
  return path;
}

export const BYTE_VOCAB = 257;

export interface Doc {
  text: string;
  domain?: string;
  [k: string]: unknown;
}

/** A token store of `docs` made by `lory prepare` with `tokenizer`. */
export async function heldOutStore(docs: Doc[], tokenizer: string): Promise<string> {
  const dir = tempDir('heldout');
  const input = writeJsonl(join(dir, 'docs.jsonl'), docs);
  const out = join(dir, 'store');
  await prepare({ inputs: [input], out, tokenizer });
  return out;
}

export const tinyModel = (over: Partial<ModelConfig> = {}) =>
  resolveModelConfig({
    vocabSize: BYTE_VOCAB,
    dModel: 16,
    nLayers: 2,
    nHeads: 2,
    dFf: 32,
    contextLength: 16,
    segmentLength: 4,
    experts: 3,
    initStd: 0.3,
    routerInitStd: 2,
    ffnImpl: 'standard',
    ...over,
  });

/** A checkpoint of `model` with seeded random weights at step 10 × seed, written by the real checkpoint writer (into `run`: a new run by default). */
export async function tinyCheckpoint(model: ModelConfig, tokenizer: string, seed = 1, params?: ParamValues, run = tempDir('run')): Promise<{ run: string; dir: string; params: ParamValues }> {
  const p = params ?? initParams(model, seed);
  const dir = await writeCheckpoint({
    runDir: run,
    state: { step: 10 * seed, tokensSeen: 0, cursor: { epoch: 0, position: 0 }, rng: { seed }, phase: model.experts > 1 ? 'moe' : 'dense' },
    model,
    config: {},
    params: p,
    tokenizerPath: tokenizer,
  });
  return { run, dir, params: p };
}
