/** Labelled documents of three domains for the inspect and report tests. */
import type { Doc } from '../eval/testing.js';

export const INSPECT_DOCS: Doc[] = [
  ...['def f(x): return x * 2', 'for i in range(10): print(i)', 'import os\nprint(os.getcwd())'].map((text) => ({ text, domain: 'python' })),
  ...['Once upon a time there was a fox.', 'The night was dark and full of stars.', 'She opened the door and smiled.'].map((text) => ({ text, domain: 'fiction' })),
  ...['Dear team, the meeting moves to 3pm.', 'Hi Bob, please send the report today.'].map((text) => ({ text, domain: 'email' })),
];
