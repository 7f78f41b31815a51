import * as path from 'node:path';
import { ChronoError } from '../errors';
import { FILE_NAMES } from '../format/constants';
import { writeFileDurable } from '../storage/durable-file';
import { Core } from './core';

/**
 * What `<dir>/rollback.json` records while a rollback runs (docs/FORMAT.md): the target, and the
 * event that holds the state being left. Written durably before the first block is written,
 * removed once the event after the rollback is durable; found at open, it means live may be a
 * mix of the two states, and repeating the rollback finishes it.
 */
export interface RollbackIntent {
  version: 1;
  /** The target point's canonical name (`event:<id>`, `seq:<n>`, `time:<iso>`, `clone:<name>`). */
  to: string;
  /** The seq the target reads at (a clone's base seq for a clone). */
  toSeq: number;
  /** Set when the target is a clone: its overlay is part of the target. */
  clone: string | null;
  /** The event recorded just before: the state being left. */
  beforeEvent: { id: number; seq: number; label: string };
  /** The label the event after the rollback gets. */
  label: string;
  startedAt: string;
}

function pathOf(core: Core): string {
  return path.join(core.dir.root, FILE_NAMES.rollbackIntent);
}

export function readRollbackIntent(core: Core): RollbackIntent | undefined {
  const p = pathOf(core);
  if (!core.fs.exists(p)) return undefined;
  let v: RollbackIntent;
  try {
    v = JSON.parse(core.fs.readFile(p).toString('utf8')) as RollbackIntent;
  } catch (err) {
    // Replaced atomically, so never torn: anything else is damage, not a half-written file.
    throw new ChronoError('BAD_LENGTH', `${p}: not a rollback intent: ${(err as Error).message}`, { file: p });
  }
  if (v.version !== 1) throw new ChronoError('BAD_VERSION', `${p}: rollback intent version ${String(v.version)}, this build knows 1`, { file: p });
  return v;
}

/** Durable when it returns: the caller writes blocks only after this. */
export function writeRollbackIntent(core: Core, intent: RollbackIntent): void {
  writeFileDurable(core.fs, pathOf(core), Buffer.from(JSON.stringify(intent, null, 2) + '\n'));
}

/** Removes the intent durably; only once the event after the rollback is durable. */
export function clearRollbackIntent(core: Core): void {
  const p = pathOf(core);
  if (!core.fs.exists(p)) return;
  core.fs.remove(p);
  core.fs.syncDir(core.dir.root);
}
