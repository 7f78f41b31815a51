import { ChronoError } from '../errors';
import type { NbdAccess } from '../nbd/nbd-access';
import type { ControlRequest } from './control-protocol';

/**
 * What a TLS identity may ask of the control channel over TCP, from the same `--nbd-access`
 * rules as NBD (docs/SECURITY.md, "Control over TCP"):
 *
 * - `ping`: any authenticated identity (it answers with the identity's rights, so `protect` can
 *   refuse to start with credentials that could never record an event).
 * - Reads of history (`events`, `windows`, `status`, `diff`, `history`, `timeline`,
 *   `bisect-points`, `changed-extents`, `export`): an identity that may use `live` or past images
 *   over NBD (read-only is enough), since these show what those images hold.
 * - Everything that changes the volume or its log (`sync`, `begin-resync`, `end-resync`,
 *   `rollback`, `clone`, `retention`, `shutdown`): only an identity that may write `live`. A
 *   replica identity records events and resync windows; a restore identity cannot.
 *
 * Without `--nbd-access` every authenticated identity may do everything, as over NBD.
 */
export type ControlRight = 'connect' | 'read' | 'write';

const READS = new Set<ControlRequest['method']>(['events', 'windows', 'status', 'diff', 'history', 'timeline', 'bisect-points', 'changed-extents', 'export']);

export function rightNeeded(method: ControlRequest['method']): ControlRight {
  if (method === 'ping') return 'connect';
  return READS.has(method) ? 'read' : 'write';
}

/** What `identity` may do; identity undefined is a local client of the Unix socket (its mode guards it). */
export function controlRights(access: NbdAccess, identity: string | undefined): { read: boolean; write: boolean } {
  if (identity === undefined) return { read: true, write: true };
  const live = access.allows(identity, { name: 'live', live: true });
  const past = access.allows(identity, { name: 'past', live: false });
  return { read: !!live || !!past, write: live?.write === true };
}

/** Throws ACCESS_DENIED when `identity` may not make this request. */
export function checkControlRight(access: NbdAccess, identity: string | undefined, method: ControlRequest['method']): void {
  const need = rightNeeded(method);
  if (need === 'connect') return;
  const r = controlRights(access, identity);
  if (r[need]) return;
  const why = need === 'write' ? 'may not write live, so it may not change the volume or its log' : 'may use neither live nor past images';
  throw new ChronoError('ACCESS_DENIED', `identity '${identity}' ${why} (control method ${method}; see --nbd-access)`, { identity, method });
}
