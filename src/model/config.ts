/**
 * The model's one typed config object, with defaults, read from the `model:` section of a pipeline
 * YAML. YAML spells fields in snake_case (`d_model`), TypeScript in camelCase (`dModel`); every error
 * names the YAML field. Defaults are the paper's 0.3B dense base model (Zhong et al. 2024, Table 4).
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { customOpLibrary, isBuilt } from '../runtime/index.js';
import { ConfigError } from './errors.js';
import { showValue } from '../text/show.js';
import { editDistance } from '../text/suggest.js';

export type FfnImpl = 'standard' | 'custom';
/** What a config may ask for: 'auto' (the default) picks 'custom' where lory's fused op is built. */
export type FfnImplChoice = FfnImpl | 'auto';
export type ModelDtype = 'float32' | 'float64';
/** How an MoE layer routes: Lory's merged experts per segment, or a token-level baseline. */
export type MoeKind = 'lory' | 'expert_choice' | 'top_k';
/** Expert choice: which tokens compete for an expert's slots. */
export type ExpertChoiceGroup = 'sequence' | 'position';
export const MOE_KINDS: readonly MoeKind[] = ['lory', 'expert_choice', 'top_k'];
export const EXPERT_CHOICE_GROUPS: readonly ExpertChoiceGroup[] = ['sequence', 'position'];

export interface ModelConfig {
  /** Vocabulary size V (paper: 32K, LLaMA's tokenizer). */
  vocabSize: number;
  /** Hidden size d. */
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** FFN hidden size f of the dense FFN and of every expert. Default: 8d/3 rounded up to `ffnMultipleOf`. */
  dFf: number;
  ffnMultipleOf: number;
  /** RoPE base θ. */
  ropeBase: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** Longest sequence the model is built for (paper: 4096); training sequences are at most this long. */
  contextLength: number;
  /** Experts E per MoE layer; 1 is the dense model. */
  experts: number;
  /** Segment length T of causal segment routing (paper: 256). */
  segmentLength: number;
  /** Std of the router's normal initialisation (never 0: a zero router gives every expert the same gradient). */
  routerInitStd: number;
  /** Std of the normal initialisation of embeddings and matrices; output projections get std/√(2·layers). */
  initStd: number;
  /** How the merged-expert FFN is computed: standard ONNX ops (Einsum + batched MatMul) or lory's fused op. */
  ffnImpl: FfnImpl;
  /** Parameter and activation dtype (float64 for gradient checks). */
  dtype: ModelDtype;

  // --- Token-level MoE baselines (token-moe.ts); used when experts > 1 and moe is not 'lory'. ---
  /** Routing of the MoE layers: 'lory' (merged experts, causal segment routing), 'top_k', 'expert_choice'. */
  moe: MoeKind;
  /** Top-k: experts per token. */
  topK: number;
  /** Slots per expert: top-k ⌈cf·k·n/E⌉ per sequence of n tokens (cf ≥ E/k: no token dropped); EC ⌈cf·n/E⌉ per group. */
  capacityFactor: number;
  /** Top-k: weight of the Switch load-balancing loss E·Σ fᵢ·Pᵢ added to the training loss. */
  auxLossWeight: number;
  /** Token-level kinds: weight of the router z-loss mean(logsumexp(logits)²) added to the training loss. */
  routerZLossWeight: number;
  /** Expert choice: 'sequence' (each sequence is a group, as the paper compared it: not causal) or 'position' (the batch at one position: causal). */
  expertChoiceGroup: ExpertChoiceGroup;
}

/** LLaMA's FFN size: 8d/3 rounded up to a multiple (256 in LLaMA and the paper). */
export function defaultDff(dModel: number, multipleOf = 256): number {
  return Math.ceil((8 * dModel) / 3 / multipleOf) * multipleOf;
}

const BASE = {
  vocabSize: 32000,
  dModel: 1024,
  nLayers: 24,
  nHeads: 16,
  ffnMultipleOf: 256,
  ropeBase: 10000,
  normEps: 1e-5,
  contextLength: 4096,
  experts: 1,
  segmentLength: 256,
  routerInitStd: 0.02,
  initStd: 0.02,
  ffnImpl: 'auto' as FfnImplChoice,
  dtype: 'float32' as ModelDtype,
  moe: 'lory' as MoeKind,
  topK: 2,
  capacityFactor: 1.0,
  auxLossWeight: 0.01,
  routerZLossWeight: 0,
  expertChoiceGroup: 'sequence' as ExpertChoiceGroup,
};

/** The defaults (dFf derived from dModel and ffnMultipleOf). */
export const DEFAULT_MODEL_CONFIG: Readonly<ModelConfig> = Object.freeze({
  ...BASE,
  ffnImpl: 'standard' as FfnImpl, // the default model is dense: 'auto' resolves to the standard layer
  dFf: defaultDff(BASE.dModel, BASE.ffnMultipleOf),
});

/** True when lory's fused merged-expert op library (CPU) is built. */
export function fusedOpAvailable(): boolean {
  const lib = customOpLibrary('lory-ops');
  return lib !== undefined && isBuilt(lib);
}

/** YAML field ↔ config key, in the order `lory params` and the docs list them. */
export const YAML_FIELDS: ReadonlyArray<readonly [string, keyof ModelConfig]> = [
  ['vocab_size', 'vocabSize'],
  ['d_model', 'dModel'],
  ['n_layers', 'nLayers'],
  ['n_heads', 'nHeads'],
  ['d_ff', 'dFf'],
  ['ffn_multiple_of', 'ffnMultipleOf'],
  ['rope_base', 'ropeBase'],
  ['norm_eps', 'normEps'],
  ['context_length', 'contextLength'],
  ['experts', 'experts'],
  ['segment_length', 'segmentLength'],
  ['router_init_std', 'routerInitStd'],
  ['init_std', 'initStd'],
  ['ffn_impl', 'ffnImpl'],
  ['dtype', 'dtype'],
  // token-level MoE baselines
  ['moe', 'moe'],
  ['top_k', 'topK'],
  ['capacity_factor', 'capacityFactor'],
  ['aux_loss_weight', 'auxLossWeight'],
  ['router_z_loss_weight', 'routerZLossWeight'],
  ['expert_choice_group', 'expertChoiceGroup'],
];
const yamlName = new Map(YAML_FIELDS.map(([y, k]) => [k, y]));
/** The YAML name of a config field, as errors quote it (`model.d_ff`). */
export const field = (k: keyof ModelConfig) => `model.${yamlName.get(k)}`;

const INTEGER_FIELDS: ReadonlyArray<keyof ModelConfig> = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'dFf', 'ffnMultipleOf', 'contextLength', 'experts', 'segmentLength'];
const POSITIVE_FIELDS: ReadonlyArray<keyof ModelConfig> = ['ropeBase', 'normEps', 'routerInitStd', 'initStd'];

/** True when the FFN layers are MoE layers (E > 1), of any kind. */
export const isMoe = (c: Pick<ModelConfig, 'experts'>) => c.experts > 1;
/** True for Lory's merged-expert layers with causal segment routing (the default kind). */
export const isLoryMoe = (c: Pick<ModelConfig, 'experts'> & Partial<Pick<ModelConfig, 'moe'>>) => isMoe(c) && (c.moe ?? 'lory') === 'lory';

/** The MoE layer kind as reports name it: 'Lory', 'top-2', 'expert choice'. */
export const moeKindName = (c: Pick<ModelConfig, 'moe' | 'topK'>): string =>
  c.moe === 'top_k' ? `top-${c.topK}` : c.moe === 'expert_choice' ? 'expert choice' : 'Lory';
/** True for the token-level baselines (top-k, expert choice). */
export const isTokenMoe = (c: Pick<ModelConfig, 'experts'> & Partial<Pick<ModelConfig, 'moe'>>) => isMoe(c) && (c.moe ?? 'lory') !== 'lory';

/** Head dimension d/H. */
export const headDim = (c: Pick<ModelConfig, 'dModel' | 'nHeads'>) => c.dModel / c.nHeads;

/**
 * Fill defaults and validate. `dFf` defaults from `dModel` and `ffnMultipleOf` unless given.
 * Throws ConfigError naming the YAML field for anything impossible.
 */
export function resolveModelConfig(partial: Partial<Omit<ModelConfig, 'ffnImpl'>> & { ffnImpl?: FfnImplChoice } = {}): ModelConfig {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<ModelConfig>;
  const base = { ...BASE, ...defined };
  const choice = base.ffnImpl as FfnImplChoice;
  if (choice !== 'auto' && choice !== 'standard' && choice !== 'custom') {
    throw new ConfigError(`${field('ffnImpl')}: must be 'auto', 'standard' or 'custom', got ${showValue(choice)}`);
  }
  const shaped = { ...base, dFf: defined.dFf ?? defaultDff(base.dModel, base.ffnMultipleOf) };
  const c: ModelConfig = { ...shaped, ffnImpl: choice === 'auto' ? autoFfnImpl(shaped) : choice };
  validate(c);
  return c;
}

/**
 * 'auto' → the fused custom op when it can serve this model (MoE, float32, library built), else the
 * standard-op layer. The two agree within float32 rounding (src/model/ffn-impl.test.ts). Measured
 * (docs/kernels.md, "Issue 13"): where both run, custom is the faster train step (tiny: 0.90× the
 * standard step's CPU time) and needs far less memory (standard's merged weights for every segment:
 * 1.7× the peak RSS at tiny; at small standard needs ≈ 15.5 GB and does not fit the 23 GB test machine
 * next to anything else), so no shape lory builds today makes 'standard' the better choice.
 */
function autoFfnImpl(c: { experts: number; dtype: ModelDtype; moe: MoeKind }): FfnImpl {
  return isLoryMoe(c) && c.dtype === 'float32' && fusedOpAvailable() ? 'custom' : 'standard';
}

function validate(c: ModelConfig): void {
  for (const k of INTEGER_FIELDS) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ConfigError(`${field(k)}: must be a positive integer, got ${showValue(v)}`);
  }
  for (const k of POSITIVE_FIELDS) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      const why = k === 'routerInitStd' ? ' (a zero router gives every expert the same gradient forever)' : '';
      throw new ConfigError(`${field(k)}: must be a positive number, got ${showValue(v)}${why}`);
    }
  }
  if (c.dModel % c.nHeads !== 0) throw new ConfigError(`${field('dModel')} (${c.dModel}) must be divisible by ${field('nHeads')} (${c.nHeads})`);
  if (headDim(c) % 2 !== 0) throw new ConfigError(`${field('dModel')}/${field('nHeads')} = ${headDim(c)}: the head dimension must be even for rotary embeddings`);
  if (c.dtype !== 'float32' && c.dtype !== 'float64') throw new ConfigError(`${field('dtype')}: must be 'float32' or 'float64', got ${showValue(c.dtype)}`);
  validateTokenMoe(c);
  if (isLoryMoe(c)) {
    if (c.segmentLength > c.contextLength) {
      throw new ConfigError(`${field('segmentLength')} (${c.segmentLength}) is longer than ${field('contextLength')} (${c.contextLength})`);
    }
    if (c.contextLength % c.segmentLength !== 0) {
      throw new ConfigError(`${field('contextLength')} (${c.contextLength}) must be a multiple of ${field('segmentLength')} (${c.segmentLength})`);
    }
    if (c.ffnImpl === 'custom' && c.dtype !== 'float32') throw new ConfigError(`${field('ffnImpl')}: 'custom' runs in float32 only (${field('dtype')} is ${c.dtype})`);
  }
}

/** The token-level MoE fields (one block, so a schema can take them over as a unit). */
function validateTokenMoe(c: ModelConfig): void {
  if (!MOE_KINDS.includes(c.moe)) throw new ConfigError(`${field('moe')}: must be one of ${MOE_KINDS.join(', ')}, got ${showValue(c.moe)}`);
  if (!EXPERT_CHOICE_GROUPS.includes(c.expertChoiceGroup)) {
    throw new ConfigError(`${field('expertChoiceGroup')}: must be one of ${EXPERT_CHOICE_GROUPS.join(', ')}, got ${showValue(c.expertChoiceGroup)}`);
  }
  if (typeof c.topK !== 'number' || !Number.isInteger(c.topK) || c.topK < 1) throw new ConfigError(`${field('topK')}: must be a positive integer, got ${showValue(c.topK)}`);
  if (typeof c.capacityFactor !== 'number' || !Number.isFinite(c.capacityFactor) || c.capacityFactor <= 0) {
    throw new ConfigError(`${field('capacityFactor')}: must be a positive number, got ${showValue(c.capacityFactor)}`);
  }
  for (const k of ['auxLossWeight', 'routerZLossWeight'] as const) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${field(k)}: must be a number ≥ 0, got ${showValue(v)}`);
  }
  if (c.moe === 'top_k' && isMoe(c) && c.topK > c.experts) throw new ConfigError(`${field('topK')} (${c.topK}) must be at most ${field('experts')} (${c.experts})`);
  if (isTokenMoe(c) && c.ffnImpl === 'custom') {
    throw new ConfigError(`${field('ffnImpl')}: 'custom' is Lory's merged-expert op; ${field('moe')} ${c.moe} runs its experts with standard ops (set ffn_impl: standard or auto)`);
  }
}

/**
 * A training sequence must hold at least two segments for Lory MoE (E > 1): segment 1 routes from its own
 * mean with the gradient stopped, so with one segment the routers would never get a gradient.
 */
export function checkTrainingSequenceLength(c: ModelConfig, seq: number): void {
  checkSequenceLength(c, seq);
  if (isLoryMoe(c) && seq / c.segmentLength < 2) {
    throw new ConfigError(
      `training sequence length ${seq} holds one ${field('segmentLength')} (${c.segmentLength}) segment: with no earlier segment to route from, the routers would never get a gradient; use at least two segments`,
    );
  }
}

/** Check a batch's sequence length against the config: at most the context; for Lory MoE, whole segments. */
export function checkSequenceLength(c: ModelConfig, seq: number): void {
  if (!Number.isInteger(seq) || seq < 1) throw new ConfigError(`sequence length must be a positive integer, got ${seq}`);
  if (seq > c.contextLength) throw new ConfigError(`sequence length ${seq} exceeds ${field('contextLength')} (${c.contextLength})`);
  if (isLoryMoe(c) && seq % c.segmentLength !== 0) {
    throw new ConfigError(`sequence length ${seq} is not a multiple of ${field('segmentLength')} (${c.segmentLength}): causal segment routing needs whole segments`);
  }
}

/**
 * The `model:` section (a parsed YAML mapping) → a validated config. Unknown fields are errors
 * (a typo must not silently fall back to a default); `where` prefixes messages (e.g. the file name).
 */
export function parseModelConfig(raw: unknown, where?: string): ModelConfig {
  const prefix = where ? `${where}: ` : '';
  try {
    if (raw === null || raw === undefined) return resolveModelConfig();
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`model: must be a mapping of fields (d_model: 1024, …), got ${showValue(raw)}`);
    const byYaml = new Map(YAML_FIELDS);
    const partial: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
      const k = byYaml.get(key);
      if (!k) {
        const known = YAML_FIELDS.map(([y]) => y);
        const best = known.map((y) => [y, editDistance(key, y)] as const).sort((a, b) => a[1] - b[1])[0]!;
        const hint = best[1] <= 3 ? `; did you mean '${best[0]}'?` : `; known fields: ${known.join(', ')}`;
        throw new ConfigError(`model.${key}: unknown field${hint}`);
      }
      if (value === null || value === undefined) continue;
      partial[k] = value;
    }
    return resolveModelConfig(partial as Partial<ModelConfig>);
  } catch (error) {
    if (error instanceof ConfigError && prefix) throw new ConfigError(prefix + error.message);
    throw error;
  }
}

/** Top-level sections a pipeline may hold (pipelines/*.yaml and the stages that read them). */
export const PIPELINE_SECTIONS = ['name', 'out', 'output', 'outputs', 'data', 'prepare', 'tokenizer', 'embed', 'batches', 'model', 'train', 'eval', 'inspect', 'generate', 'runs'] as const;

/**
 * A pipeline YAML's text → its model config. Other top-level sections (data, train, eval, …) are left
 * to their stages, but must be known ones: a misspelt section would otherwise be ignored. The `model:`
 * section is required and must not be empty — a typo there would silently give the default model.
 */
export function modelConfigFromPipeline(yamlText: string, source?: string): ModelConfig {
  let doc: unknown;
  try {
    doc = parseYaml(yamlText);
  } catch (error) {
    const msg = error instanceof YAMLParseError ? error.message.split('\n')[0] : String(error);
    throw new ConfigError(`${source ? `${source}: ` : ''}not valid YAML: ${msg}`);
  }
  if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc))) {
    throw new ConfigError(`${source ? `${source}: ` : ''}a pipeline must be a YAML mapping of sections (model:, data:, train:, …)`);
  }
  const prefix = source ? `${source}: ` : '';
  const sections = (doc ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(sections)) {
    if ((PIPELINE_SECTIONS as readonly string[]).includes(key)) continue;
    const best = PIPELINE_SECTIONS.map((y) => [y, editDistance(key, y)] as const).sort((a, b) => a[1] - b[1])[0]!;
    const hint = best[1] <= 2 ? `did you mean '${best[0]}'?` : `known sections: ${PIPELINE_SECTIONS.join(', ')}`;
    throw new ConfigError(`${prefix}${key}: unknown top-level section; ${hint}`);
  }
  if (!('model' in sections)) throw new ConfigError(`${prefix}no model: section; a pipeline describes its model under model: (d_model, n_layers, …)`);
  const section = sections.model;
  if (section === null || section === undefined || (typeof section === 'object' && !Array.isArray(section) && Object.keys(section).length === 0)) {
    throw new ConfigError(`${prefix}model: is empty; give the model's fields (d_model, n_layers, …)`);
  }
  return parseModelConfig(section, source);
}

/** The config as the YAML `model:` section would spell it (for resolved-config files and reports). */
export function modelConfigToYamlObject(c: ModelConfig): Record<string, string | number> {
  return Object.fromEntries(YAML_FIELDS.map(([y, k]) => [y, c[k]]));
}
