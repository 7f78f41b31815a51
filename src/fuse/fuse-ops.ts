import Fuse, { Ops, Stat } from 'fuse-native';
import type { Logger } from 'pino';
import { CloneOverlay } from '../clone/clone-overlay';
import { EdgeOp, fuseErrno } from '../service/edge-errors';
import { isLive, type Point } from '../service/images';
import { liveUsersOf } from '../service/live-users';
import type { Volume } from '../volume/volume';
import { Node, Tree } from './tree';

const O_ACCMODE = 3;
/** Handlers whose failures answer as a write's (see edge-errors.ts): they change the volume. */
const WRITE_OPS = new Set(['write', 'mkdir', 'rmdir']);
const O_RDONLY = 0;

interface Handle {
  node: Node;
  point?: Point;
  writable: boolean;
  /** A clone's image: reads and writes go to its overlay. */
  clone?: CloneOverlay;
  /** Snapshot of a small file's content, so size and reads agree for this open. */
  content?: Buffer;
  /** A write handle on live/volume.img: released with the handle (rollback refuses meanwhile). */
  liveUser?: () => void;
  /** A handle on a clone's image: released with the handle (the clone's delete refuses meanwhile). */
  cloneHold?: () => void;
}

export interface OpsOptions {
  /** Record a crash-consistent event at an fsync/flush when this long has passed since the last one. */
  autoSyncMs: number;
  log: Logger;
}

/**
 * The FUSE handlers. Each one answers from memory or the engine and calls back exactly once;
 * none touches the mount, and none waits on the libuv threadpool (the engine's I/O is
 * synchronous). fuse-native's op timeout is disabled, so a request's buffer belongs to us until
 * we call back: reads reconstruct blocks straight into it and writes append straight from it.
 */
export function makeOps(volume: Volume, tree: Tree, o: OpsOptions): Ops {
  const handles = new Map<number, Handle>();
  let nextFd = 10;
  let lastAutoSyncMs = Date.now();
  const size = volume.sizeBytes;
  // Generated files change over time: an open serves the bytes whose size getattr last reported.
  const lastContent = new Map<string, Buffer>();
  const contentOf = (path: string, n: Node & { kind: 'file' }): Buffer => {
    const c = n.content();
    lastContent.set(path, c);
    return c;
  };

  const stat = (n: Node, content?: Buffer): Stat => {
    const t = new Date(n.mtimeMs);
    if (n.kind === 'dir') return { mode: 0o40755, size: 4096, nlink: 2, mtime: t, atime: t, ctime: t };
    if (n.kind === 'link') return { mode: 0o120777, size: Buffer.byteLength(n.target), nlink: 1, mtime: t, atime: t, ctime: t };
    if (n.kind === 'image') return { mode: n.writable ? 0o100644 : 0o100444, size, nlink: 1, mtime: t, atime: t, ctime: t, blksize: volume.blockSizeBytes, blocks: Math.ceil(size / 512) };
    return { mode: 0o100444, size: (content ?? n.content()).length, nlink: 1, mtime: t, atime: t, ctime: t };
  };

  // A handler that throws must still answer the kernel, or the request hangs.
  const guard = (name: string, cb: (err: number) => void, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      o.log.warn({ op: name, err: (err as Error).message }, 'fuse operation failed');
      cb(fuseErrno(err, WRITE_OPS.has(name) ? 'write' : 'read'));
    }
  };

  const durable = async () => {
    await volume.flush();
    if (o.autoSyncMs > 0 && Date.now() - lastAutoSyncMs >= o.autoSyncMs) {
      lastAutoSyncMs = Date.now();
      await volume.sync({ label: 'auto', kind: 'crash' });
    }
  };

  /** Answers a clone operation that finished at once (undefined) or later (a promise). */
  const settle = (pending: Promise<void> | undefined, done: () => void, cb: (err: number) => void, what: string, op: EdgeOp): void => {
    if (!pending) return done();
    pending.then(done, (err: Error) => {
      o.log.error({ err: err.message }, what);
      cb(fuseErrno(err, op));
    });
  };

  return {
    getattr(path, cb) {
      guard('getattr', cb, () => {
        const n = tree.resolve(path);
        if (!n) return cb(Fuse.ENOENT);
        cb(0, stat(n, n.kind === 'file' ? contentOf(path, n) : undefined));
      });
    },
    readlink(path, cb) {
      guard('readlink', cb, () => {
        const n = tree.resolve(path);
        if (!n) return cb(Fuse.ENOENT);
        if (n.kind !== 'link') return cb(Fuse.EINVAL);
        cb(0, n.target);
      });
    },
    fgetattr(path, fd, cb) {
      guard('fgetattr', cb, () => {
        const h = handles.get(fd);
        if (!h) return cb(Fuse.EBADF);
        cb(0, stat(h.node, h.content));
      });
    },
    readdir(path, cb) {
      guard('readdir', cb, () => {
        const n = tree.resolve(path);
        if (!n) return cb(Fuse.ENOENT);
        if (n.kind !== 'dir') return cb(Fuse.ENOTDIR);
        cb(0, n.list ? n.list() : []);
      });
    },
    open(path, flags, cb) {
      guard('open', cb, () => {
        const n = tree.resolve(path);
        if (!n) return cb(Fuse.ENOENT);
        if (n.kind === 'dir') return cb(Fuse.EISDIR);
        if (n.kind === 'link') return cb(Fuse.ELOOP); // the kernel follows a link before opening: an ordinary open never gets here
        const wantsWrite = (flags & O_ACCMODE) !== O_RDONLY;
        const writable = n.kind === 'image' && n.writable;
        if (wantsWrite && !writable) return cb(Fuse.EROFS);
        const fd = nextFd++;
        const clone = n.kind === 'image' && n.clone ? tree.clones.overlay(n.clone) : undefined;
        const cloneHold = n.kind === 'image' && n.clone ? tree.clones.hold(n.clone) : undefined;
        const liveUser = wantsWrite && n.kind === 'image' && !n.clone && isLive(n.point) ? liveUsersOf(volume).openedForWrite() : undefined;
        handles.set(fd, { node: n, point: n.kind === 'image' ? n.point : undefined, writable: wantsWrite, clone, content: n.kind === 'file' ? lastContent.get(path) ?? contentOf(path, n) : undefined, liveUser, cloneHold });
        cb(0, fd);
      });
    },
    create(path, mode, cb) {
      cb(tree.resolve(path) ? Fuse.EEXIST : Fuse.EROFS);
    },
    release(path, fd, cb) {
      handles.get(fd)?.liveUser?.();
      handles.get(fd)?.cloneHold?.();
      handles.delete(fd);
      cb(0);
    },
    read(path, fd, buf, len, pos, cb) {
      guard('read', cb, () => {
        const h = handles.get(fd);
        if (!h) return cb(Fuse.EBADF);
        if (h.content) {
          // A later stat may report a longer file than this handle's bytes: past them is EOF.
          if (pos >= h.content.length) return cb(0);
          const n = Math.min(len, h.content.length - pos);
          h.content.copy(buf, 0, pos, pos + n);
          return cb(n);
        }
        if (pos >= size) return cb(0);
        const n = Math.min(len, size - pos);
        if (h.clone) return settle(h.clone.readInto(buf, pos, n), () => cb(n), cb, 'clone read failed', 'read');
        // The request buffer stays ours until cb: fuse-native's op timeout is off (fuse-mount.ts),
        // so no late reply can hand it back to the kernel while we still fill it.
        const pending = volume.readIntoNow(buf, pos, n, h.point);
        if (!pending) return cb(n);
        pending.then(
          () => cb(n),
          (err: Error) => {
            o.log.error({ path, pos, len, err: err.message }, 'read failed');
            cb(fuseErrno(err, 'read'));
          },
        );
      });
    },
    write(path, fd, buf, len, pos, cb) {
      guard('write', cb, () => {
        const h = handles.get(fd);
        if (!h) return cb(Fuse.EBADF);
        if (!h.writable) return cb(Fuse.EROFS);
        if (pos + len > size) return cb(Fuse.EFBIG);
        // Appended straight from the request buffer, which stays valid until cb (timeout is off);
        // at once when nothing needs waiting for, which is nearly always (see tryWriteSync).
        const data = buf.subarray(0, len);
        if (h.clone) return settle(h.clone.write(pos, data), () => cb(len), cb, 'clone write failed', 'write');
        if (volume.tryWriteSync(pos, data)) return cb(len);
        volume.write(pos, data).then(
          () => cb(len),
          (err: Error) => {
            o.log.error({ pos, len, err: err.message }, 'write failed');
            cb(fuseErrno(err, 'write'));
          },
        );
      });
    },
    flush(path, fd, cb) {
      const h = handles.get(fd);
      if (!h?.writable) return cb(0);
      if (h.clone) return settle(h.clone.sync(), () => cb(0), cb, 'clone flush failed', 'write');
      durable().then(() => cb(0), (err) => cb(fuseErrno(err, 'write')));
    },
    fsync(path, datasync, fd, cb) {
      const h = handles.get(fd);
      if (!h?.writable) return cb(0);
      if (h.clone) return settle(h.clone.sync(), () => cb(0), cb, 'clone fsync failed', 'write');
      durable().then(() => cb(0), (err) => cb(fuseErrno(err, 'write')));
    },
    truncate(path, newSize, cb) {
      const n = tree.resolve(path);
      if (!n) return cb(Fuse.ENOENT);
      if (n.kind !== 'image' || !n.writable) return cb(Fuse.EROFS);
      cb(newSize === size ? 0 : Fuse.EPERM); // the image has the volume's fixed size
    },
    ftruncate(path, fd, newSize, cb) {
      const h = handles.get(fd);
      if (!h) return cb(Fuse.EBADF);
      if (!h.writable) return cb(Fuse.EROFS);
      cb(newSize === size ? 0 : Fuse.EPERM);
    },
    mkdir(path, mode, cb) {
      if (tree.resolve(path)) return cb(Fuse.EEXIST);
      guard('mkdir', cb, () => {
        tree.mkdir(path).then(
          (r) => {
            if (r.event) o.log.info({ event: r.event.id, label: r.event.label }, 'event recorded by mkdir');
            else o.log.info({ clone: r.clone }, 'clone made by mkdir');
            cb(0);
          },
          (err) => cb(fuseErrno(err, 'write')),
        );
      });
    },
    rmdir(path, cb) {
      if (!tree.resolve(path)) return cb(Fuse.ENOENT);
      tree.rmdir(path).then(() => cb(0), (err) => cb(fuseErrno(err, 'write')));
    },
    unlink(path, cb) {
      if (!tree.resolve(path)) return cb(Fuse.ENOENT);
      cb(tree.isCloneFile(path) ? 0 : Fuse.EROFS); // rm -r of a clone: its rmdir discards the whole clone
    },
    rename(src, dest, cb) {
      cb(Fuse.EROFS);
    },
    chmod(path, mode, cb) {
      cb(tree.resolve(path) ? Fuse.EROFS : Fuse.ENOENT);
    },
    utimens(path, atime, mtime, cb) {
      cb(tree.resolve(path) ? 0 : Fuse.ENOENT); // touch(1) and cp -p expect this to succeed
    },
    statfs(path, cb) {
      const blocks = Math.ceil(size / 4096);
      cb(0, { bsize: 4096, frsize: 4096, blocks, bfree: 0, bavail: 0, files: 1000, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 });
    },
  };
}
