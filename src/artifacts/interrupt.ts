/**
 * Ctrl-C for long stages: the first SIGINT aborts the signal, so the stage stops at its next
 * checkpoint and keeps what is finished; a second one exits at once.
 */
export interface Interrupt {
  signal: AbortSignal;
  dispose(): void;
}

export function interruptOnSigint(onFirst?: () => void): Interrupt {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) process.exit(130);
    onFirst?.();
    controller.abort();
  };
  process.on('SIGINT', handler);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', handler) };
}
