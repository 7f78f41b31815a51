export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** Aligned columns; the header row first. */
export function printTable(rows: string[][]): void {
  if (!rows.length) return;
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  for (const r of rows) process.stdout.write(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ') + '\n');
}

/** A progress bar on stderr when it is a terminal; silent otherwise (scripts, CI). */
export class ProgressBar {
  private lastDraw = 0;
  private readonly tty = Boolean(process.stderr.isTTY) && !process.env.CHRONOVOL_NO_PROGRESS;
  private readonly started = Date.now();
  constructor(private readonly label: string, private readonly total: number, private readonly bytes = true) {}

  update(done: number): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < this.total) return;
    this.lastDraw = now;
    const frac = this.total ? Math.min(1, done / this.total) : 1;
    const width = 30;
    const filled = Math.round(frac * width);
    const secs = (now - this.started) / 1000;
    const rate = this.bytes && secs > 0 ? `  ${formatBytes(done / secs)}/s` : '';
    const amount = this.bytes ? `${formatBytes(done)} / ${formatBytes(this.total)}` : `${done} / ${this.total}`;
    process.stderr.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${amount}${rate}   `);
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
