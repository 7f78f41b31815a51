import * as fs from 'node:fs';
import { ChronoError } from '../errors';
import { CreateModes, createModes, setGroupAccess } from '../storage/node-file-system';

/**
 * A volume directory holds the whole volume and its history: like PostgreSQL's data directory,
 * it must be the owner's alone (0700), or the owner's group's to read (0750) when that was asked
 * for. `open` checks it; every file and directory created under it gets the matching mode.
 */

let groupAccessAllowed = false;

/** `--allow-group-access` for this process: opens accept 0750 and create 0750/0640. */
export function allowGroupAccess(): void {
  groupAccessAllowed = true;
  setGroupAccess(true);
}

/**
 * Refuses (UNSAFE_PERMISSIONS) a volume directory others can reach, or group members unless
 * allowGroup; returns the modes for what the volume creates.
 */
export function checkVolumeDirPermissions(dir: string, allowGroup = groupAccessAllowed): CreateModes {
  let mode: number;
  try {
    mode = fs.statSync(dir).mode & 0o777;
  } catch {
    return createModes(allowGroup); // missing: the superblock check reports it
  }
  const forbidden = allowGroup ? 0o027 : 0o077;
  if ((mode & forbidden) !== 0) {
    const octal = mode.toString(8).padStart(4, '0');
    const fix = allowGroup ? `chmod -R g-w,o-rwx ${dir}` : `chmod -R go-rwx ${dir}`;
    const also = allowGroup ? '' : ' (or, to let its group read it, --allow-group-access with chmod -R g-w,o-rwx)';
    throw new ChronoError('UNSAFE_PERMISSIONS', `volume directory ${dir} has mode ${octal}: ${allowGroup ? 'others or group writers' : 'other users'} can reach the volume and its history. Fix it with: ${fix}${also}`, { dir, mode: octal });
  }
  return createModes(allowGroup);
}

/** Creates `dir` if missing and gives it exactly the directory mode (init, recover). */
export function makeVolumeDir(dir: string, modes: CreateModes = createModes(groupAccessAllowed)): void {
  fs.mkdirSync(dir, { recursive: true, mode: modes.dirMode });
  fs.chmodSync(dir, modes.dirMode);
}
