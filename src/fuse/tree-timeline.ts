import type { Logger } from 'pino';
import { DEFAULTS } from '../options';
import type { Volume } from '../volume/volume';

/**
 * The tree's timeline.svg: the recent window's picture, drawn in the background and kept, so a
 * read never waits for vega. It is redrawn when something was written or recorded since the
 * last drawing, at most every timelineTreeRefreshMs (longer when drawing is slow: it runs on the
 * event loop); the charting libraries load on the first.
 */
export class TreeTimeline {
  svg?: Buffer;
  private drawing = false;
  private drawnAtMs = 0;
  private drawnState = '';
  /** How long the last drawing took: the event loop serves no FUSE request meanwhile. */
  private drawMs = 0;

  refresh(vol: Volume, log: Logger): void {
    const state = `${vol.lastSeq}/${vol.events.length}`;
    // At most 5% of the event loop's time goes to drawing, however long the history makes it.
    const gapMs = Math.max(DEFAULTS.timelineTreeRefreshMs, 20 * this.drawMs);
    if (this.drawing || state === this.drawnState || Date.now() - this.drawnAtMs < gapMs) return;
    this.drawing = true;
    void (async () => {
      const { timelineOf } = await import('../investigate/timeline-bins');
      const { timelineSvg, loadCharting } = await import('../investigate/timeline-chart');
      await loadCharting(); // once; not counted as drawing time
      const started = Date.now();
      const bins = timelineOf(vol, { lastMs: DEFAULTS.timelineTreeWindowMs });
      this.svg = Buffer.from(await timelineSvg(bins, 'chronovol timeline (recent)'));
      this.drawnState = state;
      this.drawnAtMs = Date.now();
      this.drawMs = this.drawnAtMs - started;
    })().catch((err: Error) => log.warn({ err: err.message }, 'timeline.svg could not be drawn'))
      .finally(() => (this.drawing = false));
  }
}
