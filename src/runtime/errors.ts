/** Errors raised by the runtime layer; ORT's own messages are kept verbatim inside them. */

/** ONNX Runtime rejected a model, a feed or a run; `message` carries ORT's text. */
export class OrtError extends Error {
  constructor(context: string, ortMessage: string) {
    super(`${context}: ${ortMessage}`);
    this.name = 'OrtError';
  }
}

/** A caller fed the session something it cannot take (name, dtype or shape). */
export class FeedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeedError';
  }
}
