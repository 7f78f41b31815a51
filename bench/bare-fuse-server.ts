/**
 * The baseline for the FUSE ratios: bare fuse-native with the same mount options as chronovol's
 * mount, serving /file from memory and a no-op /sink. Prints "ready" when mounted. With a third
 * argument (other than 0) it also sets the mount's kernel read-ahead and congestion threshold as
 * chronovol's daemon does, and with a fourth, `place`, it places its FUSE threads as chronovol's
 * daemon does (src/fuse/thread-placement.ts).
 */
import Fuse from 'fuse-native';
import pino from 'pino';
import { CONGESTION_THRESHOLD_REQUESTS, EXTRA_MOUNT_OPTIONS } from '../src/fuse/mount-options';
import { setCongestionThreshold, setReadAhead } from '../src/fuse/read-ahead';
import { FuseThreads, PlacementPolicy } from '../src/fuse/thread-placement';

const [mnt, sizeArg, readAheadArg, placeArg] = process.argv.slice(2);
let policy: PlacementPolicy | undefined;
const size = Number(sizeArg);
const data = Buffer.alloc(size, 0x5a);
const t = new Date();
const fileStat = (mode: number) => ({ mode, size, nlink: 1, mtime: t, atime: t, ctime: t });

class BigWritesFuse extends Fuse {
  protected override _fuseOptions(): string {
    return `${super._fuseOptions()},${EXTRA_MOUNT_OPTIONS},attr_timeout=0`;
  }
}

const fuse = new BigWritesFuse(mnt, {
  getattr(path, cb) {
    if (path === '/') return cb(0, { mode: 0o40755, size: 4096, nlink: 2, mtime: t, atime: t, ctime: t });
    if (path === '/file') return cb(0, fileStat(0o100444));
    if (path === '/sink') return cb(0, fileStat(0o100644));
    cb(Fuse.ENOENT);
  },
  readdir(path, cb) {
    cb(0, ['file', 'sink']);
  },
  open(path, flags, cb) {
    cb(0, path === '/sink' ? 2 : 1);
  },
  release(path, fd, cb) {
    cb(0);
  },
  read(path, fd, buf, len, pos, cb) {
    policy?.onRequest(true);
    const n = Math.max(0, Math.min(len, size - pos));
    data.copy(buf, 0, pos, pos + n);
    cb(n);
  },
  write(path, fd, buf, len, pos, cb) {
    policy?.onRequest(false);
    cb(len);
  },
  flush(path, fd, cb) {
    cb(0);
  },
  fsync(path, datasync, fd, cb) {
    cb(0);
  },
  truncate(path, s, cb) {
    cb(0);
  },
}, { timeout: false, maxRead: 131072, fsname: 'bare' });

const mount = () => new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
void FuseThreads.mount(placeArg === 'place' ? 'auto' : 'off', mount, pino({ level: 'warn' })).then((threads) => {
  if (threads) policy = new PlacementPolicy(threads);
  if (readAheadArg && readAheadArg !== '0') {
    setReadAhead(mnt, Number(readAheadArg));
    setCongestionThreshold(mnt, CONGESTION_THRESHOLD_REQUESTS);
  }
  process.stdout.write('ready\n');
});
const keep = setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => fuse.unmount(() => {
  clearInterval(keep);
  process.exit(0);
}));
