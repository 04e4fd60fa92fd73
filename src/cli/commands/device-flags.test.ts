/**
 * `--device` on every command that computes, and `train.device` in a pipeline: a malformed value, or a
 * GPU this machine cannot use, exits 2 with one line naming the flag or field and the reason, before
 * anything is read or written. (Run where no GPU is usable; skipped where one is.)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../data/testing.js';
import { loadRuntime } from '../../runtime/index.js';
import { checkRows, type Row } from './table-testing.js';

const root = tempDir('device-flags');
const out = join(root, 'out');
const MODEL = 'model: { vocab_size: 320, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8 }';
const pipeline = (name: string, train: string) => {
  const path = join(root, name);
  writeFileSync(path, `out: ${out}\n${MODEL}\ntrain: { ${train} }\n`);
  return path;
};
const gpuPresent = loadRuntime().cudaDevices().deviceCount > 0 && 'a GPU is present here';
const unusable = (where: string, value: string, device = 'cuda:0') => new RegExp(`^error: ${where} ${value}: cannot compute on ${device} here: .+$`, 'm');
const malformed = (value: string) => new RegExp(`^error: --device: expected cpu, cuda or cuda:N \\(N a device number\\), got '${value}'$`, 'm');

describe('--device and train.device refuse what this machine cannot do, with one line', () => {
  const commands: Array<[string, string[]]> = [
    ['train', ['train', 'no-batches', '-o', out, '-c', pipeline('plain.yaml', 'steps: 2')]],
    ['eval perplexity', ['eval', 'perplexity', 'no-run', '--data', 'no-store', '-o', out]],
    ['eval tasks', ['eval', 'tasks', 'no-run', '--tasks', 'no-tasks.jsonl', '-o', out]],
    ['inspect-experts', ['inspect-experts', 'no-run', '--data', 'no-store', '-o', out]],
    ['generate', ['generate', 'no-run', 'Hello']],
    ['embed', ['embed', 'no-store', '-o', out]],
  ];
  const rows: Row[] = commands.flatMap(([name, args]): Row[] => [
    { name: `${name} --device cuda`, args: [...args, '--device', 'cuda'], code: 2, message: unusable('--device', 'cuda'), skip: gpuPresent },
    { name: `${name} --device cuda:7`, args: [...args, '--device', 'cuda:7'], code: 2, message: unusable('--device', 'cuda:7', 'cuda:7'), skip: gpuPresent },
    { name: `${name} --device gpu`, args: [...args, '--device', 'gpu'], code: 2, message: malformed('gpu') },
  ]);
  rows.push(
    { name: 'train.device: cuda in the pipeline', args: ['train', 'no-batches', '-o', out, '-c', pipeline('cuda.yaml', 'steps: 2, device: cuda')], code: 2, message: unusable('train.device', 'cuda'), skip: gpuPresent },
    { name: 'train.device: gpu in the pipeline', args: ['train', 'no-batches', '-o', out, '-c', pipeline('gpu.yaml', 'steps: 2, device: gpu')], code: 2, message: /gpu\.yaml: train\.device: expected cpu, cuda or cuda:N, got "gpu"$/m },
    // The flag overrides the pipeline: --device cpu gets past the device to the missing batches.
    { name: '--device cpu over train.device: cuda', args: ['train', 'no-batches', '-o', out, '-c', pipeline('cuda2.yaml', 'steps: 2, device: cuda'), '--device', 'cpu'], code: 2, message: /no-batches/ },
  );
  checkRows(rows, out, it);
});
