/**
 * Child process that trains a byte-level BPE with the `tokenizers` package. Training is synchronous
 * native code that would freeze the event loop (and the spinner), and it prints progress bars on
 * stdout, which is for results; a child process keeps both away from the CLI.
 * argv: <text file> <output json>. Writes the trained tokenizer's JSON.
 */
import tokenizers from 'tokenizers';

const [textFile, outFile] = process.argv.slice(2);
if (!textFile || !outFile) {
  process.stderr.write('usage: bpe-train-child <text file> <out json>\n');
  process.exit(2);
}
try {
  const tokenizer = new tokenizers.Tokenizer(tokenizers.BPE.empty());
  tokenizer.setPreTokenizer(tokenizers.byteLevelPreTokenizer(false, true));
  tokenizer.train([textFile]);
  tokenizer.save(outFile, false);
} catch (error) {
  // One line the parent reads: the native message, without Node's stack.
  process.stderr.write(`\n${String((error as Error)?.message ?? error).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(3);
}
