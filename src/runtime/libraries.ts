/** The custom-op libraries lory builds (kernels/), where they live, and whether they load. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './native.js';

export interface CustomOpLibrary {
  /** Short name used in reports and options. */
  name: string;
  path: string;
  /** The execution provider its kernels are registered for. */
  provider: 'cpu' | 'cuda';
  description: string;
}

const BUILD = join(PROJECT_ROOT, 'kernels', 'build');

export const CUSTOM_OP_LIBRARIES: readonly CustomOpLibrary[] = [
  {
    name: 'lory-ops',
    path: join(BUILD, 'lory-ops', 'liblory_ops.so'),
    provider: 'cpu',
    description: 'merged-expert FFN (ai.lory), CPU kernels',
  },
  {
    name: 'lory-ops-cuda',
    path: join(BUILD, 'lory-ops', 'liblory_ops_cuda.so'),
    provider: 'cuda',
    description: 'merged-expert FFN (ai.lory), CUDA kernels',
  },
  {
    name: 'test-ops',
    path: join(BUILD, 'test-ops', 'liblory_test_ops.so'),
    provider: 'cpu',
    description: 'runtime test ops (ai.lory.test)',
  },
];

export function customOpLibrary(name: string): CustomOpLibrary | undefined {
  return CUSTOM_OP_LIBRARIES.find((lib) => lib.name === name);
}

export function isBuilt(lib: CustomOpLibrary): boolean {
  return existsSync(lib.path);
}
