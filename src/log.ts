import pino, { Logger } from 'pino';

/** JSON logs to stderr; pretty when stderr is a terminal. Synchronous: a daemon must not lose its last words. */
export function createLogger(level = process.env.CHRONOVOL_LOG ?? 'info'): Logger {
  if (process.stderr.isTTY) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pretty = require('pino-pretty') as (o: object) => NodeJS.WritableStream;
    return pino({ level }, pretty({ colorize: true, sync: true, destination: 2, ignore: 'pid,hostname' }));
  }
  return pino({ level }, pino.destination({ fd: 2, sync: true }));
}

export const silentLogger = (): Logger => pino({ level: 'silent' });
