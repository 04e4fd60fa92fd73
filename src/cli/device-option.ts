/** `--device cpu|cuda[:N]`: one spelling for every command that computes (runtime/device.ts's openDevice checks it). */
import type { Command } from 'commander';

export function addDeviceOption(command: Command, what: string): Command {
  return command.option('--device <device>', `cpu, cuda or cuda:N: where ${what} run (default cpu); a GPU that cannot be used here exits 2 with the reason`);
}
