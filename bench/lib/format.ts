/** Plain-text tables and verdicts for benchmark output. */

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function ms(v: number): string {
  return `${v.toFixed(2)} ms`;
}

export function us(v: number): string {
  return `${v.toFixed(3)} µs`;
}

export function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

export function ratio(v: number): string {
  return `${v.toFixed(2)}x`;
}

/** `ratio 1.23x  (target <= 1.5x)  PASS`; a ratio that cannot be computed (NaN, <= 0, infinite) fails. */
export function verdict(name: string, value: number, target: number): { line: string; pass: boolean } {
  const valid = Number.isFinite(value) && value > 0;
  const pass = valid && value <= target;
  const shown = valid ? ratio(value) : 'cannot be computed';
  return { line: `${name}: ${shown}  (target ≤ ${target}x)  ${pass ? 'PASS' : 'FAIL'}`, pass };
}
