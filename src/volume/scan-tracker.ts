/** Images whose scan state is remembered (least recently read forgotten first). */
const TRACKED_IMAGES = 64;

export interface ScanTrackerOptions {
  /** A read this long or longer may continue a scan; shorter ones are random reads. */
  minBlocks: number;
  /**
   * How far from an image's frontier a read may land and still continue its scan. A window, not
   * an exact match: the kernel's read-ahead requests reach us from several FUSE threads (and NBD
   * clients pipeline), so a scan's requests arrive out of order.
   */
  windowBlocks: number;
  /** How far ahead of a scan its blocks are kept prefetched, and in what steps. */
  aheadBlocks: number;
  stepBlocks: number;
}

interface ImageScan {
  /** The furthest block end a scan read reached. */
  frontier: number;
  /** Blocks before this one have had their read-ahead issued. */
  ahead: number;
}

/**
 * Tells scans from random reads, per image (point in time), and keeps each scan's blocks read
 * ahead by image position, so the read-ahead follows the image across segment boundaries and
 * into whatever segments its blocks live in.
 */
export class ScanTracker {
  private readonly images = new Map<number, ImageScan>();

  constructor(private readonly o: ScanTrackerOptions, private readonly prefetch: (firstBlock: number, count: number, seqLimit: number) => void) {}

  /** Records a read of [firstBlock, firstBlock+count) of image seqLimit; true if it is part of a scan. */
  note(firstBlock: number, count: number, seqLimit: number): boolean {
    const end = firstBlock + count;
    const s = this.images.get(seqLimit);
    const scan = s !== undefined && count >= this.o.minBlocks && Math.abs(firstBlock - s.frontier) <= this.o.windowBlocks;
    this.images.delete(seqLimit); // re-inserted last: the map's order is least recently read first
    const next: ImageScan = scan ? { frontier: Math.max(s.frontier, end), ahead: Math.max(s.ahead, end) } : { frontier: end, ahead: end };
    this.images.set(seqLimit, next);
    if (this.images.size > TRACKED_IMAGES) this.images.delete(this.images.keys().next().value!);
    if (scan) {
      for (const target = next.frontier + this.o.aheadBlocks; next.ahead < target; next.ahead += this.o.stepBlocks) {
        this.prefetch(next.ahead, this.o.stepBlocks, seqLimit);
      }
    }
    return scan;
  }
}
