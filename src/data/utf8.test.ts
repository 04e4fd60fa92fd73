import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32 } from '../random/index.js';
import { decodeUtf8, firstInvalidUtf8Byte, NotUtf8Error } from './utf8.js';

/**
 * The reference: WHATWG's replacing decoder emits every well-formed character before the first
 * ill-formed sequence, then U+FFFD; the bytes of what came before are the offset.
 */
function referenceOffset(bytes: Uint8Array): number {
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  const bad = text.indexOf('\uFFFD');
  return bad < 0 ? -1 : Buffer.byteLength(text.slice(0, bad));
}

describe('UTF-8 checking', () => {
  it('finds the first ill-formed sequence in each kind of bad input', () => {
    const cases: Array<[string, number[], number]> = [
      ['ASCII', [0x61, 0x62], -1],
      ['two-, three- and four-byte characters', [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], -1],
      ['Latin-1 é', [0x63, 0x61, 0x66, 0xe9], 3],
      ['a lone continuation byte', [0x61, 0x80], 1],
      ['overlong two-byte', [0xc0, 0x80], 0],
      ['overlong three-byte', [0x61, 0xe0, 0x80, 0x80], 1],
      ['a surrogate', [0xed, 0xa0, 0x80], 0],
      ['above U+10FFFF', [0x61, 0x61, 0xf4, 0x90, 0x80, 0x80], 2],
      ['cut short at the end', [0x61, 0xe2, 0x82], 1],
      ['a lead byte then ASCII', [0xe2, 0x41, 0x42], 0],
      ['0xFF', [0x41, 0xff], 1],
    ];
    for (const [name, bytes, offset] of cases) {
      const b = Uint8Array.from(bytes);
      assert.equal(firstInvalidUtf8Byte(b), offset, name);
      assert.equal(referenceOffset(b), offset, `${name} (reference)`);
    }
  });

  it('agrees with the WHATWG decoder on random mixes of text and stray bytes', () => {
    const random = mulberry32(7);
    const points = [0x41, 0xe9, 0x20ac, 0x1f600, 0x10ffff]; // no U+FFFD: the reference would take it for an error
    for (let trial = 0; trial < 3000; trial++) {
      const parts: Buffer[] = [];
      const pieces = 1 + Math.floor(random() * 8);
      for (let p = 0; p < pieces; p++) {
        if (random() < 0.15) parts.push(Buffer.from([Math.floor(random() * 256)]));
        else parts.push(Buffer.from(String.fromCodePoint(points[Math.floor(random() * points.length)]!), 'utf8'));
      }
      const bytes = Buffer.concat(parts);
      assert.equal(firstInvalidUtf8Byte(bytes), referenceOffset(bytes), bytes.toString('hex'));
    }
  });

  it('decodes UTF-8 and refuses anything else with the offset, never U+FFFD', () => {
    assert.equal(decodeUtf8(Buffer.from('café €', 'utf8')), 'café €');
    assert.throws(() => decodeUtf8(Buffer.from('caf\xe9', 'latin1')), (e: Error) => e instanceof NotUtf8Error && e.offset === 3 && e.message === 'not valid UTF-8 at byte offset 3');
  });
});
