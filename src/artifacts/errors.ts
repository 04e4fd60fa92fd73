/**
 * The error every stage throws for input the user must fix (a wrong artifact, a malformed line, a
 * missing file). The CLI maps errors named 'InputError' to one line and exit code 2; this module
 * imports nothing from the CLI, so the class is recognised by name.
 */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Thrown when work was stopped on purpose (Ctrl-C); what was finished is kept for a resume. */
export class InterruptedError extends Error {
  constructor(message = 'interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}
