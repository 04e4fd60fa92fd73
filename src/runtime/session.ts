/** A session over a compiled graph: validates feeds against the graph signature, then runs natively. */
import { FeedError, OrtError } from './errors.js';
import type { NativeAddon, NativeSession, NativeValue } from './native.js';
import type { ExecutionProvider, Feed, HostTensor, ResidentValue, RunOptions, Session, TensorInfo } from './types.js';

function describe(info: TensorInfo): string {
  return `${info.name} [${info.dtype} ${info.shape.map((d) => (d < 0 ? '?' : String(d))).join('x')}]`;
}

function isResident(feed: Feed, addon: NativeAddon): feed is ResidentValue {
  return feed instanceof (addon.ResidentValue as unknown as abstract new () => unknown);
}

function checkSignature(name: string, expected: TensorInfo, dtype: string, shape: readonly number[], what: string): void {
  if (dtype !== expected.dtype) throw new FeedError(`${what} '${name}' must be ${expected.dtype}, got ${dtype}`);
  const shapeOk = shape.length === expected.shape.length && expected.shape.every((d, i) => d < 0 || d === shape[i]);
  if (!shapeOk) {
    throw new FeedError(`${what} '${name}' must have shape [${expected.shape.map((d) => (d < 0 ? '?' : d)).join(',')}], got [${shape.join(',')}]`);
  }
}

export class OrtSession implements Session {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  private readonly inputByName: Map<string, TensorInfo>;
  private readonly outputByName: Map<string, TensorInfo>;

  constructor(
    private readonly native: NativeSession,
    private readonly addon: NativeAddon,
    private readonly label: string,
  ) {
    this.inputs = Object.freeze(native.inputs.map((i) => Object.freeze({ ...i })));
    this.outputs = Object.freeze(native.outputs.map((o) => Object.freeze({ ...o })));
    this.inputByName = new Map(this.inputs.map((i) => [i.name, i]));
    this.outputByName = new Map(this.outputs.map((o) => [o.name, o]));
  }

  get executionProvider(): ExecutionProvider {
    return this.native.executionProvider as ExecutionProvider;
  }

  async run(feeds: Record<string, Feed>, options: RunOptions = {}): Promise<Record<string, ResidentValue>> {
    const names = Object.keys(feeds);
    for (const name of names) {
      if (!this.inputByName.has(name)) {
        throw new FeedError(`unknown input '${name}' for ${this.label}; its inputs are: ${this.inputs.map(describe).join(', ')}`);
      }
    }
    const missing = this.inputs.filter((i) => !(i.name in feeds));
    if (missing.length > 0) throw new FeedError(`${this.label} is missing input(s): ${missing.map(describe).join(', ')}`);

    const outputNames = options.outputs ?? this.outputs.map((o) => o.name);
    for (const name of outputNames) {
      const info = this.outputByName.get(name);
      if (!info) {
        throw new FeedError(`unknown output '${name}' for ${this.label}; its outputs are: ${this.outputs.map(describe).join(', ')}`);
      }
      const dtype: string = info.dtype;
      if (dtype.startsWith('unsupported') || dtype === 'non-tensor') {
        throw new FeedError(`output '${name}' of ${this.label} has type ${info.dtype}, which lory cannot hold; fetch other outputs`);
      }
    }
    const into = options.into ?? {};
    for (const name of Object.keys(into)) {
      if (!outputNames.includes(name)) throw new FeedError(`'into' names output '${name}', which this run does not fetch`);
    }

    const temporaries: NativeValue[] = [];
    try {
      const values: NativeValue[] = [];
      const fed = new Set<unknown>();
      for (const name of names) {
        const feed = feeds[name]!;
        const expected = this.inputByName.get(name)!;
        if (isResident(feed, this.addon)) {
          if (feed.disposed) throw new FeedError(`input '${name}' has been disposed`);
          checkSignature(name, expected, feed.dtype, feed.shape, 'input');
          values.push(feed as unknown as NativeValue);
          fed.add(feed);
        } else {
          const host = feed as HostTensor;
          checkSignature(name, expected, host.dtype, host.shape, 'input');
          let value: NativeValue;
          try {
            value = this.addon.tensor(host.dtype, host.shape, host.data);
          } catch (error) {
            throw new FeedError(`input '${name}': ${(error as Error).message}`);
          }
          temporaries.push(value);
          values.push(value);
        }
      }
      const targeted = new Set<unknown>();
      const targets = outputNames.map((name) => {
        const target = into[name];
        if (!target) return null;
        if (targeted.has(target)) throw new FeedError(`output '${name}' names the same target value as another output`);
        targeted.add(target);
        // ORT would read and write the same buffer in one run: results would be garbage.
        if (fed.has(target)) throw new FeedError(`output '${name}' cannot be written into a value that is also fed as an input`);
        checkSignature(name, this.outputByName.get(name)!, target.dtype, target.shape, 'output target');
        return target as unknown as NativeValue;
      });
      try {
        const result = await this.native.run(names, values, outputNames, targets, options.blocking === true);
        return result as unknown as Record<string, ResidentValue>;
      } catch (error) {
        throw new OrtError(`running ${this.label}`, (error as Error).message);
      }
    } finally {
      for (const value of temporaries) value.dispose();
    }
  }

  endProfiling(): string {
    try {
      return this.native.endProfiling();
    } catch (error) {
      throw new OrtError(`ending the profile of ${this.label}`, (error as Error).message);
    }
  }

  dispose(): void {
    this.native.dispose();
  }
}
