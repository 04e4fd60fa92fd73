/** `lory doctor`: is this machine ready to train? */
import type { Command } from 'commander';
import { diagnose, type DiagnosticsReport } from '../../runtime/diagnostics.js';
import { startProgress } from '../progress.js';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MPI_ADDON_PATH } from '../../parallel/mpi.js';
import { findMpirun } from '../launch-ranks.js';

function formatReport(r: DiagnosticsReport): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const lines = [`node            ${r.node} (${r.platform})`];
  if ('error' in r.ort) lines.push(`onnxruntime     NOT LOADED: ${r.ort.error}`);
  else lines.push(`onnxruntime     ${r.ort.version} (C API ${r.ort.apiVersion}) from ${r.ort.library}`);
  lines.push(`threads         ${r.threads.availableParallelism} available; ORT intra-op default: ${r.threads.ortIntraOpDefault}`);
  lines.push(
    `cuda device     ${r.cuda ? (r.cuda.deviceCount > 0 ? `${r.cuda.deviceCount} visible (${r.cuda.detail})` : `none (${r.cuda.detail})`) : 'unknown'}`,
  );
  lines.push('execution providers');
  for (const p of r.providers) {
    lines.push(`  ${p.name.padEnd(6)} compiled in: ${yes(p.compiledIn)}, usable: ${yes(p.usable)}${p.detail ? ` — ${p.detail.split('\n')[0]}` : ''}`);
  }
  lines.push('custom-op libraries');
  for (const l of r.customOpLibraries) {
    const state = !l.built ? 'not built' : l.loads ? 'loaded' : `does not load: ${l.error?.split('\n')[0]}`;
    lines.push(`  ${l.name.padEnd(14)} ${state}  (${l.description}; ${l.path})`);
  }
  if (r.gpuTraining) {
    const g = r.gpuTraining;
    lines.push(`gpu training    ${g.ready ? 'ready: `lory train --device cuda` works here' : `not here: ${g.reason}`}`);
    lines.push(`  cuda runtime  ${g.cudaRuntime}`);
    for (const l of g.libraries) lines.push(`  ${l.soname.padEnd(18)} ${l.path ? `${l.path} (${l.source})` : 'not found'}`);
  }
  lines.push(r.ok ? 'status          ok' : 'status          PROBLEMS FOUND (see above)');
  return lines.join('\n');
}

/** Multi-process training: mpirun on PATH (and its version), lory's MPI binding built. */
function probeMpi(): { mpirun: string | null; version: string | null; binding: boolean } {
  const mpirun = findMpirun() ?? null;
  const version = mpirun ? (spawnSync(mpirun, ['--version'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0]!.trim() || null : null;
  return { mpirun, version, binding: existsSync(MPI_ADDON_PATH) };
}

function formatMpi(m: ReturnType<typeof probeMpi>): string {
  const launcher = m.mpirun ? `${m.version ?? 'mpirun'} (${m.mpirun})` : 'mpirun not on PATH';
  return `mpi             ${launcher}; lory's binding ${m.binding ? 'built' : `not built (${MPI_ADDON_PATH})`}${m.mpirun && m.binding ? ': `mpirun -np N lory train` works' : ''}`;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check the runtime: ONNX Runtime, execution providers, custom-op libraries, threads, GPUs')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExamples:\n  $ lory doctor\n  $ lory doctor --json | jq .customOpLibraries')
    .action(async (options: { json?: boolean }) => {
      const progress = options.json ? undefined : startProgress('probing the runtime');
      const report = { ...(await diagnose()), mpi: probeMpi() };
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        progress?.succeed('runtime probed');
        process.stdout.write(`${formatReport(report)}\n${formatMpi(report.mpi)}\n`);
      }
      if (!report.ok) process.exitCode = 1;
    });
}
