/**
 * Runs a compiled train step with every parameter and optimizer slot resident in native memory.
 * Each state slot has two buffers: a run reads the current one and writes `next/<slot>` into the
 * spare (RunOptions.into), then the two swap: no allocation and no copy into JS per step.
 */
import type { AnyTypedArray } from '../graph/onnx/dtype.js';
import { loadRuntime, type DeviceName, type Feed, type HostTensor, type ResidentValue, type Session, type SessionOptions } from '../runtime/index.js';
import { NEXT, type CompiledGraph, type CompiledTrainStep, type StateSlot } from '../graph/compile/train-step.js';

interface Slot {
  info: StateSlot;
  cur: ResidentValue;
  spare: ResidentValue;
}

export interface StepResult {
  loss: number;
  gradNorm?: number;
  /** `diag/<name>` outputs, resident; the caller reads and disposes them. */
  diagnostics: Record<string, ResidentValue>;
}


type GraphKey = 'step' | 'eval' | 'accumulate' | 'apply';

export class Trainer {
  /** A run in flight: state ping-pongs between two buffers, so runs must not overlap. */
  private busy = false;

  private constructor(
    readonly compiled: CompiledTrainStep,
    private readonly slots: Map<string, Slot>,
    private readonly sessions: Partial<Record<'step' | 'eval' | 'accumulate' | 'apply', Session>>,
  ) {}

  /**
   * Create sessions for the compiled graphs (`graphs`: those a run uses; a rank of a data-parallel
   * run needs no fused `step`) and upload initial parameters (state starts at zero).
   */
  static async create(
    compiled: CompiledTrainStep,
    init: Record<string, AnyTypedArray>,
    options: SessionOptions = {},
    graphs: ReadonlyArray<GraphKey> = ['step', 'eval', 'accumulate', 'apply'],
    device: DeviceName = 'cpu',
  ): Promise<Trainer> {
    const rt = loadRuntime();
    const slots = new Map<string, Slot>();
    const sessions: Partial<Record<'step' | 'eval' | 'accumulate' | 'apply', Session>> = {};
    try {
      for (const info of [...compiled.params, ...compiled.state]) {
        const data = init[info.name];
        if (info.kind === 'param' && !data) throw new Error(`Trainer: no initial value for parameter '${info.name}'`);
        // On a GPU every slot lives in device memory: a step reads and writes it there, nothing crosses to the host.
        slots.set(info.name, { info, cur: rt.tensor(info.dtype, info.shape, data, device), spare: rt.tensor(info.dtype, info.shape, undefined, device) });
      }
      for (const key of graphs) {
        const g = compiled[key];
        if (g) sessions[key] = await rt.createSession(g.bytes, { logId: key, ...options });
      }
    } catch (error) {
      // Free what was made before the failure: native memory is not the GC's to reclaim promptly.
      for (const slot of slots.values()) {
        slot.cur.dispose();
        slot.spare.dispose();
      }
      for (const session of Object.values(sessions)) session.dispose();
      throw error;
    }
    return new Trainer(compiled, slots, sessions);
  }

  /** A schedule scalar in the dtype the compiled step declares (float64 for float64 models). */
  private scalar(x: number): HostTensor {
    const dtype = this.compiled.scalarDtype;
    return { dtype, shape: [], data: dtype === 'float64' ? Float64Array.of(x) : Float32Array.of(x) };
  }

  private async run(key: 'step' | 'eval' | 'accumulate' | 'apply', extra: Record<string, Feed>): Promise<Record<string, ResidentValue>> {
    const graph = this.compiled[key] as CompiledGraph;
    const session = this.sessions[key]!;
    const feeds: Record<string, Feed> = { ...extra };
    for (const input of graph.inputs) {
      const slot = this.slots.get(input.name);
      if (slot) feeds[input.name] = slot.cur;
      else if (!(input.name in feeds)) throw new Error(`Trainer.${key}: no value for input '${input.name}'`);
    }
    const into: Record<string, ResidentValue> = {};
    for (const [out, input] of Object.entries(graph.stateMap)) into[out] = this.slots.get(input)!.spare;
    if (this.busy) throw new Error(`Trainer.${key}: another run is in flight; await it first (runs share the state buffers)`);
    this.busy = true;
    try {
      const res = await session.run(feeds, { into });
      for (const input of Object.values(graph.stateMap)) {
        const s = this.slots.get(input)!;
        [s.cur, s.spare] = [s.spare, s.cur];
      }
      return res;
    } finally {
      this.busy = false;
    }
  }

  private static collect(res: Record<string, ResidentValue>, stateMap: Record<string, string>): StepResult {
    const diagnostics: Record<string, ResidentValue> = {};
    let loss = NaN;
    let gradNorm: number | undefined;
    for (const [name, v] of Object.entries(res)) {
      if (name in stateMap) continue;
      if (name === 'loss') loss = Number(v.read()[0]);
      else if (name === 'grad_norm') gradNorm = Number(v.read()[0]);
      if (name.startsWith('diag/')) diagnostics[name] = v;
      else v.dispose();
    }
    return { loss, ...(gradNorm !== undefined ? { gradNorm } : {}), diagnostics };
  }

  /** One full update on one batch. `step` is the 1-based update number (bias correction). */
  async step(batch: Record<string, Feed>, lr: number, step: number): Promise<StepResult> {
    const s = this.compiled.schedule;
    const res = await this.run('step', { ...batch, [s.lr]: this.scalar(lr), [s.step]: this.scalar(step) });
    return Trainer.collect(res, this.compiled.step.stateMap);
  }

  /** Forward only. */
  async eval(batch: Record<string, Feed>): Promise<StepResult> {
    return Trainer.collect(await this.run('eval', batch), {});
  }

  /** Add one micro-batch's gradients into the resident accumulators. */
  async accumulate(batch: Record<string, Feed>): Promise<StepResult> {
    if (!this.sessions.accumulate) throw new Error('Trainer.accumulate: compile with { accumulation: true }');
    return Trainer.collect(await this.run('accumulate', batch), this.compiled.accumulate!.stateMap);
  }

  /** Update from the accumulated gradients (times `gradScale`) and reset the accumulators. */
  async apply(lr: number, step: number, gradScale: number): Promise<StepResult> {
    if (!this.sessions.apply) throw new Error('Trainer.apply: compile with { accumulation: true }');
    const s = this.compiled.schedule;
    const res = await this.run('apply', { [s.lr]: this.scalar(lr), [s.step]: this.scalar(step), [this.compiled.gradScale]: this.scalar(gradScale) });
    return Trainer.collect(res, this.compiled.apply!.stateMap);
  }

  /** Copy a parameter or state slot out (checkpoints, tests). */
  read(name: string): AnyTypedArray {
    const s = this.slots.get(name);
    if (!s) throw new Error(`Trainer.read: no state named '${name}'`);
    return s.cur.read();
  }

  /** The resident value of a slot (valid until the next run swaps it). */
  resident(name: string): ResidentValue | undefined {
    return this.slots.get(name)?.cur;
  }

  /** Ends ORT profiling of every session (SessionOptions.profileFilePrefix); the profile files written, by graph. */
  endProfiling(): Partial<Record<'step' | 'eval' | 'accumulate' | 'apply', string>> {
    const files: Partial<Record<'step' | 'eval' | 'accumulate' | 'apply', string>> = {};
    for (const [key, session] of Object.entries(this.sessions) as Array<['step' | 'eval' | 'accumulate' | 'apply', Session]>) {
      const path = session.endProfiling();
      if (path) files[key] = path;
    }
    return files;
  }

  dispose(): void {
    for (const s of Object.values(this.sessions)) s?.dispose();
    for (const s of this.slots.values()) {
      s.cur.dispose();
      s.spare.dispose();
    }
  }
}

export { NEXT };
