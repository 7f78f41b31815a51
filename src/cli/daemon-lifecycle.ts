import type { Logger } from 'pino';

/**
 * Keeps a daemon command alive until SIGINT, SIGTERM or a shutdown request, then runs `stop`
 * once and exits with its outcome.
 */
export function runUntilStopped(log: Logger, stop: () => Promise<void>): () => void {
  const keepAlive = setInterval(() => undefined, 1 << 30); // native threads alone do not keep node alive
  let stopping = false;
  const shutdown = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'shutting down');
    stop().then(() => {
      clearInterval(keepAlive);
      process.exit(0);
    }, (err: Error) => {
      log.error({ err: err.message }, 'clean shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  return () => shutdown('shutdown request');
}
