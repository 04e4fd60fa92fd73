/**
 * IR → ONNX ModelProto. Only the nodes the requested outputs depend on are emitted (dead code is
 * pruned here); params and inputs they reach become graph inputs, constants become initializers.
 */
import type { AnyTypedArray, DType } from './dtype.js';
import { writeModel, type InitializerTensor, type NodeSpec, type ValueSpec, type AttributeValue } from './writer.js';
import type { LowerContext } from '../op.js';
import { GraphError } from '../shape.js';
import type { Graph, Node, Tensor } from '../tensor.js';

/** ai.onnx opset the lowering targets (RMSNormalization and RotaryEmbedding need 23). */
export const ONNX_OPSET = 23;

export interface ExportOptions {
  /** Graph output name → tensor. */
  outputs: Record<string, Tensor>;
  /** Inputs that must appear in the model even if no output depends on them (in this order first). */
  inputs?: Tensor[];
  graphName?: string;
  docString?: string;
}

export interface ExportedModel {
  bytes: Uint8Array;
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  /** Opset imports, including custom domains such as ai.lory. */
  opsets: Record<string, number>;
  nodeCount: number;
}

/** The IR nodes the given tensors depend on, in topological (creation) order. */
export function liveNodes(roots: readonly Tensor[]): Node[] {
  const seen = new Set<Node>();
  const stack = roots.map((t) => t.node).filter((n): n is Node => !!n);
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    for (const t of n.inputs) if (t.node && !seen.has(t.node)) stack.push(t.node);
  }
  return [...seen].sort((a, b) => a.id - b.id);
}

export function exportModel(graph: Graph, options: ExportOptions): ExportedModel {
  const outEntries = Object.entries(options.outputs);
  for (const [name, t] of outEntries) if (t.graph !== graph) throw new GraphError(`export: output '${name}' belongs to another graph`);
  const live = liveNodes(outEntries.map(([, t]) => t));

  const nodes: NodeSpec[] = [];
  const initializers: Array<{ name: string } & InitializerTensor> = [];
  const opsets: Record<string, number> = { '': ONNX_OPSET };
  const i64Cache = new Map<string, string>();
  const usedNodeNames = new Set<string>();
  const valueName = new Map<Tensor, string>();
  const emittedFor = new Map<Node, number>();

  // Outputs produced by a node (and requested once) take the output's name directly, saving an Identity.
  const claimed = new Set<Tensor>();
  const renames: Array<[string, Tensor]> = [];
  for (const [name, t] of outEntries) {
    if (t.node && !claimed.has(t)) {
      claimed.add(t);
      valueName.set(t, name);
    } else renames.push([name, t]);
  }

  const uniqueNodeName = (base: string) => {
    let name = base;
    for (let k = 1; usedNodeNames.has(name); k++) name = `${base}_${k}`;
    usedNodeNames.add(name);
    return name;
  };

  const referenced = new Set<Tensor>();
  const ctx: LowerContext = {
    value(t) {
      referenced.add(t);
      return valueName.get(t) ?? t.name;
    },
    out(node, index = 0) {
      const t = node.outputs[index]!;
      return valueName.get(t) ?? t.name;
    },
    tmp(node, hint) {
      return `${node.name}/${hint}`;
    },
    emit(node, opType, inputs, outputs, attrs, domain) {
      const k = emittedFor.get(node) ?? 0;
      emittedFor.set(node, k + 1);
      nodes.push({
        opType,
        inputs,
        outputs,
        name: uniqueNodeName(k === 0 ? node.name : `${node.name}/${opType}`),
        ...(attrs ? { attributes: attrs } : {}),
        ...(domain ? { domain } : {}),
      });
    },
    i64(values, shape) {
      const dims = shape ?? [values.length];
      const key = `${dims.join('x')}:${values.join(',')}`;
      let name = i64Cache.get(key);
      if (!name) {
        name = `i64/${key.length < 40 ? key : `#${i64Cache.size}`}`;
        i64Cache.set(key, name);
        initializers.push({ name, dtype: 'int64', shape: [...dims], data: BigInt64Array.from(values.map((v) => BigInt(v))) });
      }
      return name;
    },
    initializer(dtype: DType, shape, data: AnyTypedArray) {
      const name = `init/${initializers.length}`;
      initializers.push({ name, dtype, shape: [...shape], data });
      return name;
    },
    useOpset(domain, version) {
      const prev = opsets[domain];
      if (prev !== undefined && prev !== version) throw new GraphError(`export: domain '${domain}' used at opset ${prev} and ${version}`);
      opsets[domain] = version;
    },
  };

  for (const node of live) node.def.lower(ctx, node);
  for (const [name, t] of renames) {
    nodes.push({ opType: 'Identity', inputs: [ctx.value(t)], outputs: [name], name: uniqueNodeName(`output/${name}`) });
  }

  // Graph inputs: forced ones first, then the inputs/params the emitted nodes read, in creation order.
  const inputTensors: Tensor[] = [];
  const seenInputs = new Set<Tensor>();
  const addInput = (t: Tensor) => {
    if (seenInputs.has(t)) return;
    seenInputs.add(t);
    inputTensors.push(t);
  };
  for (const t of options.inputs ?? []) {
    if (t.kind !== 'input' && t.kind !== 'param') throw new GraphError(`export: '${t.name}' is not an input or parameter`);
    addInput(t);
  }
  const reads = [...referenced].sort((a, b) => a.id - b.id);
  for (const t of reads) if (t.kind === 'input' || t.kind === 'param') addInput(t);
  for (const t of reads) {
    if (t.kind !== 'const') continue;
    initializers.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: graph.constData.get(t.id)! });
  }

  const inputs: ValueSpec[] = inputTensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }));
  const outputs: ValueSpec[] = outEntries.map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));
  const bytes = writeModel({
    graphName: options.graphName ?? 'lory',
    nodes,
    inputs,
    outputs,
    initializers,
    opsets,
    ...(options.docString ? { docString: options.docString } : {}),
  });
  return { bytes, inputs, outputs, opsets, nodeCount: nodes.length };
}

export type { AttributeValue };
