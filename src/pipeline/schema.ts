/**
 * The pipeline file: every stage's inputs, settings and outputs in one YAML, validated whole by one
 * zod schema (which also gives the TypeScript types). YAML spells fields in snake_case. Sections:
 *
 *   out        where artifacts go (a folder; stage outputs are named inside it)
 *   data       corpus inputs: train (required), heldout (optional), text_field
 *   tokenizer  vocab_size of a byte-level BPE trained on data.train, or path to an existing tokenizer
 *   embed      the document encoder for similarity batching (default all-MiniLM-L6-v2)
 *   batches    seq_len, strategies (similarity and/or random), k, seed, valid_fraction, dedup
 *   model      the model (src/model/config.ts; its own checks and messages)
 *   train      the training loop (train/options.ts)
 *   runs       optional list of training runs, each overriding model/train and picking a batches strategy
 *
 * Paths are relative to the directory lory runs in.
 */
import { z } from 'zod';
import { PRECISIONS, type Precision } from '../graph/precision.js';
import { YAML_FIELDS } from '../model/index.js';

const describe = <T extends z.ZodType>(schema: T, what: string): T => schema.describe(what) as T;

export const positiveInt = () => describe(z.number().int().positive(), 'a positive integer');
export const nonNegativeInt = () => describe(z.number().int().nonnegative(), 'a non-negative integer');
export const positiveNumber = () => describe(z.number().positive().finite(), 'a positive number');
export const nonNegativeNumber = () => describe(z.number().nonnegative().finite(), 'a non-negative number');
export const fraction = () => describe(z.number().min(0).max(1), 'a number in [0, 1]');
const path = () => describe(z.string().min(1), 'a path');
const paths = () => describe(z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]), 'a path or a list of paths');

/**
 * The model section: every field the model knows (src/model's YAML_FIELDS, the one list of model
 * fields), with values left to resolveModelConfig, whose checks and messages stay the authority.
 * Unknown fields are refused here, with a "did you mean".
 */
export const modelSection = () =>
  describe(z.strictObject(Object.fromEntries(YAML_FIELDS.map(([yaml]) => [yaml, z.unknown().optional()])) as Record<string, z.ZodOptional<z.ZodUnknown>>), 'a mapping of model fields (d_model: 1024, …)');

export const trainSection = z.strictObject({
  /** Optimizer updates. */
  steps: positiveInt().default(200),
  /** Sequences per micro-batch (one compiled step's batch). */
  micro_batch: positiveInt().default(4),
  /** Micro-batches whose gradients add up to one update (tokens per step = micro_batch × this × seq_len). */
  accumulation: positiveInt().default(1),
  lr: positiveNumber().default(2e-4),
  /** The cosine decay's floor, as a fraction of lr. */
  min_lr_ratio: fraction().default(0.1),
  /** Linear warm-up, as a fraction of steps (paper: 5%). */
  warmup: fraction().default(0.05),
  beta1: describe(z.number().min(0).lt(1), 'a number in [0, 1)').default(0.9),
  beta2: describe(z.number().min(0).lt(1), 'a number in [0, 1)').default(0.95),
  adam_eps: positiveNumber().default(1e-8),
  /** Decoupled weight decay on matrices; never on norms or the input embedding. */
  weight_decay: nonNegativeNumber().default(0.1),
  /** Also decay the router (default no: decay pulls routing toward uniform). */
  weight_decay_router: describe(z.boolean(), 'true or false').default(false),
  /** Global-norm clipping; 0 disables. */
  clip_norm: nonNegativeNumber().default(1.0),
  /** Lory models: train dense for this fraction of steps, then convert (paper: 5%); 0 starts as MoE. */
  dense_warmup: fraction().default(0.05),
  seed: nonNegativeInt().default(0),
  /** Validation loss every this many steps (and at the end); 0: only at the end. */
  valid_every: nonNegativeInt().default(50),
  /** Validation micro-batches per evaluation; 0: the whole validation slice. */
  valid_batches: nonNegativeInt().default(0),
  /** Checkpoint every this many steps (and at the end). */
  checkpoint_every: positiveInt().default(100),
  /** Checkpoints kept besides the best one. */
  keep_last: positiveInt().default(2),
  /** ONNX Runtime threads (default: all cores; under mpirun, the cores shared by the ranks on a machine). */
  threads: positiveInt().optional(),
  /**
   * Under mpirun: each rank keeps the AdamW moments of 1/N of the parameters (ZeRO stage 1). The
   * numbers are those of an unsharded run; only the memory per rank changes. Ignored by one process.
   */
  shard_optimizer: describe(z.boolean(), 'true or false').optional(),
  /**
   * Gradient checkpointing: the backward keeps only each layer's input and recomputes the layer's
   * forward (about a third more compute per step, activations of one layer instead of all).
   */
  recompute: describe(z.boolean(), 'true or false').optional(),
  /** Where the train step runs: cpu, or a CUDA GPU (cuda = cuda:0). `lory train --device` overrides it. */
  device: describe(z.string().regex(/^(cpu|cuda(:\d{1,3})?)$/), 'cpu, cuda or cuda:N').optional(),
  /**
   * fp32 (default), or bf16: matrix products (attention, FFN, fused expert FFN, LM head) in bf16;
   * master weights, AdamW state, norms, softmax, loss and gradient norm in fp32. On the CPU bf16 is
   * emulated (fp32 products of bf16-rounded operands, rounded results).
   */
  precision: describe(z.enum(PRECISIONS as [Precision, ...Precision[]]), "'fp32' or 'bf16'").optional(),
});

const strategy = describe(z.enum(['similarity', 'random']), "'similarity' or 'random'");

export const runEntry = z.strictObject({
  /** Name of the run; its directory is <out>/runs/<name>. */
  name: describe(z.string().regex(/^[A-Za-z0-9][\w.-]*$/), 'a name of letters, digits, ".", "-", "_"'),
  /** Which batches artifact to train on. */
  batches: strategy.default('similarity'),
  /** Fields replacing those of the top-level model section. */
  model: modelSection().default({}),
  /** Fields replacing those of the top-level train section. */
  train: trainSection.partial().default({}),
});

export const pipelineSchema = z.strictObject({
  /** A name for reports. */
  name: describe(z.string(), 'a string').optional(),
  /** Where artifacts go. */
  out: path().default('work/pipeline'),
  /** Needed by `lory run` (prepare); `lory train` reads built batches instead. */
  data: z
    .strictObject({
      train: paths(),
      heldout: paths().optional(),
      text_field: describe(z.string().min(1), 'a field name').default('text'),
    })
    .optional(),
  tokenizer: z
    .strictObject({
      vocab_size: describe(z.number().int().min(256).max(30001), 'an integer in [256, 30001]').default(4096),
      /** An existing tokenizer.json or token store instead of training one. */
      path: path().optional(),
      eos: describe(z.string(), 'a token').optional(),
    })
    .default({ vocab_size: 4096 }),
  embed: z
    .strictObject({
      encoder: path().optional(),
      encoder_tokenizer: path().optional(),
      max_tokens: positiveInt().default(256),
    })
    .default({ max_tokens: 256 }),
  batches: z
    .strictObject({
      seq_len: positiveInt().default(1024),
      strategies: describe(z.array(strategy).min(1), "a list of 'similarity' and/or 'random'").default(['similarity']),
      k: positiveInt().default(10),
      seed: nonNegativeInt().default(0),
      valid_fraction: describe(z.number().min(0).lt(1), 'a number in [0, 1)').default(0.01),
      dedup: describe(z.boolean(), 'true or false').default(true),
    })
    .default({ seq_len: 1024, strategies: ['similarity'], k: 10, seed: 0, valid_fraction: 0.01, dedup: true }),
  /** Downstream tasks (docs/tasks.md): made from data.heldout by `lory make-tasks`, scored by `lory eval tasks`. */
  tasks: z
    .strictObject({
      items: positiveInt().default(200),
      fewshot: nonNegativeInt().default(16),
      shots: describe(z.array(nonNegativeInt()).min(1), 'a list of few-shot counts, e.g. [0, 5]').default([0, 5]),
      seed: nonNegativeInt().default(0),
      max_context_chars: positiveInt().default(600),
      /** Context + longest choice, in tokens (default: half the model's context, so 5-shot prompts mostly fit). */
      max_context_tokens: positiveInt().optional(),
      /** More task files or folders (lory's JSONL or the public layouts) scored beside the made ones. */
      files: z.array(path()).default([]),
    })
    .optional(),
  model: modelSection(),
  train: trainSection.default(trainSection.parse({})),
  runs: describe(z.array(runEntry).min(1), 'a list of runs').optional(),
});

export type PipelineInput = z.input<typeof pipelineSchema>;
export type Pipeline = z.output<typeof pipelineSchema>;
export type TrainSection = z.output<typeof trainSection>;
export type RunEntry = z.output<typeof runEntry>;
