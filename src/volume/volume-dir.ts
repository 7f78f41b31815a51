import * as nfs from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ArchiveSettings } from '../archive/open-store';
import { ChronoError, isChronoError } from '../errors';
import { FILE_NAMES } from '../format/constants';
import { Superblock, decodeSuperblock } from '../format/superblock';
import { writeFileDurable } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { NodeFileSystem, createModes } from '../storage/node-file-system';
import { nativeAddon } from '../util/native-addon';

/** User settings that are not part of the format (where the archive is, how it is sealed). */
export type VolumeConfig = ArchiveSettings & {
  /** The retention policy (docs/FORMAT.md; src/retention/policy.ts), durations spelled out. */
  retention?: Record<string, string | number>;
  /** --archive-backlog at init, in bytes (whole segments count); absent: DEFAULTS.archiveBacklogSegments. */
  archiveBacklogBytes?: number;
  /** --archive-stall-timeout at init; absent: DEFAULTS.archiveStallTimeoutMs. */
  archiveStallTimeoutMs?: number;
};

export interface LockInfo {
  pid: number;
  /** Control socket of the daemon that owns the volume, if any. */
  socket?: string;
  role?: string;
}

export class VolumeDir {
  /** The LOCK file's descriptor while this process holds the kernel lock on it. */
  private lockFd?: number;

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

  /**
   * The process that owns the volume now, as LOCK describes it; undefined when nobody does. With
   * the kernel lock this only tests the lock (never takes it), so asking can never make a
   * starting owner fail.
   */
  lockOwner(): LockInfo | undefined {
    if (!this.fs.exists(this.lockPath)) return undefined;
    if (kernelLocks(this.fs)) {
      let fd: number;
      try {
        fd = nfs.openSync(this.lockPath, 'r');
      } catch {
        return undefined; // removed by an owner that just closed
      }
      try {
        const held = nativeAddon.lockHeld!(fd);
        if (held < 0) throw new ChronoError('IO', `cannot test the lock on ${this.lockPath} (errno ${-held})`, { file: this.lockPath, errno: -held });
        return held ? (parseLockInfo(nfs.readFileSync(fd)) ?? { pid: 0 }) : undefined;
      } finally {
        nfs.closeSync(fd);
      }
    }
    const info = parseLockInfo(this.readLockFile());
    return info && processAlive(info.pid) ? info : undefined;
  }

  /**
   * Takes the single-owner lock. On a real file system this is a kernel lock on LOCK (an OFD
   * lock, through the native addon), which the kernel drops when its owner dies, even while the
   * dead owner is a zombie; LOCK's content (pid, role, socket) only names the owner in messages.
   * Without the addon (or on the in-memory crash file system) the fallback judges LOCK by
   * whether its pid is alive (a zombie counts as dead), which a reused pid can fool.
   */
  lock(info: LockInfo, log?: Logger, readOnly = false): void {
    if (kernelLocks(this.fs)) return this.lockKernel(info, readOnly);
    if (this.fs instanceof NodeFileSystem && !fallbackLogged) {
      fallbackLogged = true;
      log?.warn({ dir: this.root }, 'native addon not loaded: the volume lock falls back to a pid check, which a reused pid can fool');
    }
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
        if (owner) throw this.lockedError(owner);
        this.fs.remove(this.lockPath); // stale: its process is gone
      }
    }
    throw new ChronoError('LOCKED', `could not lock ${this.root}`);
  }

  /** `readOnly`: a full disk may refuse LOCK's content; the lock holds all the same (the content only names the owner). */
  private lockKernel(info: LockInfo, readOnly: boolean): void {
    // A closing owner removes LOCK after its last write and before it lets go of the lock: a lock
    // won on a file that is no longer at the path is worthless, so check and try again.
    for (let attempt = 0; attempt < 5; attempt++) {
      const fd = nfs.openSync(this.lockPath, nfs.constants.O_RDWR | nfs.constants.O_CREAT, createModes().fileMode);
      nfs.fchmodSync(fd, createModes().fileMode); // the umask must not widen it (docs/SECURITY.md)
      let keep = false;
      try {
        const err = nativeAddon.lockNoWait!(fd);
        if (err === EAGAIN || err === EACCES) throw this.lockedError(parseLockInfo(nfs.readFileSync(fd)) ?? { pid: 0 });
        if (err !== 0) throw new ChronoError('IO', `cannot lock ${this.lockPath} (errno ${err})`, { file: this.lockPath, errno: err });
        const here = nfs.statSync(this.lockPath, { throwIfNoEntry: false });
        const mine = nfs.fstatSync(fd);
        if (!here || here.ino !== mine.ino || here.dev !== mine.dev) continue;
        this.lockFd = fd;
        keep = true;
        try {
          this.writeLockInfo(info);
        } catch (e) {
          if (!(readOnly && (e as NodeJS.ErrnoException).code === 'ENOSPC')) {
            this.unlock();
            throw new ChronoError('IO', `cannot write ${this.lockPath}: ${(e as Error).message}`, { file: this.lockPath, errno: (e as NodeJS.ErrnoException).code }, e);
          }
        }
        return;
      } finally {
        if (!keep) nfs.closeSync(fd);
      }
    }
    throw new ChronoError('LOCKED', `could not lock ${this.root}: its LOCK file keeps being replaced`);
  }

  private lockedError(owner: LockInfo): ChronoError {
    if (owner.pid === process.pid) return new ChronoError('LOCKED', `volume ${this.root} is already open in this process`, { owner });
    const who = owner.pid ? `process ${owner.pid}${owner.role ? ` (${owner.role})` : ''}` : 'another process';
    return new ChronoError('LOCKED', `volume ${this.root} is in use by ${who}`, { owner });
  }

  private readLockFile(): Buffer | undefined {
    try {
      return this.fs.readFile(this.lockPath);
    } catch {
      return undefined;
    }
  }

  /** LOCK is rewritten in place: with the kernel lock, the locked file must stay the one at the path. */
  private writeLockInfo(info: LockInfo): void {
    const b = Buffer.from(JSON.stringify(info));
    nfs.ftruncateSync(this.lockFd!, 0);
    nfs.writeSync(this.lockFd!, b, 0, b.length, 0);
    nfs.fsyncSync(this.lockFd!);
  }

  updateLock(info: LockInfo): void {
    if (this.lockFd !== undefined) this.writeLockInfo(info);
    else writeFileDurable(this.fs, this.lockPath, Buffer.from(JSON.stringify(info)));
  }

  unlock(): void {
    // Remove first, release second (see lockKernel).
    this.fs.remove(this.lockPath);
    if (this.lockFd !== undefined) {
      nfs.closeSync(this.lockFd);
      this.lockFd = undefined;
    }
  }
}

const EAGAIN = osConstants.errno.EAGAIN;
const EACCES = osConstants.errno.EACCES;
let fallbackLogged = false;

/**
 * The kernel lock needs a real file and the addon's fcntl. CHRONOVOL_NATIVE=0 does not turn it
 * off: two processes locking one volume in different ways would not see each other.
 */
function kernelLocks(fs: FileSystem): boolean {
  return fs instanceof NodeFileSystem && nativeAddon.lockNoWait !== undefined && nativeAddon.lockHeld !== undefined;
}

function parseLockInfo(b: Buffer | undefined): LockInfo | undefined {
  if (!b || b.length === 0) return undefined;
  try {
    const info = JSON.parse(b.toString('utf8')) as LockInfo;
    return typeof info.pid === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Is `pid` a live process? A zombie is not: it has exited, and only waits for its parent to reap it. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = nfs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}
