/**
 * Pipeline file → validated, resolved config: the zod schema checks the whole file (every problem is
 * reported, each naming its field path), then each run's model section goes through the model's own
 * resolveModelConfig and the sequence-length checks, and the files the pipeline names must exist.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { InputError, readInputFile } from '../artifacts/index.js';
import { checkTrainingSequenceLength, modelConfigToYamlObject, parseModelConfig, type ModelConfig } from '../model/index.js';
import { pipelineSchema, type Pipeline, type TrainSection } from './schema.js';
import { closest } from '../text/suggest.js';
import { showValue } from '../text/show.js';

export interface ResolvedRun {
  name: string;
  batches: 'similarity' | 'random';
  model: ModelConfig;
  train: TrainSection;
}

export interface LoadedPipeline {
  file: string;
  pipeline: Pipeline;
  runs: ResolvedRun[];
}

const formatPath = (path: ReadonlyArray<PropertyKey>) =>
  path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), '');

/** The schema at `path` (through optional/default wrappers, objects and arrays). */
function schemaAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): z.ZodType | undefined {
  let s: z.ZodType | undefined = schema;
  const unwrap = (x: z.ZodType): z.ZodType => {
    let cur = x as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } };
    while (['optional', 'default', 'nullable', 'prefault'].includes(cur._zod.def.type) && cur._zod.def.innerType) cur = cur._zod.def.innerType as never;
    return cur as unknown as z.ZodType;
  };
  for (const key of path) {
    if (!s) return undefined;
    const def: { type: string; shape?: Record<string, z.ZodType>; element?: z.ZodType } = (unwrap(s) as unknown as { _zod: { def: { type: string; shape?: Record<string, z.ZodType>; element?: z.ZodType } } })._zod.def;
    if (def.type === 'object' && typeof key === 'string') s = def.shape?.[key];
    else if (def.type === 'array' && typeof key === 'number') s = def.element;
    else return undefined;
  }
  return s;
}

function description(s: z.ZodType | undefined): string | undefined {
  let cur = s as unknown as { description?: string; _zod: { def: { innerType?: unknown } } } | undefined;
  while (cur) {
    if (cur.description) return cur.description;
    cur = cur._zod.def.innerType as typeof cur;
  }
  return undefined;
}

function knownKeys(s: z.ZodType | undefined): string[] {
  let cur = s as unknown as { _zod: { def: { type: string; innerType?: unknown; shape?: Record<string, unknown> } } } | undefined;
  while (cur && cur._zod.def.type !== 'object') cur = cur._zod.def.innerType as typeof cur;
  return cur?._zod.def.shape ? Object.keys(cur._zod.def.shape) : [];
}

const show = (v: unknown) => (v === undefined ? 'nothing' : showValue(v));

/** A field that is not there: zod reports it by the check it failed (a type, a union), with no input. */
const isMissing = (issue: z.core.$ZodIssue) => issue.code !== 'unrecognized_keys' && (issue as { input?: unknown }).input === undefined;

export function formatIssue(issue: z.core.$ZodIssue): string[] {
  const at = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(schemaAt(pipelineSchema, issue.path));
    return issue.keys.map((key) => {
      const best = closest(key, known);
      const hint = best ? `; did you mean '${best}'?` : known.length ? `; known fields: ${known.join(', ')}` : '';
      return `${at ? `${at}.` : ''}${key}: unknown field${hint}`;
    });
  }
  const what = description(schemaAt(pipelineSchema, issue.path));
  const input = (issue as { input?: unknown }).input;
  if (isMissing(issue)) return [`${at}: missing; expected ${what ?? (issue as { expected?: string }).expected ?? 'a value'}`];
  if (what) return [`${at || 'pipeline'}: expected ${what}, got ${show(input)}`];
  return [`${at || 'pipeline'}: ${issue.message}`];
}

/** Parse and validate a pipeline's text. `source` prefixes every message (the file name). */
export function parsePipeline(text: string, source: string, options: { checkFiles?: boolean } = {}): LoadedPipeline {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    const msg = error instanceof YAMLParseError ? error.message.split('\n')[0] : String(error);
    throw new InputError(`${source}: not valid YAML: ${msg}`);
  }
  if (doc === null || doc === undefined || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new InputError(`${source}: a pipeline must be a YAML mapping of sections (model:, train:, …)`);
  }
  const parsed = pipelineSchema.safeParse(doc, { reportInput: true });
  if (!parsed.success) {
    // A misspelt required section ('modle:') is one mistake: its "did you mean" line says it all, so
    // the "missing" line for the field it suggests is left out.
    const suggested = new Set<string>();
    for (const issue of parsed.error.issues) {
      if (issue.code !== 'unrecognized_keys') continue;
      const known = knownKeys(schemaAt(pipelineSchema, issue.path));
      const at = formatPath(issue.path);
      for (const key of issue.keys) {
        const best = closest(key, known);
        if (best) suggested.add(at ? `${at}.${best}` : best);
      }
    }
    const missingButSuggested = (issue: z.core.$ZodIssue) => isMissing(issue) && suggested.has(formatPath(issue.path));
    const lines = parsed.error.issues.filter((i) => !missingButSuggested(i)).flatMap(formatIssue);
    throw new InputError(lines.map((l) => `${source}: ${l}`).join('\n'));
  }
  const pipeline = parsed.data;
  const problems: string[] = [];
  const entries = pipeline.runs ?? [{ name: 'model', batches: pipeline.batches.strategies[0]!, model: {}, train: {} }];
  const runs: ResolvedRun[] = [];
  // `lory train` reads the sequence length from the batches it is given; the pipeline's applies when it builds them.
  const seqLenApplies = options.checkFiles === true || (doc as { batches?: { seq_len?: unknown } }).batches?.seq_len !== undefined;
  entries.forEach((entry, i) => {
    const where = pipeline.runs ? `runs[${i}].` : '';
    const configError = (error: unknown, field: string) => {
      if ((error as Error).name !== 'ConfigError') throw error;
      const msg = (error as Error).message;
      problems.push(/^model\./.test(msg) ? `${where}${msg}` : `${where}${field}: ${msg}`);
    };
    let model: ModelConfig;
    try {
      model = parseModelConfig({ ...pipeline.model, ...entry.model });
    } catch (error) {
      configError(error, 'model');
      return;
    }
    // Only the fields the entry spells out replace the top-level ones (zod filled the rest with defaults).
    const given = Object.keys(((doc as { runs?: Array<{ train?: object }> }).runs?.[i]?.train ?? {}) as object);
    const overrides = Object.fromEntries(Object.entries(entry.train).filter(([k]) => given.includes(k)));
    runs.push({ name: entry.name, batches: entry.batches, model, train: { ...pipeline.train, ...overrides } });
    if (!pipeline.tokenizer.path && (doc as { tokenizer?: unknown }).tokenizer !== undefined && model.vocabSize < pipeline.tokenizer.vocab_size) {
      problems.push(`${where}model.vocab_size (${model.vocabSize}) is smaller than tokenizer.vocab_size (${pipeline.tokenizer.vocab_size}): token ids would fall outside the embedding`);
    }
    try {
      if (seqLenApplies) checkTrainingSequenceLength(model, pipeline.batches.seq_len);
    } catch (error) {
      configError(error, 'batches.seq_len');
    }
    if (pipeline.runs && !pipeline.batches.strategies.includes(entry.batches)) {
      problems.push(`runs[${i}].batches: '${entry.batches}' is not built; add it to batches.strategies (${pipeline.batches.strategies.join(', ')})`);
    }
  });
  const names = entries.map((e) => e.name);
  names.forEach((n, i) => names.indexOf(n) !== i && problems.push(`runs[${i}].name: '${n}' is used twice`));
  if (options.checkFiles) {
    if (!pipeline.data) problems.push('data: missing; `lory run` needs data.train (the corpus to prepare)');
    const files = [
      ...[pipeline.data?.train ?? []].flat().map((f, i, all) => [all.length > 1 ? `data.train[${i}]` : 'data.train', f] as const),
      ...[pipeline.data?.heldout ?? []].flat().map((f, i, all) => [all.length > 1 ? `data.heldout[${i}]` : 'data.heldout', f] as const),
      ...(pipeline.tokenizer.path ? [['tokenizer.path', pipeline.tokenizer.path] as const] : []),
      ...(pipeline.embed.encoder ? [['embed.encoder', pipeline.embed.encoder] as const] : []),
      ...(pipeline.embed.encoder_tokenizer ? [['embed.encoder_tokenizer', pipeline.embed.encoder_tokenizer] as const] : []),
    ];
    for (const [field, file] of files) if (!existsSync(file)) problems.push(`${field}: ${file} does not exist`);
  }
  if (problems.length) throw new InputError(problems.map((l) => `${source}: ${l}`).join('\n'));
  return { file: source, pipeline, runs };
}

export function loadPipeline(file: string, options: { checkFiles?: boolean } = {}): LoadedPipeline {
  return parsePipeline(readInputFile(file, 'a pipeline file (YAML)').toString('utf8'), file, options);
}

/** The field of a run config that says which file it was read from. */
const SOURCE_KEY = 'pipeline';

/** The resolved config of one run, as saved with its artifacts (snake_case, defaults filled in, the pipeline file it came from). */
export function resolvedRunConfig(p: LoadedPipeline, run: ResolvedRun): Record<string, unknown> {
  return { [SOURCE_KEY]: resolve(p.file), name: p.pipeline.name ?? null, run: run.name, batches: { ...p.pipeline.batches, strategy: run.batches }, model: modelConfigToYamlObject(run.model), train: run.train };
}

/**
 * What a run is, for telling whether a run directory holds it: its config less the file it was read
 * from, so `./p.yaml`, an absolute path or a copy of the pipeline name the same run.
 */
export function runIdentity(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([key]) => key !== SOURCE_KEY));
}
