import type { Volume } from '../volume/volume';

/**
 * Who may be writing the live volume from outside: handles of live/volume.img open for writing
 * in the FUSE tree, and NBD clients attached to the `live` export read-write. Rollback asks, so
 * it does not rewrite live under a mounted file system (docs/DESIGN.md, rollback rules).
 */
export class LiveUsers {
  private treeWriters = 0;
  private nbdClients = 0;

  /** A write handle on live/volume.img; call the result when it is released. */
  openedForWrite(): () => void {
    return this.counted('treeWriters');
  }

  /** An NBD client attached to `live` read-write; call the result when it disconnects. */
  attachedNbd(): () => void {
    return this.counted('nbdClients');
  }

  /** What holds live, in words; undefined when nothing does. */
  describe(): string | undefined {
    const parts: string[] = [];
    if (this.treeWriters) parts.push(`live/volume.img is open for writing through the tree (${this.treeWriters} handle${this.treeWriters > 1 ? 's' : ''}; a mounted file system?)`);
    if (this.nbdClients) parts.push(`${this.nbdClients} NBD client${this.nbdClients > 1 ? 's are' : ' is'} attached to the live export`);
    return parts.length ? parts.join(' and ') : undefined;
  }

  get counts(): { treeWriters: number; nbdClients: number } {
    return { treeWriters: this.treeWriters, nbdClients: this.nbdClients };
  }

  private counted(k: 'treeWriters' | 'nbdClients'): () => void {
    this[k]++;
    let done = false;
    return () => {
      if (!done) this[k]--;
      done = true;
    };
  }
}

const users = new WeakMap<Volume, LiveUsers>();

/** The one registry of an open volume, shared by the FUSE tree, NBD and the control socket. */
export function liveUsersOf(volume: Volume): LiveUsers {
  let u = users.get(volume);
  if (!u) users.set(volume, (u = new LiveUsers()));
  return u;
}
