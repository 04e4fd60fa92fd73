/**
 * Errors of the model layer. A ConfigError is the user's to fix (a bad `model:` section, a sequence
 * length that does not fit the segment length, an FFN implementation that is not built); the CLI maps
 * it to exit 2 by its name. Messages name the YAML field, e.g. `model.d_model`.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
