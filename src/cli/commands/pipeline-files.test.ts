/**
 * Every command that reads a pipeline file (`train -c`, `run`, `params`), given one that is missing,
 * a folder, or that holds values YAML reads as NaN/Infinity or a misspelt field: one line naming the
 * path as typed (relative stays relative) and what is wrong, exit 2, the output untouched.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURE_TRAIN, tempDir } from '../../data/testing.js';
import { checkRows, type Row } from './table-testing.js';

const root = tempDir('pipeline-files');
const out = join(root, 'run');
const MODEL = 'model: { vocab_size: 320, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8 }';
const pipeline = (name: string, text: string) => {
  const path = join(root, name);
  writeFileSync(path, `out: ${out}\n${text}\n`);
  return path;
};
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Relative paths, resolved against the repository root the tests run in: the message must keep them so.
const missing = 'no-such-folder/pipeline.yaml';
const folder = 'pipelines';
const notFound = new RegExp(`^error: ${esc(missing)}: not found; expected a pipeline file \\(YAML\\)$`, 'm');
const isFolder = new RegExp(`^error: ${folder}: is a folder; expected a pipeline file \\(YAML\\)$`, 'm');

describe('commands that read a pipeline file refuse a bad one with one line', () => {
  const commands: Array<[string, (file: string) => string[]]> = [
    ['train -c', (file) => ['train', 'no-batches', '-o', out, '-c', file]],
    ['run', (file) => ['run', file]],
    ['params', (file) => ['params', file]],
  ];
  const rows: Row[] = commands.flatMap(([name, args]): Row[] => [
    { name: `${name} a file that does not exist`, args: args(missing), code: 2, message: notFound },
    { name: `${name} a folder`, args: args(folder), code: 2, message: isFolder },
  ]);
  rows.push(
    { name: 'lr: .nan', args: () => ['train', 'no-batches', '-o', out, '-c', pipeline('nan.yaml', `${MODEL}\ntrain: { lr: .nan }`)], code: 2, message: /nan\.yaml: train\.lr: expected a positive number, got NaN$/m },
    { name: 'lr: .inf', args: () => ['train', 'no-batches', '-o', out, '-c', pipeline('inf.yaml', `${MODEL}\ntrain: { lr: .inf }`)], code: 2, message: /inf\.yaml: train\.lr: expected a positive number, got Infinity$/m },
    { name: 'warmup: -.inf', args: () => ['train', 'no-batches', '-o', out, '-c', pipeline('ninf.yaml', `${MODEL}\ntrain: { warmup: -.inf }`)], code: 2, message: /ninf\.yaml: train\.warmup: expected a number in \[0, 1\], got -Infinity$/m },
    {
      name: 'model d_model: .nan (the model layer’s own check)',
      args: () => ['params', pipeline('dnan.yaml', MODEL.replace('d_model: 32', 'd_model: .nan'))],
      code: 2,
      message: /dnan\.yaml: model\.d_model: must be a positive integer, got NaN$/m,
    },
    {
      name: 'data: { trian: x } (only the did-you-mean line)',
      args: () => ['run', pipeline('trian.yaml', `${MODEL}\ndata: { trian: ${FIXTURE_TRAIN} }`)],
      code: 2,
      message: /^error: .*trian\.yaml: data\.trian: unknown field; did you mean 'train'\?$/m,
    },
  );
  checkRows(rows, out, it);
});
