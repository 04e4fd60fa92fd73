/**
 * Rotary position embedding (LLaMA's rotate-half layout) on x[B, H, S, D] with tables cos, sin[S, D/2].
 * float32/16 lower to ORT's fused RotaryEmbedding-23; float64 (which that kernel lacks) to Slice/Mul/Concat.
 * The rotation is orthogonal, so its VJP is the rotation by −θ: the same op with −sin.
 */
import type { AnyTypedArray, DType } from '../onnx/dtype.js';
import { apply1, requireFloat, requireSameDtype, type OpDef } from '../op.js';
import { GraphError, fmt } from '../shape.js';
import type { Graph, Tensor } from '../tensor.js';
import { neg } from './elementwise.js';

const RopeDef: OpDef = {
  type: 'rope',
  onnxName: 'RotaryEmbedding',
  lower: (ctx, n) => {
    const [x, cos, sin] = n.inputs as [Tensor, Tensor, Tensor];
    const [B, , S, D] = x.shape as [number, number, number, number];
    const out = ctx.out(n);
    if (x.dtype !== 'float64') {
      const pos: number[] = [];
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) pos.push(s);
      const ids = ctx.i64(pos, [B, S]); // deduplicated across layers
      ctx.emit(n, 'RotaryEmbedding', [ctx.value(x), ctx.value(cos), ctx.value(sin), ids], [out], { interleaved: 0 });
      return;
    }
    // y = x·[cos,cos] + [−x₂, x₁]·[sin,sin]
    const h = D / 2;
    const xv = ctx.value(x);
    const x1 = ctx.tmp(n, 'x1');
    const x2 = ctx.tmp(n, 'x2');
    ctx.emit(n, 'Slice', [xv, ctx.i64([0]), ctx.i64([h]), ctx.i64([3])], [x1]);
    ctx.emit(n, 'Slice', [xv, ctx.i64([h]), ctx.i64([D]), ctx.i64([3])], [x2]);
    const nx2 = ctx.tmp(n, 'neg_x2');
    ctx.emit(n, 'Neg', [x2], [nx2]);
    const rot = ctx.tmp(n, 'rotated');
    ctx.emit(n, 'Concat', [nx2, x1], [rot], { axis: 3 });
    const cc = ctx.tmp(n, 'cos_full');
    const ss = ctx.tmp(n, 'sin_full');
    ctx.emit(n, 'Concat', [ctx.value(cos), ctx.value(cos)], [cc], { axis: 1 });
    ctx.emit(n, 'Concat', [ctx.value(sin), ctx.value(sin)], [ss], { axis: 1 });
    const a = ctx.tmp(n, 'x_cos');
    const b = ctx.tmp(n, 'rot_sin');
    ctx.emit(n, 'Mul', [xv, cc], [a]);
    ctx.emit(n, 'Mul', [rot, ss], [b]);
    ctx.emit(n, 'Add', [a, b], [out]);
  },
  vjp: (n, [g], needs) => {
    if (needs[1] || needs[2]) throw new GraphError(`rope: no gradient w.r.t. the cos/sin tables (node ${n.name})`);
    const [, cos, sin] = n.inputs as [Tensor, Tensor, Tensor];
    return [needs[0] ? rope(g!, cos, neg(sin)) : undefined, undefined, undefined];
  },
};

export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  requireFloat('rope', x, cos, sin);
  requireSameDtype('rope', x, cos, sin);
  const [, , S, D] = x.shape;
  const ok = x.rank === 4 && D! % 2 === 0 && cos.rank === 2 && cos.shape[0] === S && cos.shape[1] === D! / 2 && sin.shape.join() === cos.shape.join();
  if (!ok) throw new GraphError(`rope: expects x[B,H,S,D] and cos/sin[S,D/2]: got ${fmt(x.shape)}, ${fmt(cos.shape)}, ${fmt(sin.shape)}`);
  return apply1(RopeDef, [x, cos, sin], {}, { dtype: x.dtype, shape: x.shape });
}

/** Constant cos/sin tables [S, D/2] with θ_i = base^(−2i/D). */
export function ropeTables(g: Graph, seqLen: number, headDim: number, dtype: DType = 'float32', base = 10000): { cos: Tensor; sin: Tensor } {
  const h = headDim / 2;
  const make = (): AnyTypedArray => (dtype === 'float64' ? new Float64Array(seqLen * h) : new Float32Array(seqLen * h));
  const c = make();
  const s = make();
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < h; i++) {
      const angle = p * Math.pow(base, (-2 * i) / headDim);
      c[p * h + i] = Math.cos(angle);
      s[p * h + i] = Math.sin(angle);
    }
  }
  return g.scope('rope', () => ({ cos: g.constant(dtype, [seqLen, h], c), sin: g.constant(dtype, [seqLen, h], s) }));
}
