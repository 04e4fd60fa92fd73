/**
 * The graph IR: symbolic tensors with dtype and static shape, the nodes that produce them, and the
 * Graph that owns both. Nodes are appended in creation order, which is therefore a topological order
 * (an op can only consume tensors that already exist); grad() and the ONNX lowering rely on that.
 */
import type { AnyTypedArray, DType } from './onnx/dtype.js';
import { GraphError, type Shape, fmt, sizeOf } from './shape.js';
import type { OpDef, OutSpec } from './op.js';

export type TensorKind = 'input' | 'param' | 'const' | 'value';

export interface ParamOptions {
  dtype?: DType;
  /** Optimizer parameter group (e.g. 'no_decay' for norms and embeddings). Default 'decay'. */
  group?: string;
}

export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly kind: TensorKind,
    /** Value name for inputs, params and constants; producing-node based for values. */
    readonly name: string,
    readonly node?: Node,
    readonly index = 0,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  get size(): number {
    return sizeOf(this.shape);
  }
  toString(): string {
    return `${this.name}:${this.dtype}${fmt(this.shape)}`;
  }
}

export interface Node {
  readonly id: number;
  readonly def: OpDef;
  readonly inputs: readonly Tensor[];
  readonly outputs: Tensor[];
  readonly attrs: Record<string, unknown>;
  /** Unique, scoped, readable: `layer3/attn/q_proj/MatMul`. Becomes the ONNX node name. */
  readonly name: string;
}

export interface ConstData {
  data: AnyTypedArray;
}

/**
 * A recomputation region (`Graph.checkpoint`): the nodes built inside it. grad() differentiates them
 * through a copy of the region rebuilt from its inputs, so the forward's intermediates are not kept.
 */
export interface Region {
  readonly name: string;
  readonly nodes: Node[];
}

/**
 * Rewrites an op as it is built (precision.ts: casts around matrix products); returns its outputs, or
 * undefined to add the op unchanged.
 */
export type OpInterceptor = (def: OpDef, inputs: readonly Tensor[], attrs: Record<string, unknown>, outs: readonly OutSpec[], label?: string) => Tensor[] | undefined;

const isFloat = (d: DType) => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
export { isFloat };

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly params: Tensor[] = [];
  /** Parameter group per param id. */
  readonly paramGroups = new Map<number, string>();
  readonly constData = new Map<number, AnyTypedArray>();
  private nextId = 0;
  private scopePath: string[] = [];
  private usedNames = new Map<string, number>();
  private valueNames = new Set<string>();
  private scalarCache = new Map<string, Tensor>();
  private memo = new Map<string, Tensor>();
  private region: Region | undefined;
  private regions = new Map<number, Region>();
  /** Set while a precision policy is in force (precision.ts); op builders consult it. */
  interceptor: OpInterceptor | undefined;

  private claimValueName(name: string): void {
    if (this.valueNames.has(name)) throw new GraphError(`graph: the name '${name}' is already used`);
    this.valueNames.add(name);
  }

  /** A batch input fed at run time. */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    this.claimValueName(name);
    const t = new Tensor(this, this.nextId++, dtype, [...shape], 'input', name);
    this.inputs.push(t);
    return t;
  }

  /** A trainable parameter: a graph input the train step also emits an updated value for. */
  param(name: string, shape: Shape, options: ParamOptions = {}): Tensor {
    this.claimValueName(name);
    const t = new Tensor(this, this.nextId++, options.dtype ?? 'float32', [...shape], 'param', name);
    this.params.push(t);
    this.paramGroups.set(t.id, options.group ?? 'decay');
    return t;
  }

  groupOf(param: Tensor): string {
    return this.paramGroups.get(param.id) ?? 'decay';
  }

  /** A constant baked into the model as an initializer. */
  constant(dtype: DType, shape: Shape, data: AnyTypedArray): Tensor {
    if (data.length !== sizeOf(shape)) throw new GraphError(`constant: shape ${fmt(shape)} needs ${sizeOf(shape)} elements, got ${data.length}`);
    const name = this.uniqueName([...this.scopePath, 'const'].join('/'));
    const t = new Tensor(this, this.nextId++, dtype, [...shape], 'const', name);
    this.constData.set(t.id, data);
    return t;
  }

  /** A rank-0 constant, shared per (value, dtype). */
  scalar(value: number, dtype: DType = 'float32'): Tensor {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    let t = this.scalarCache.get(key);
    if (!t) {
      const data = dtype === 'float64' ? Float64Array.of(value) : dtype === 'int64' ? BigInt64Array.of(BigInt(value)) : dtype === 'int32' ? Int32Array.of(value) : dtype === 'bool' ? Uint8Array.of(value ? 1 : 0) : Float32Array.of(value);
      if (dtype === 'float16' || dtype === 'bfloat16') throw new GraphError(`scalar: ${dtype} constants are not supported yet`);
      const saved = this.scopePath;
      this.scopePath = [];
      t = this.constant(dtype, [], data);
      this.scopePath = saved;
      this.scalarCache.set(key, t);
    }
    return t;
  }

  /** A tensor built once per key (shared constants such as a causal mask), outside any scope. */
  shared(key: string, make: () => Tensor): Tensor {
    let t = this.memo.get(key);
    if (!t) {
      // Outside any recomputation region too: a shared constant is built once, not per region.
      const saved = this.region;
      this.region = undefined;
      try {
        t = this.withScopePath([], make);
      } finally {
        this.region = saved;
      }
      this.memo.set(key, t);
    }
    return t;
  }

  /** Run `fn` with `name` pushed on the name scope: nodes built inside are named `.../name/Op`. */
  scope<T>(name: string, fn: () => T): T {
    this.scopePath.push(name);
    try {
      return fn();
    } finally {
      this.scopePath.pop();
    }
  }

  /**
   * `scope(name, fn)` whose nodes grad() recomputes for the backward pass (gradient checkpointing):
   * the backward keeps only the region's inputs and rebuilds the rest just before it needs it. A
   * region inside a region belongs to the outer one.
   */
  checkpoint<T>(name: string, fn: () => T): T {
    if (this.region) return this.scope(name, fn);
    this.region = { name: [...this.scopePath, name].join('/'), nodes: [] };
    try {
      return this.scope(name, fn);
    } finally {
      this.region = undefined;
    }
  }

  /** The recomputation region a node was built in, if any. */
  regionOf(node: Node): Region | undefined {
    return this.regions.get(node.id);
  }

  /** Replace the whole scope path while `fn` runs (grad() builds under `grad/<forward scope>`). */
  withScopePath<T>(path: string[], fn: () => T): T {
    const saved = this.scopePath;
    this.scopePath = path;
    try {
      return fn();
    } finally {
      this.scopePath = saved;
    }
  }

  get currentScope(): readonly string[] {
    return this.scopePath;
  }

  private uniqueName(base: string): string {
    const n = this.usedNames.get(base) ?? 0;
    this.usedNames.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  }

  /** Append a node; used by op builders (see op.ts `apply`). */
  addNode(def: OpDef, inputs: readonly Tensor[], attrs: Record<string, unknown>, outs: ReadonlyArray<{ dtype: DType; shape: Shape }>, label?: string): Node {
    for (const t of inputs) {
      if (t.graph !== this) throw new GraphError(`${def.type}: operand ${t} belongs to another graph`);
    }
    const name = this.uniqueName([...this.scopePath, label ?? def.onnxName ?? def.type].join('/'));
    const node: Node = { id: this.nextId++, def, inputs, outputs: [], attrs, name };
    outs.forEach((o, i) => {
      node.outputs.push(new Tensor(this, this.nextId++, o.dtype, [...o.shape], 'value', outs.length === 1 ? name : `${name}:${i}`, node, i));
    });
    this.nodes.push(node);
    if (this.region) {
      this.region.nodes.push(node);
      this.regions.set(node.id, this.region);
    }
    return node;
  }
}
