import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command, InvalidArgumentError } from 'commander';
import { PROJECT_ROOT } from '../runtime/index.js';
import { UserError } from './errors.js';
import { runProgram } from './main.js';
import { applyUsageConventions, buildProgram } from './program.js';

const lory = (...args: string[]) => spawnSync(join(PROJECT_ROOT, 'bin', 'lory'), args, { encoding: 'utf8' });

// Runs a program in-process with stderr captured.
async function capture(program: Command, argv: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await runProgram(program, ['node', 'lory', ...argv]);
    return { code, stderr };
  } finally {
    process.stderr.write = write;
  }
}

function throwingProgram(error: Error): Command {
  const program = new Command('lory').option('--debug');
  program.command('boom').action(() => {
    throw error;
  });
  return program;
}

describe('the lory command line', () => {
  it('prints the package version', () => {
    const result = lory('--version');
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(result.status, 0);
    assert.equal(result.stdout.trim(), pkg.version);
  });

  it('shows examples in --help', () => {
    const result = lory('--help');
    assert.equal(result.status, 0);
    assert.match(result.stdout, /Examples:\n.*lory doctor/);
    assert.match(result.stdout, /--log-level <level>/);
  });

  it('exits 2 with a one-line message on an unknown command', () => {
    const result = lory('trian');
    assert.equal(result.status, 2);
    assert.match(result.stderr, /unknown command 'trian'/);
  });

  it('maps a user error to exit 2 and one line, without a stack', async () => {
    const { code, stderr } = await capture(throwingProgram(new UserError('data.jsonl:3: missing "text" field')), ['boom']);
    assert.equal(code, 2);
    assert.equal(stderr, 'error: data.jsonl:3: missing "text" field\n');
  });

  it('maps an internal error to exit 1 with a hint to rerun with --debug', async () => {
    const { code, stderr } = await capture(throwingProgram(new Error('index out of range')), ['boom']);
    assert.equal(code, 1);
    assert.match(stderr, /internal error: index out of range/);
    assert.match(stderr, /rerun with --debug/);
    assert.doesNotMatch(stderr, /at .*\.js:\d+/);
  });

  it('prints the stack of an internal error under --debug', async () => {
    const { code, stderr } = await capture(throwingProgram(new Error('index out of range')), ['--debug', 'boom']);
    assert.equal(code, 1);
    assert.match(stderr, /at .*\.js:\d+/);
  });

  it('reports the runtime, providers and the loaded test custom-op library in doctor --json', () => {
    const result = lory('doctor', '--json');
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout) as {
      ort: { version: string };
      providers: Array<{ name: string; usable: boolean }>;
      customOpLibraries: Array<{ name: string; loads: boolean; built: boolean }>;
      threads: { availableParallelism: number };
      cuda: { deviceCount: number; driverLoaded: boolean; detail: string };
      gpuTraining: { ready: boolean; reason?: string; cudaRuntime: string; libraries: Array<{ soname: string; path: string | null }> };
      mpi: { mpirun: string | null; version: string | null; binding: boolean };
    };
    assert.match(report.ort.version, /^1\.\d+\.\d+$/);
    assert.equal(report.providers.find((p) => p.name === 'cpu')?.usable, true);
    const testOps = report.customOpLibraries.find((l) => l.name === 'test-ops');
    assert.deepEqual([testOps?.built, testOps?.loads], [true, true]);
    for (const lib of report.customOpLibraries) if (lib.built && lib.name !== 'lory-ops-cuda') assert.equal(lib.loads, true, lib.name);
    assert.ok(report.threads.availableParallelism >= 1);
    assert.equal(typeof report.cuda.deviceCount, 'number');
    // GPU training readiness: the first problem in the order a user fixes them, and every CUDA library looked for.
    if (report.cuda.deviceCount === 0) {
      assert.equal(report.gpuTraining.ready, false);
      assert.equal(report.gpuTraining.reason, report.cuda.driverLoaded ? `no CUDA device visible (${report.cuda.detail})` : report.cuda.detail);
    }
    assert.deepEqual(report.gpuTraining.libraries.map((l) => l.soname), ['libcudart.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libcurand.so.10', 'libcudnn.so.9', 'libnccl.so.2']);
    // bin/setup installs Open MPI and builds the binding: multi-process training is ready.
    assert.equal(report.mpi.binding, true);
    assert.match(report.mpi.version ?? '', /Open/);
  });

  it('prints a readable doctor report', () => {
    const result = lory('doctor');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /onnxruntime\s+1\.\d+/);
    assert.match(result.stdout, /test-ops\s+loaded/);
    assert.match(result.stdout, /^gpu training {4}(ready: `lory train --device cuda` works here|not here: .+)$/m);
  });
});

describe('usage errors of every registered command', () => {
  // Built from the program itself, so commands added later are covered without editing this test.
  const commands = buildProgram().commands.map((c) => c.name());

  it('covers the data commands at least', () => {
    for (const name of ['prepare', 'embed', 'build-batches', 'params', 'verify', 'doctor']) assert.ok(commands.includes(name), name);
  });

  for (const name of commands) {
    it(`lory ${name} with an unknown flag exits 2 with one line`, () => {
      const r = lory(name, '--no-such-flag');
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      // Commander reports the first problem it meets: the unknown flag, or a required option or argument.
      assert.match(r.stderr, new RegExp(`^error: (unknown option '--no-such-flag'|required option|missing required argument).* \\(see \`lory ${name} --help\`\\)\n$`));
    });
  }

  it('maps an invalid option value inside a subcommand to exit 2, as before the command name', async () => {
    const program = new Command('lory').option('--debug');
    program.command('sub').option('--n <n>', 'a number', (v: string) => {
      if (v !== '1') throw new InvalidArgumentError('must be 1');
      return 1;
    });
    applyUsageConventions(program);
    const { code, stderr } = await capture(program, ['sub', '--n', '0']);
    assert.equal(code, 2);
    assert.equal(stderr, "error: option '--n <n>' argument '0' is invalid. must be 1 (see `lory sub --help`)\n");
  });
});
