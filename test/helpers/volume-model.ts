/**
 * The plain reference model: a byte array for the live volume and a snapshot for every point we
 * want to check later. Nothing clever, so it can be trusted.
 */
export class VolumeModel {
  live: Buffer;
  /** seq → image after that seq. */
  readonly atSeq = new Map<number, Buffer>();
  constructor(readonly sizeBytes: number) {
    this.live = Buffer.alloc(sizeBytes);
  }
  write(offset: number, data: Buffer): void {
    data.copy(this.live, offset);
  }
  zero(offset: number, length: number): void {
    this.live.fill(0, offset, offset + length);
  }
  snapshot(seq: number): void {
    this.atSeq.set(seq, Buffer.from(this.live));
  }
}
