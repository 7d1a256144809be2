/**
 * A build's progress as one updating line on a terminal (stderr): the layer, bytes read of the total, the rate,
 * then the steps after the layers. Nothing at all when stderr is not a terminal, so logs stay JSON lines.
 */
const REDRAW_MS = 100;

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export class BuildProgress {
  private readonly out: NodeJS.WriteStream | null;
  private readonly onStep: (step: string) => void;
  private readonly started = Date.now();
  private layer = '';
  private read = 0;
  private total: number | null = null;
  private layerStarted = 0;
  private lastDraw = 0;

  /** `onStep` is told of each layer and step as it starts (for timings), terminal or not. */
  constructor(onStep: (step: string) => void = () => {}, out: NodeJS.WriteStream | null = process.stderr.isTTY ? process.stderr : null) {
    this.out = out;
    this.onStep = onStep;
  }

  startLayer(index: number, count: number, label: string, total: number | null): void {
    this.onStep(`layer ${index + 1}/${count}`);
    this.layer = `layer ${index + 1}/${count} ${label}`;
    this.read = 0;
    this.total = total;
    this.layerStarted = Date.now();
    this.draw(true);
  }

  bytes(n: number): void {
    this.read += n;
    this.draw(false);
  }

  /** A step after the layers: "injecting", "mke2fs", "e2fsck", "published". */
  step(what: string): void {
    this.onStep(what);
    this.layer = '';
    this.line(`${what} (${((Date.now() - this.started) / 1000).toFixed(1)} s)`);
  }

  /** Ends the line (the last step stays on screen). */
  done(): void {
    this.out?.write('\n');
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (this.out === null || (!force && now - this.lastDraw < REDRAW_MS)) return;
    this.lastDraw = now;
    const secs = Math.max((now - this.layerStarted) / 1000, 0.001);
    const of = this.total === null ? '' : ` of ${mib(this.total)}`;
    this.line(`${this.layer}: ${mib(this.read)}${of}, ${mib(this.read / secs)}/s`);
  }

  private line(text: string): void {
    if (this.out === null) return;
    const width = Math.max((this.out.columns || 80) - 1, 20); // a pseudo-terminal may say 0 columns
    this.out.write(`\r\x1b[K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
  }
}
