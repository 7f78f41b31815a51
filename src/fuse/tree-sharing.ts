import type { Ops, Stat } from 'fuse-native';
import { ChronoError } from '../errors';

/**
 * `mount --allow-other`: the tree shared on purpose, e.g. so a group can browse past images
 * without root. The kernel checks the modes given here (default_permissions); without
 * --allow-other only the mounting user gets in, whatever the modes say.
 */
export interface TreeSharing {
  uid: number;
  gid: number;
  /** Permission bits for files; directories get x wherever they get r. Read-only files lose w. */
  mode: number;
}

/** The FUSE options that go with it (fuse-native's own keys). */
export const SHARING_FUSE_OPTIONS = { allowOther: true, defaultPermissions: true } as const;

export function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new ChronoError('BAD_ARGUMENT', `--mode wants octal permission bits such as 0640, got '${text}'`);
  return parseInt(text, 8);
}

export function parseId(what: string): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text)) throw new ChronoError('BAD_ARGUMENT', `--${what} wants a number, got '${text}'`);
    return Number(text);
  };
}

function shared(st: Stat, s: TreeSharing): Stat {
  const type = st.mode & ~0o7777;
  const isDir = (type & 0o170000) === 0o040000;
  const perm = isDir ? s.mode | ((s.mode & 0o444) >> 2) : st.mode & 0o200 ? s.mode & 0o666 : s.mode & 0o444;
  return { ...st, mode: type | perm, uid: s.uid, gid: s.gid };
}

/** The tree's attributes as `s` says: owner, group and modes. */
export function shareTree(ops: Ops, s: TreeSharing): Ops {
  const getattr = ops.getattr!;
  const fgetattr = ops.fgetattr!;
  return {
    ...ops,
    getattr: (p, cb) => getattr(p, (err, st) => cb(err, st && shared(st, s))),
    fgetattr: (p, fd, cb) => fgetattr(p, fd, (err, st) => cb(err, st && shared(st, s))),
  };
}
