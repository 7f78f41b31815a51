declare module 'fuse-native' {
  type Cb<T = unknown> = (err: number, value?: T, ...rest: unknown[]) => void;
  export interface Stat {
    mode: number; size: number; mtime: Date; atime: Date; ctime: Date; nlink?: number; uid?: number; gid?: number; blksize?: number; blocks?: number;
  }
  export interface Ops {
    init?(cb: (err: number) => void): void;
    getattr?(path: string, cb: Cb<Stat>): void;
    readlink?(path: string, cb: Cb<string>): void;
    fgetattr?(path: string, fd: number, cb: Cb<Stat>): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void;
    open?(path: string, flags: number, cb: Cb<number>): void;
    create?(path: string, mode: number, cb: Cb<number>): void;
    release?(path: string, fd: number, cb: (err: number) => void): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    flush?(path: string, fd: number, cb: (err: number) => void): void;
    fsync?(path: string, datasync: number, fd: number, cb: (err: number) => void): void;
    truncate?(path: string, size: number, cb: (err: number) => void): void;
    ftruncate?(path: string, fd: number, size: number, cb: (err: number) => void): void;
    mkdir?(path: string, mode: number, cb: (err: number) => void): void;
    rmdir?(path: string, cb: (err: number) => void): void;
    unlink?(path: string, cb: (err: number) => void): void;
    rename?(src: string, dest: string, cb: (err: number) => void): void;
    utimens?(path: string, atime: number, mtime: number, cb: (err: number) => void): void;
    chmod?(path: string, mode: number, cb: (err: number) => void): void;
    statfs?(path: string, cb: Cb<Record<string, number>>): void;
  }
  export interface FuseOptions {
    timeout?: number | false;
    force?: boolean;
    mkdir?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    allowOther?: boolean;
    autoUnmount?: boolean;
    debug?: boolean;
  }
  class Fuse {
    constructor(mnt: string, ops: Ops, opts?: FuseOptions);
    mnt: string;
    mount(cb: (err?: Error | null) => void): void;
    unmount(cb: (err?: Error | null) => void): void;
    protected _fuseOptions(): string;
    /** Called once per libfuse thread, for the thread-local state fuse-native keeps for it. */
    protected _malloc(size: number): Buffer;
    static unmount(mnt: string, cb: (err?: Error | null) => void): void;
    static ENOENT: number; static EIO: number; static EROFS: number; static EPERM: number; static EINVAL: number;
    static EEXIST: number; static ENOTDIR: number; static EISDIR: number; static EFBIG: number; static ENOSPC: number;
    static EACCES: number; static ENOTEMPTY: number; static EBADF: number; static ENOSYS: number; static EBUSY: number; static ELOOP: number;
  }
  export = Fuse;
}
