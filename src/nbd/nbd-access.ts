import * as fs from 'node:fs';
import { ChronoError } from '../errors';

/**
 * Who may use which export, per TLS identity (`--nbd-access FILE`):
 *
 *   { "identities": {
 *       "replica": { "exports": ["live"], "writeLive": true },
 *       "restore": { "exports": ["live", "past"] } } }
 *
 * `exports` lists export names as clients ask for them, `live`, `past` (every past image) or
 * `*` (all). `writeLive` (default false) lets the identity write `live`; without it `live` is
 * served read-only and a write fails with EPERM. An identity not named gets nothing.
 * Without a file, every authenticated identity may do everything.
 */
export interface AccessRule {
  exports: string[];
  writeLive: boolean;
}

export class NbdAccess {
  private constructor(private readonly rules?: Map<string, AccessRule>) {}

  /** Everyone authenticated may do everything (no --nbd-access). */
  static open(): NbdAccess {
    return new NbdAccess();
  }

  static fromFile(file: string): NbdAccess {
    let doc: unknown;
    try {
      doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ChronoError('BAD_ARGUMENT', `--nbd-access ${file}: ${(err as Error).message}`, { file }, err);
    }
    const ids = (doc as { identities?: unknown })?.identities;
    if (!ids || typeof ids !== 'object' || Array.isArray(ids)) throw new ChronoError('BAD_ARGUMENT', `--nbd-access ${file}: want {"identities": {"<identity>": {"exports": [...], "writeLive": bool}}}`, { file });
    const rules = new Map<string, AccessRule>();
    for (const [id, r] of Object.entries(ids as Record<string, { exports?: unknown; writeLive?: unknown }>)) {
      const exports = r?.exports === '*' ? ['*'] : r?.exports;
      if (!Array.isArray(exports) || !exports.every((e) => typeof e === 'string')) throw new ChronoError('BAD_ARGUMENT', `--nbd-access ${file}: identity '${id}' needs "exports": a list of names, "live", "past" or "*"`, { file, identity: id });
      if (r.writeLive !== undefined && typeof r.writeLive !== 'boolean') throw new ChronoError('BAD_ARGUMENT', `--nbd-access ${file}: identity '${id}': "writeLive" must be true or false`, { file, identity: id });
      rules.set(id, { exports: exports as string[], writeLive: r.writeLive === true });
    }
    return new NbdAccess(rules);
  }

  /** Whether `identity` may connect at all (an unknown identity is refused at STARTTLS). */
  knows(identity: string): boolean {
    return !this.rules || this.rules.has(identity);
  }

  /**
   * What `identity` may do with an export: undefined when it may not use it, else whether it
   * may write (`live` with writeLive, and a clone/<name> export it may use: a clone's writes
   * never reach history). `identity` undefined is a trusted local client. `clones` in a rule's
   * exports names every clone; `past` never does.
   */
  allows(identity: string | undefined, e: { name: string; live: boolean; clone?: boolean }): { write: boolean } | undefined {
    if (identity === undefined || !this.rules) return { write: e.live || !!e.clone };
    const r = this.rules.get(identity);
    if (!r) return undefined;
    const named = r.exports.some((x) => x === '*' || x === e.name || (x === 'live' && e.live) || (x === 'past' && !e.live && !e.clone) || (x === 'clones' && !!e.clone));
    if (!named) return undefined;
    return { write: e.live ? r.writeLive : !!e.clone };
  }
}
