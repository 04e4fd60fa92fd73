/** `--device cpu|cuda[:N]`: one spelling and one check for every command that computes. */
import type { Command } from 'commander';
import { openDevice, type Device } from '../runtime/index.js';

export function addDeviceOption(command: Command, what: string): Command {
  return command.option('--device <device>', `cpu, cuda or cuda:N: where ${what} run (default cpu); a GPU that cannot be used here exits 2 with the reason`);
}

/** The device a command was given, checked usable here (DeviceError, exit 2, otherwise). */
export async function deviceFlag(value: string | undefined, o: { opLibrary?: boolean } = {}): Promise<Device> {
  return openDevice(value, '--device', o);
}
