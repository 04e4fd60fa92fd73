/**
 * Text lory reads must be UTF-8: bytes that are not are refused, naming where they stop being
 * UTF-8, never turned into U+FFFD. One rule for every input: prepare's corpus lines and files,
 * generate's prompt on stdin.
 */
const fatal = new TextDecoder('utf-8', { fatal: true });

/** Bytes that are not UTF-8; `offset` is the first byte of the first ill-formed sequence (0-based). */
export class NotUtf8Error extends Error {
  constructor(readonly offset: number) {
    super(`not valid UTF-8 at byte offset ${offset}`);
    this.name = 'NotUtf8Error';
  }
}

/** The bytes as text, or a NotUtf8Error saying where they stop being UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return fatal.decode(bytes);
  } catch {
    throw new NotUtf8Error(firstInvalidUtf8Byte(bytes));
  }
}

/**
 * The offset of the first byte of the first ill-formed UTF-8 sequence, or -1 when all is UTF-8
 * (Unicode table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF, nothing cut short).
 * Only called once TextDecoder has said no, which cannot say where.
 */
export function firstInvalidUtf8Byte(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes after the lead, and the range the first of them must fall in.
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + n >= b.length || b[i + 1]! < lo || b[i + 1]! > hi) return i;
    for (let k = 2; k <= n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return -1;
}
