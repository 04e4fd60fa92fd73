/**
 * Reading ONNX Runtime's profile (SessionOptions.profileFilePrefix → Session.endProfiling()): a
 * Chrome-trace JSON array in which every node run contributes a `<node name>_kernel_time` event
 * (category "Node", duration in µs, `args.op_name`). lory's node names carry the graph builder's scopes
 * (`layer0/moe/routing/…`, `grad/…` for the backward), so callers can group time by model part.
 */
import { readFileSync } from 'node:fs';

export interface NodeRun {
  /** ONNX node name (the graph builder's scoped name). */
  node: string;
  /** Operator type, e.g. MatMul or LoryMoEFFNGrad. */
  op: string;
  /** Microseconds the kernel ran. */
  durUs: number;
  /** Which Session.run this node ran in (0-based, in order), or -1 when outside any recorded run. */
  run: number;
}

interface TraceEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: { op_name?: string };
}

const KERNEL_SUFFIX = '_kernel_time';

/** Every node run recorded in an ORT profile file, in file order. */
export function readProfile(path: string): NodeRun[] {
  let events: unknown;
  try {
    events = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`${path}: not an ONNX Runtime profile (${(error as Error).message})`);
  }
  if (!Array.isArray(events)) throw new Error(`${path}: not an ONNX Runtime profile (expected a JSON array of trace events)`);
  const list = events as TraceEvent[];
  // Session.run spans ("model_run" events), so callers can leave out warm-up runs.
  const spans = list
    .filter((e) => e.cat === 'Session' && e.name === 'model_run')
    .map((e) => ({ start: Number(e.ts ?? 0), end: Number(e.ts ?? 0) + Number(e.dur ?? 0) }))
    .sort((a, b) => a.start - b.start);
  const runOf = (ts: number) => spans.findIndex((s) => ts >= s.start && ts <= s.end);
  const runs: NodeRun[] = [];
  for (const e of list) {
    if (e.cat !== 'Node' || typeof e.name !== 'string' || !e.name.endsWith(KERNEL_SUFFIX)) continue;
    runs.push({ node: e.name.slice(0, -KERNEL_SUFFIX.length), op: e.args?.op_name ?? '?', durUs: Number(e.dur ?? 0), run: runOf(Number(e.ts ?? 0)) });
  }
  return runs;
}

/** Total microseconds per key (e.g. per op type or per model part), largest first. */
export function sumBy(runs: readonly NodeRun[], key: (r: NodeRun) => string): Array<{ key: string; us: number; count: number }> {
  const totals = new Map<string, { us: number; count: number }>();
  for (const r of runs) {
    const k = key(r);
    const t = totals.get(k) ?? { us: 0, count: 0 };
    t.us += r.durUs;
    t.count += 1;
    totals.set(k, t);
  }
  return [...totals].map(([k, t]) => ({ key: k, ...t })).sort((a, b) => b.us - a.us);
}
