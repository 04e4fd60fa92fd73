import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { explainCudaError } from './device.js';
import { DeviceError, deviceProblem, deviceSessionOptions, loadRuntime, openDevice, parseDevice, PROJECT_ROOT } from './index.js';

const runtime = loadRuntime();
const gpu = runtime.cudaDevices();
const noGpu = gpu.deviceCount === 0 ? false : 'a GPU is present here';

describe('devices', () => {
  it('parses cpu, cuda and cuda:N, and names the flag or field in the error for anything else', () => {
    assert.deepEqual(parseDevice('cpu'), { name: 'cpu', provider: 'cpu', ordinal: -1 });
    assert.deepEqual(parseDevice('cuda'), { name: 'cuda:0', provider: 'cuda', ordinal: 0 });
    assert.deepEqual(parseDevice('cuda:3'), { name: 'cuda:3', provider: 'cuda', ordinal: 3 });
    for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:-1', 'cuda:1.5', 'cuda:0:1', ' cpu']) {
      assert.throws(() => parseDevice(bad, 'train.device'), (e: Error) => e instanceof DeviceError && e.message === `train.device: expected cpu, cuda or cuda:N (N a device number), got '${bad}'`, bad);
    }
  });

  it('the CPU is always usable and needs no session options', async () => {
    assert.equal(await deviceProblem(parseDevice('cpu'), runtime), undefined);
    assert.deepEqual(deviceSessionOptions(parseDevice('cpu')), {});
    assert.deepEqual(deviceSessionOptions(parseDevice('cuda:2')), { executionProvider: 'cuda', deviceId: 2, tf32: false });
    assert.deepEqual(deviceSessionOptions(parseDevice('cuda'), true), { executionProvider: 'cuda', deviceId: 0, tf32: true });
  });

  it('without a usable GPU, opening cuda fails with the driver\'s reason as a user error (exit 2)', { skip: noGpu }, async () => {
    const reason = await deviceProblem(parseDevice('cuda:1'), runtime);
    assert.ok(reason, 'a reason is given');
    // The first problem in the order a user fixes them: here the driver (or, with a driver, the devices).
    assert.equal(reason, gpu.driverLoaded ? `no CUDA device visible (${gpu.detail})` : gpu.detail);
    await assert.rejects(openDevice('cuda:1', '--device'), (e: Error) => e instanceof DeviceError && (e as DeviceError).userError && e.message === `--device cuda:1: cannot compute on cuda:1 here: ${reason}`);
  });
});

describe('the CUDA provider on an ONNX Runtime built without the V2 CUDA options', () => {
  // The offline bundle's libonnxruntime.so 1.29 (npm com.github.asus4.onnxruntime) compiles
  // CreateCUDAProviderOptions out but still loads libonnxruntime_providers_cuda.so through the V1 options.
  const bundled = join(PROJECT_ROOT, 'node_modules', 'com.github.asus4.onnxruntime', 'Plugins', 'Linux', 'x64', 'libonnxruntime.so');
  it('falls back to the V1 options and gets as far as loading the provider library', { skip: !existsSync(bundled) && `no ${bundled}` }, () => {
    // One ONNX Runtime per process: a child process loads that build.
    const script = `import('${join(PROJECT_ROOT, 'dist', 'src', 'runtime', 'index.js')}').then(async (m) => {
      const rt = m.loadRuntime();
      try { await rt.createSession(new Uint8Array(0), { executionProvider: 'cuda' }); console.log('created'); } catch (e) { console.log(e.message); }
    });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, LORY_ORT_LIBRARY: bundled } });
    assert.equal(r.status, 0, r.stderr);
    const said = r.stdout.trim();
    if (said === 'created') return; // a machine with the provider and CUDA: it loaded
    assert.match(said, /OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library \(V2 options: CUDA execution provider is not enabled in this build\.\)/);
    assert.equal(explainCudaError(said.replace(/^the CUDA execution provider does not load here: /, '')).startsWith('ONNX Runtime could not load its CUDA provider'), true);
  });
});
