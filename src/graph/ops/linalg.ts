/** (Batched) MatMul and Einsum, the contractions of attention and of the merged-expert layer. */
import { apply1, requireFloat, requireSameDtype, simpleLowering, type OpDef } from '../op.js';
import { GraphError, broadcastShapes, fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { expand, reshape, transpose, transposeLast } from './shape-ops.js';

const MatMulDef: OpDef = {
  type: 'matmul',
  onnxName: 'MatMul',
  lowPrecision: true,
  lower: simpleLowering('MatMul'),
  vjp: (n, [g], needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    const ga = needs[0] ? sumTo(matmul(g!, transposeLast(b)), a.shape) : undefined;
    let gb: Tensor | undefined;
    if (needs[1]) {
      if (b.rank === 2 && a.rank > 2) {
        // Weight gradient of x[...,k]·W[k,n]: fold the batch axes into one GEMM instead of a batched
        // matmul followed by a reduction.
        const k = a.shape[a.rank - 1]!;
        const m = b.shape[1]!;
        gb = matmul(transpose(reshape(a, [-1, k]), [1, 0]), reshape(g!, [-1, m]));
      } else {
        gb = sumTo(matmul(transposeLast(a), g!), b.shape);
      }
    }
    return [ga, gb];
  },
};

/** a[..., m, k] · b[..., k, n] → [..., m, n]; both operands rank ≥ 2, batch axes broadcast. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  requireFloat('matmul', a, b);
  requireSameDtype('matmul', a, b);
  if (a.rank < 2 || b.rank < 2) throw new GraphError(`matmul: operands must have rank >= 2: ${fmt(a.shape)} x ${fmt(b.shape)}`);
  const m = a.shape[a.rank - 2]!;
  const k = a.shape[a.rank - 1]!;
  const k2 = b.shape[b.rank - 2]!;
  const n = b.shape[b.rank - 1]!;
  if (k !== k2) throw new GraphError(`matmul: inner dimensions differ: ${fmt(a.shape)} x ${fmt(b.shape)}`);
  let batch: number[];
  try {
    batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  } catch {
    throw new GraphError(`matmul: batch dimensions do not broadcast: ${fmt(a.shape)} x ${fmt(b.shape)}`);
  }
  return apply1(MatMulDef, [a, b], {}, { dtype: a.dtype, shape: [...batch, m, n] });
}

interface EinsumAttrs {
  inputs: string[];
  output: string;
}

const EinsumDef: OpDef = {
  type: 'einsum',
  onnxName: 'Einsum',
  lower: simpleLowering('Einsum', (n) => {
    const a = n.attrs as unknown as EinsumAttrs;
    return { equation: `${a.inputs.join(',')}->${a.output}` };
  }),
  vjp: (n, [g], needs) => {
    const a = n.attrs as unknown as EinsumAttrs;
    return n.inputs.map((x, i) => {
      if (!needs[i]) return undefined;
      // d/dx_i of the contraction: contract the output gradient with every other operand onto x_i's
      // subscripts. Subscripts only x_i has (summed away inside x_i alone) get broadcast back.
      const others = a.inputs.filter((_, j) => j !== i);
      const avail = new Set([...a.output, ...others.join('')]);
      const target = a.inputs[i]!;
      const reachable = [...target].filter((c) => avail.has(c)).join('');
      const operands = [g!, ...n.inputs.filter((_, j) => j !== i)];
      let r = einsum(`${[a.output, ...others].join(',')}->${reachable}`, ...operands);
      if (reachable !== target) {
        r = reshape(r, [...target].map((c) => (avail.has(c) ? x.shape[target.indexOf(c)]! : 1)));
        r = expand(r, x.shape);
      }
      return r;
    });
  },
};

/**
 * Einsum with an explicit `->` output; lowercase/uppercase letters, no ellipsis, no repeated
 * subscript within one operand (diagonals).
 */
export function einsum(equation: string, ...xs: Tensor[]): Tensor {
  const eq = equation.replace(/\s+/g, '');
  const arrow = eq.indexOf('->');
  if (arrow < 0 || eq.includes('.')) throw new GraphError(`einsum: '${equation}' needs an explicit '->' output and no ellipsis`);
  const inputs = eq.slice(0, arrow).split(',');
  const output = eq.slice(arrow + 2);
  const shapes = xs.map((x) => fmt(x.shape)).join(', ');
  if (inputs.length !== xs.length) throw new GraphError(`einsum '${equation}': ${inputs.length} operands in the equation, ${xs.length} given (${shapes})`);
  requireFloat('einsum', ...xs);
  requireSameDtype('einsum', ...xs);
  const size = new Map<string, number>();
  inputs.forEach((subs, i) => {
    const x = xs[i]!;
    if (!/^[a-zA-Z]*$/.test(subs) || new Set(subs).size !== subs.length) throw new GraphError(`einsum '${equation}': operand ${i} subscripts '${subs}' must be distinct letters`);
    if (subs.length !== x.rank) throw new GraphError(`einsum '${equation}': operand ${i} has rank ${x.rank} but subscripts '${subs}' (shapes ${shapes})`);
    [...subs].forEach((c, k) => {
      const d = x.shape[k]!;
      const prev = size.get(c);
      if (prev !== undefined && prev !== d) throw new GraphError(`einsum '${equation}': subscript '${c}' is ${prev} and ${d} (shapes ${shapes})`);
      size.set(c, d);
    });
  });
  if (new Set(output).size !== output.length || [...output].some((c) => !size.has(c))) {
    throw new GraphError(`einsum '${equation}': output subscripts '${output}' must be distinct and appear in an operand`);
  }
  return apply1(EinsumDef, xs, { inputs, output }, { dtype: xs[0]!.dtype, shape: [...output].map((c) => size.get(c)!) });
}
