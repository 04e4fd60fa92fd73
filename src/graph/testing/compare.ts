/** Comparing a result with its reference in tests. */

/** max |got − ref| / max |ref|: the error relative to the reference's scale (a wrong element anywhere moves it). */
export function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return err / scale;
}
