/**
 * How a document is cut into model windows so that every token is scored exactly once.
 *
 * A document of n tokens is scored as it appears in the training stream: preceded by EOS (the end of
 * the document before it) and followed by its own EOS. Its inputs are [EOS, t₀ … t_{n−1}] and its
 * targets [t₀ … t_{n−1}, EOS]: M = n + 1 predictions, which cover every byte of its text.
 *
 * Windows hold W inputs. Window k ends at min(k·s + W, M) (s = stride ≤ W) and scores only the
 * predictions no earlier window scored; its start is pulled back so it holds W inputs whenever the
 * document has that many (the last window gets extra context instead of padding). A prediction at
 * position i of the document therefore sees at least min(i, W − s) earlier inputs; with s = W
 * (the default) windows do not overlap and the first prediction of each window sees only itself.
 */
export interface DocumentWindow {
  /** First input position of the window in the document's input sequence [0, M). */
  start: number;
  /** Inputs in the window (< W only when the whole document is shorter than a window: then padded). */
  length: number;
  /** Window-relative positions [scoreFrom, scoreTo) whose predictions this window scores. */
  scoreFrom: number;
  scoreTo: number;
}

export function planWindows(predictions: number, window: number, stride: number): DocumentWindow[] {
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be a positive integer, got ${window}`);
  if (!Number.isInteger(stride) || stride < 1 || stride > window) throw new RangeError(`stride must be an integer in [1, ${window}], got ${stride}`);
  const out: DocumentWindow[] = [];
  let scored = 0;
  for (let begin = 0; scored < predictions; begin += stride) {
    const end = Math.min(begin + window, predictions);
    const start = Math.max(0, end - window);
    out.push({ start, length: end - start, scoreFrom: scored - start, scoreTo: end - start });
    scored = end;
  }
  return out;
}

/** The document's inputs and targets (see above): inputs[i] predicts targets[i]. */
export function documentSequence(tokens: ArrayLike<number>, eos: number): { inputs: Int32Array; targets: Int32Array } {
  const n = tokens.length;
  const inputs = new Int32Array(n + 1);
  const targets = new Int32Array(n + 1);
  inputs[0] = eos;
  for (let i = 0; i < n; i++) {
    inputs[i + 1] = tokens[i]!;
    targets[i] = tokens[i]!;
  }
  targets[n] = eos;
  return { inputs, targets };
}
