import { ChronoError, ErrorCode } from '../errors';

/**
 * The control socket: a Unix socket in the volume directory, one JSON request per line, one
 * JSON reply per line. An `export` reply is followed by frames carrying exactly `length`
 * image bytes, or an error frame (control-frames.ts).
 */
export interface ControlRequest {
  method: 'sync' | 'events' | 'status' | 'export' | 'ping' | 'shutdown' | 'clone' | 'windows' | 'begin-resync' | 'end-resync' | 'changed-extents' | 'rollback' | 'diff' | 'history' | 'timeline' | 'bisect-points' | 'retention';
  params?: Record<string, unknown>;
}

/** A failure as the reply line that carries it: its stable code, or DAEMON for anything else. */
export function errorReply(err: unknown): ControlReply {
  const e = err instanceof ChronoError ? err : new ChronoError('DAEMON', (err as Error).message);
  return { ok: false, error: { code: e.code, message: e.message } };
}

/** The error a failure reply carries, with its code. */
export function replyError(r: ControlReply): ChronoError {
  return new ChronoError((r.error?.code ?? 'DAEMON') as ErrorCode, r.error?.message ?? 'daemon error');
}

export interface ControlReply {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  /** For export: the image bytes that follow the reply line. */
  length?: number;
  /** For export: they come in frames (control-frames.ts), as the request asked (`frames: true`). */
  framed?: boolean;
}
