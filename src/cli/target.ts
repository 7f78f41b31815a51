import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChronoError } from '../errors';
import { FILE_NAMES } from '../format/constants';
import type { Volume } from '../volume/volume';

// The engine (and pino) load only when a command opens a volume itself: a command that a daemon
// answers (sync, events, status, export against a mount) never needs them.

export interface Target {
  volumeDir?: string;
  /** Control socket of a daemon that owns the volume: use it instead of opening the volume. */
  daemonSocket?: string;
}

/** A volume directory, or the mountpoint of a running `chronovol mount`. */
export function resolveTarget(p: string): Target {
  const abs = path.resolve(p);
  if (fs.existsSync(path.join(abs, FILE_NAMES.superblock))) {
    const { VolumeDir } = require('../volume/volume-dir') as typeof import('../volume/volume-dir');
    const { NodeFileSystem } = require('../storage/node-file-system') as typeof import('../storage/node-file-system');
    return { volumeDir: abs, daemonSocket: new VolumeDir(new NodeFileSystem(), abs).lockOwner()?.socket };
  }
  const statusFile = path.join(abs, 'status.json');
  if (fs.existsSync(statusFile)) {
    const s = readStatusJson(statusFile);
    if (s.daemon?.controlSocket) return { volumeDir: s.daemon.volumeDir, daemonSocket: s.daemon.controlSocket };
  }
  throw new ChronoError('NOT_A_VOLUME', `${p} is neither a chronovol volume directory nor a chronovol mountpoint`);
}

/**
 * A mount's status.json. The daemon rewrites it every second, and its length changes with its
 * figures (the archive lag among them): a read that straddles a rewrite can come back cut at the
 * old length. Such a read does not parse; the next one does.
 */
function readStatusJson(file: string): { daemon?: { controlSocket?: string; volumeDir?: string } } {
  for (let attempt = 1; ; attempt++) {
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as { daemon?: { controlSocket?: string; volumeDir?: string } };
    } catch (err) {
      if (!(err instanceof SyntaxError) || attempt >= 5) throw err;
    }
  }
}

export function volumeDirOf(p: string): string {
  const t = resolveTarget(p);
  if (!t.volumeDir) throw new ChronoError('NOT_A_VOLUME', `${p} is not a volume directory`);
  return t.volumeDir;
}

/**
 * Opens a volume for a CLI command; a daemon holding it yields a LOCKED error naming it.
 * `readOnly` for commands that only read: they then work on a full disk.
 */
export async function openForCli(dir: string, role: string, cacheBytes = 0, readOnly = false): Promise<Volume> {
  const { Volume } = await import('../volume/volume');
  const { createLogger } = await import('../log');
  return Volume.open(dir, { role, log: createLogger(process.env.CHRONOVOL_LOG ?? 'warn'), cacheBytes, readOnly });
}

/**
 * Runs a command against a volume directory or mountpoint: through the owning daemon's control
 * socket when one holds the volume, else by opening the volume for the length of the command.
 */
export async function viaDaemonOrVolume<T>(target: string, role: string, daemon: (socket: string) => Promise<T>, local: (vol: Volume) => Promise<T>, readOnly = false): Promise<T> {
  const t = resolveTarget(target);
  if (t.daemonSocket) return daemon(t.daemonSocket);
  const vol = await openForCli(t.volumeDir!, role, 0, readOnly);
  try {
    return await local(vol);
  } finally {
    await vol.close();
  }
}

export function controlSocketFor(dir: string): string {
  return path.join(dir, FILE_NAMES.controlSocket);
}
