/** lory's model: config, the Lory transformer (dense or MoE), its parameters, conversion and counts. */
export {
  type ModelConfig,
  type FfnImpl,
  type ModelDtype,
  type MoeKind,
  type ExpertChoiceGroup,
  MOE_KINDS,
  DEFAULT_MODEL_CONFIG,
  YAML_FIELDS,
  defaultDff,
  resolveModelConfig,
  parseModelConfig,
  modelConfigFromPipeline,
  modelConfigToYamlObject,
  checkSequenceLength,
  checkTrainingSequenceLength,
  fusedOpAvailable,
  isMoe,
  isLoryMoe,
  moeKindName,
  isTokenMoe,
  headDim,
} from './config.js';
export { ConfigError } from './errors.js';
export { buildLory, loryTrainSpec, INPUT, ROUTING_DIAG, TOKEN_DIAG, type BuildOptions, type LoryModel, type RoutingMode } from './model.js';
export {
  moeFfn,
  moeFfnStandard,
  moeFfnCustom,
  denseFfn,
  loryMoe,
  causalSegmentRouting,
  promptRouting,
  routerProbs,
  requireFfnImpl,
  modelSessionOptions,
  usesFusedAdamW,
  modelScatterImpl,
  fusedOpLibrary,
  LORY_DOMAIN,
  type Routing,
  type MoeWeights,
  type SegmentRouting,
} from './moe.js';
export { PARAM, paramSpecs, initParams, layoutOf, type FfnLayout, type ParamSpec, type ParamValues, type ParamArray } from './params.js';
export { tokenMoe, topKMoe, expertChoiceMoe, expertsOnSlots, loadBalancingLoss, routerZLoss, topKCapacity, expertChoiceCapacity, type TokenMoeOutput } from './token-moe.js';
export { denseToMoe } from './convert.js';
export { countParams, countFlops, expertSlotsPerToken, type ParamCount, type FlopCount } from './count.js';
export { buildLoryDecode, DECODE_INPUT, DECODE_OUTPUT, type DecodeModel } from './decode.js';
export { mergeLayerExperts } from './merge.js';
