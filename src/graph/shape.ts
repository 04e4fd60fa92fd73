/** Static-shape helpers shared by every op: broadcasting, axis normalisation, error text. */

export type Shape = readonly number[];

/** Thrown at build time when an op's operands do not fit; the message names the op and the shapes. */
export class GraphError extends Error {
  override name = 'GraphError';
}

export function fmt(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function sizeOf(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** NumPy/ONNX multidirectional broadcasting; throws naming `op` when the shapes do not broadcast. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const v = k >= 0 ? s[k]! : 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) throw new GraphError(`${op}: shapes do not broadcast: ${shapes.map(fmt).join(' vs ')}`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Resolve a possibly negative axis against a rank; throws naming `op` when out of range. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new GraphError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}
