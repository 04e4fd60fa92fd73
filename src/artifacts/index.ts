/** Artifacts: directories with a manifest, written atomically. Every stage builds on this. */
export { asEnvironmentError, checkInputFile, InputError, inputFileError, InterruptedError, readInputFile } from './errors.js';
export { canonicalJson, hashFile, hashPath, hashString, listFiles } from './hash.js';
export { artifactInput, contentHash, describeKind, fileInput, fingerprint, inputPath, recordedInputs, readManifest, tryReadManifest, MANIFEST_FILE, type FileEntry, type InputRef, type Manifest } from './manifest.js';
export { acquireLock, allFiles, LOCK_PREFIX, makeParent, nameSome, writeTextAtomic } from './lock.js';
export { pidAlive, runStage, upToDate, type StageResult, type StageSpec } from './stage.js';
export { PROJECT_ROOT, toolVersion } from './version.js';
export { interruptOnSigint, type Interrupt } from './interrupt.js';
export { verifyFiles } from './verify.js';
