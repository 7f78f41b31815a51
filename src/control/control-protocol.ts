/**
 * The control socket: a Unix socket in the volume directory, one JSON request per line, one
 * JSON reply per line. An `export` reply is followed by exactly `length` raw bytes.
 */
export interface ControlRequest {
  method: 'sync' | 'events' | 'status' | 'export' | 'ping' | 'shutdown' | 'clone' | 'windows' | 'begin-resync' | 'end-resync' | 'changed-extents' | 'rollback' | 'diff' | 'history' | 'timeline' | 'bisect-points' | 'retention';
  params?: Record<string, unknown>;
}

export interface ControlReply {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  /** For export: raw bytes that follow the reply line. */
  length?: number;
}
