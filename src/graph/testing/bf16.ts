/** bfloat16 rounding in TypeScript, independent of ONNX Runtime: the reference for bf16 graphs. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * x rounded to float32, then to the nearest bfloat16 (ties to even), as a number: what ONNX Cast
 * float → bfloat16 → float gives. NaN stays NaN; overflow goes to ±∞.
 */
export function bf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return NaN;
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f32[0]!;
}

/** Every element rounded to bf16 (a copy). */
export const bf16Array = (xs: ArrayLike<number>): Float64Array => Float64Array.from(xs, bf16);
