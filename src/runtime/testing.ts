/** Small models for the runtime tests, written with lory's own ONNX writer. */
import { join } from 'node:path';
import { writeModel, type NodeSpec, type ValueSpec } from '../graph/onnx/writer.js';
import { PROJECT_ROOT } from './native.js';

export const TEST_OPS_LIBRARY = join(PROJECT_ROOT, 'kernels', 'build', 'test-ops', 'liblory_test_ops.so');

export function singleNodeModel(node: Omit<NodeSpec, 'name'>, inputs: ValueSpec[], outputs: ValueSpec[], opsets: Record<string, number> = { '': 21 }): Uint8Array {
  return writeModel({ graphName: `test_${node.opType}`, nodes: [{ ...node, name: `test/${node.opType}` }], inputs, outputs, opsets });
}
