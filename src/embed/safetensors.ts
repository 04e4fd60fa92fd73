/** The safetensors reader lives in src/artifacts (checkpoints write and read the same format). */
export { halfToFloat, readSafetensors, type FloatTensor } from '../artifacts/safetensors.js';
