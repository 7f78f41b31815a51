import * as path from 'node:path';
import type { ArchiveSettings } from '../archive/open-store';
import { ChronoError, isChronoError } from '../errors';
import { FILE_NAMES } from '../format/constants';
import { Superblock, decodeSuperblock } from '../format/superblock';
import { writeFileDurable } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';

/** User settings that are not part of the format (where the archive is, how it is sealed). */
export type VolumeConfig = ArchiveSettings;

export interface LockInfo {
  pid: number;
  /** Control socket of the daemon that owns the volume, if any. */
  socket?: string;
  role?: string;
}

export class VolumeDir {
  constructor(readonly fs: FileSystem, readonly root: string) {}

  get superblockPath(): string {
    return path.join(this.root, FILE_NAMES.superblock);
  }
  get segmentsDir(): string {
    return path.join(this.root, FILE_NAMES.segmentsDir);
  }
  get indexDir(): string {
    return path.join(this.root, FILE_NAMES.indexDir);
  }
  get lockPath(): string {
    return path.join(this.root, FILE_NAMES.lock);
  }
  get controlSocketPath(): string {
    return path.join(this.root, FILE_NAMES.controlSocket);
  }
  segmentPath(name: string): string {
    return path.join(this.segmentsDir, name);
  }

  isVolume(): boolean {
    return this.fs.exists(this.superblockPath);
  }

  readSuperblock(): Superblock {
    if (!this.isVolume()) {
      throw new ChronoError('NOT_A_VOLUME', `${this.root} is not a chronovol volume (no superblock); create one with 'chronovol init'`, { dir: this.root });
    }
    return decodeSuperblock(this.fs.readFile(this.superblockPath), { file: this.superblockPath });
  }

  readConfig(): VolumeConfig {
    const p = path.join(this.root, FILE_NAMES.config);
    try {
      return JSON.parse(this.fs.readFile(p).toString('utf8')) as VolumeConfig;
    } catch (err) {
      throw new ChronoError('NOT_A_VOLUME', `${p} is missing or not valid JSON`, { file: p }, err);
    }
  }

  writeConfig(c: VolumeConfig): void {
    writeFileDurable(this.fs, path.join(this.root, FILE_NAMES.config), Buffer.from(JSON.stringify(c, null, 2) + '\n'));
  }

  /** The owner recorded in LOCK if that process is still alive. */
  lockOwner(): LockInfo | undefined {
    if (!this.fs.exists(this.lockPath)) return undefined;
    let info: LockInfo;
    try {
      info = JSON.parse(this.fs.readFile(this.lockPath).toString('utf8')) as LockInfo;
    } catch {
      return undefined;
    }
    return processAlive(info.pid) ? info : undefined;
  }

  /**
   * Takes the single-owner lock: a LOCK file holding our pid. A LOCK left by a dead process is
   * stale and taken over; a live owner gets a clear error naming it.
   */
  lock(info: LockInfo): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const h = this.fs.open(this.lockPath, 'createNew');
        const b = Buffer.from(JSON.stringify(info));
        h.write(b, 0, b.length, 0);
        h.sync();
        h.close();
        return;
      } catch (err) {
        if (!(isChronoError(err, 'IO') && err.details.errno === 'EEXIST')) throw err;
        const owner = this.lockOwner();
        if (owner && owner.pid !== process.pid) {
          throw new ChronoError('LOCKED', `volume ${this.root} is in use by process ${owner.pid}${owner.role ? ` (${owner.role})` : ''}`, { owner });
        }
        if (owner && owner.pid === process.pid) {
          throw new ChronoError('LOCKED', `volume ${this.root} is already open in this process`, { owner });
        }
        this.fs.remove(this.lockPath); // stale: its process is gone
      }
    }
    throw new ChronoError('LOCKED', `could not lock ${this.root}`);
  }

  updateLock(info: LockInfo): void {
    writeFileDurable(this.fs, this.lockPath, Buffer.from(JSON.stringify(info)));
  }

  unlock(): void {
    this.fs.remove(this.lockPath);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
