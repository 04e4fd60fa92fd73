/** `lory verify`: is an artifact still what its manifest says (file hashes), and well-formed inside? */
import type { Command } from 'commander';
import { verifyFiles } from '../../artifacts/index.js';
import { checkBatches } from '../../batching/batches-store.js';
import { openTokenStore } from '../../data/token-store.js';
import { readEmbeddings } from '../../embed/store.js';
import { EXIT, isUserError } from '../errors.js';
import { log } from '../log.js';

/** The structural checks of each kind lory reads (the same ones its stages run on open, plus the deep ones). */
const STRUCTURE: Record<string, (dir: string) => void> = {
  'token-store': (dir) => openTokenStore(dir).checkContents(),
  embeddings: (dir) => void readEmbeddings(dir),
  'embeddings-shard': (dir) => void readEmbeddings(dir, { allowShard: true }),
  batches: (dir) => void checkBatches(dir),
};

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description("check artifacts: every file against the sha256 in its manifest, then the structure (offsets, vectors, counts)")
    .argument('<artifact...>', 'artifact directories (token stores, embeddings, batches, ...)')
    .addHelpText('after', '\nExamples:\n  $ lory verify work/train work/embeddings work/batches')
    .action(async (dirs: string[]) => {
      let damaged = 0;
      for (const dir of dirs) {
        try {
          const manifest = await verifyFiles(dir);
          const structure = STRUCTURE[manifest.kind];
          structure?.(dir);
          const files = Object.keys(manifest.files).length;
          process.stdout.write(`ok        ${dir}: ${manifest.kind}, ${files} files match their sha256${structure ? ', structure valid' : ''}\n`);
        } catch (error) {
          if (!isUserError(error)) throw error;
          damaged++;
          process.stdout.write(`DAMAGED   ${dir}\n`);
          log.error((error as Error).message);
        }
      }
      if (damaged > 0) process.exitCode = EXIT.user;
    });
}
