import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/testing.js';
import { halfToFloat, readSafetensors } from './safetensors.js';

describe('safetensors reader', () => {
  it('converts IEEE half floats exactly, subnormals and specials included', () => {
    assert.equal(halfToFloat(0x3c00), 1);
    assert.equal(halfToFloat(0xc000), -2);
    assert.equal(halfToFloat(0x3555), 0.333251953125);
    assert.equal(halfToFloat(0x0001), 2 ** -24);
    assert.equal(halfToFloat(0x7bff), 65504);
    assert.equal(halfToFloat(0x7c00), Infinity);
    assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  });

  it('reads F16 and F32 tensors at an odd header length, skips integer ones, and names a broken file', () => {
    const header = JSON.stringify({
      __metadata__: { format: 'pt' },
      h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      f: { dtype: 'F32', shape: [1, 2], data_offsets: [4, 12] },
      i: { dtype: 'I64', shape: [1], data_offsets: [12, 20] },
    }) + ' ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const data = Buffer.alloc(20);
    data.writeUInt16LE(0x3c00, 0);
    data.writeUInt16LE(0xc000, 2);
    data.writeFloatLE(0.5, 4);
    data.writeFloatLE(-3.25, 8);
    const path = join(tempDir('st'), 'w.safetensors');
    writeFileSync(path, Buffer.concat([len, Buffer.from(header), data]));
    const t = readSafetensors(path);
    assert.deepEqual([...t.get('h')!.data], [1, -2]);
    assert.deepEqual(t.get('f'), { shape: [1, 2], data: Float32Array.of(0.5, -3.25) });
    assert.equal(t.has('i'), false);
    writeFileSync(path, 'nope');
    assert.throws(() => readSafetensors(path), { name: 'InputError', message: /not a safetensors file/ });
  });
});
