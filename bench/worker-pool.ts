/**
 * Drives benchmark worker processes (bench/step-worker.ts, bench/torch/train_worker.py) that speak one
 * JSON object per line on stdin/stdout, and alternates them in rounds: within a round each worker
 * runs one step while the others wait, the order rotating every round, so every side sees the same
 * machine state and no two steps ever compete for the cores.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Ready {
  ready: true;
  setup_s: number;
  rss_kb: number;
  [key: string]: unknown;
}
export interface StepReply {
  wall_ms: number;
  cpu_ms: number;
  loss: number | null;
}

export class Worker {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly replies: ((line: string) => void)[] = [];
  private readonly pending: string[] = [];
  private stderr = '';
  private exited: string | undefined;
  private failWaiters: ((e: Error) => void)[] = [];

  constructor(
    readonly id: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return; // a library's chatter on stdout is not a reply
      const waiter = this.replies.shift();
      if (waiter) waiter(line);
      else this.pending.push(line);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = `worker ${id} exited (${signal ?? code}): ${this.stderr.trim().split('\n').slice(-5).join(' | ')}`;
      for (const f of this.failWaiters) f(new Error(this.exited));
      this.failWaiters = [];
    });
  }

  private next<T>(): Promise<T> {
    const queued = this.pending.shift();
    if (queued !== undefined) return Promise.resolve(JSON.parse(queued) as T);
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise<T>((resolve, reject) => {
      this.failWaiters.push(reject);
      this.replies.push((line) => {
        this.failWaiters = this.failWaiters.filter((f) => f !== reject);
        resolve(JSON.parse(line) as T);
      });
    });
  }

  /** The first line: setup done (model built, weights loaded). */
  ready(): Promise<Ready> {
    return this.next<Ready>();
  }

  step(): Promise<StepReply> {
    this.child.stdin.write('{"cmd":"step"}\n');
    return this.next<StepReply>();
  }

  /** Ends the worker; its peak RSS over its whole life (kB, getrusage). */
  async quit(): Promise<number> {
    this.child.stdin.write('{"cmd":"quit"}\n');
    const r = await this.next<{ peak_rss_kb: number }>();
    await new Promise<void>((resolve) => (this.exited ? resolve() : this.child.once('exit', () => resolve())));
    return r.peak_rss_kb;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

export interface Samples {
  wall: number[];
  cpu: number[];
  /** Loss of every step, warm-up included: losses[0] is the loss at the initial weights. */
  losses: (number | null)[];
}

/**
 * `warmup` unrecorded rounds then `repeats` recorded ones. `onRound` reports progress.
 * Returns per-worker samples; samples[i] of two workers come from the same round.
 */
export async function alternate(workers: Worker[], warmup: number, repeats: number, onRound?: (round: number) => void): Promise<Map<string, Samples>> {
  const out = new Map<string, Samples>(workers.map((w) => [w.id, { wall: [], cpu: [], losses: [] }]));
  for (let r = 0; r < warmup + repeats; r++) {
    for (let k = 0; k < workers.length; k++) {
      const w = workers[(k + r) % workers.length]!;
      const reply = await w.step();
      const s = out.get(w.id)!;
      s.losses.push(reply.loss);
      if (r >= warmup) {
        s.wall.push(reply.wall_ms);
        s.cpu.push(reply.cpu_ms);
      }
    }
    onRound?.(r);
  }
  return out;
}
