import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceError, deviceProblem, deviceSessionOptions, loadRuntime, openDevice, parseDevice } from './index.js';

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
