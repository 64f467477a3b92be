/**
 * Progress of long work (import, export, unpack): a bar with bytes, rate and ETA on a terminal (stderr),
 * a plain line every tenth of the way when stderr is not a terminal, nothing with --quiet.
 */
import { SingleBar } from 'cli-progress';

/** Bytes for people: 1.5 MiB. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export interface Progress {
  /** Reports `done` of `total` bytes (total unknown: undefined). */
  update(done: number, total: number | undefined): void;
  stop(): void;
}

const SILENT: Progress = { update: () => {}, stop: () => {} };

/** A progress reporter for `label`. */
export function progress(label: string, options: { quiet?: boolean } = {}): Progress {
  if (options.quiet) return SILENT;
  const started = Date.now();
  if (!process.stderr.isTTY) {
    let reported = -1;
    return {
      update(done, total) {
        if (total === undefined || total === 0) return;
        const tenth = Math.floor((done / total) * 10);
        if (tenth <= reported) return;
        reported = tenth;
        process.stderr.write(`${label}: ${tenth * 10}% (${humanBytes(done)} of ${humanBytes(total)})\n`);
      },
      stop() {},
    };
  }
  let bar: SingleBar | undefined;
  return {
    update(done, total) {
      if (bar === undefined) {
        bar = new SingleBar({
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          format: (_options, params) => {
            const seconds = Math.max((Date.now() - started) / 1000, 0.001);
            const rate = params.value / seconds;
            const whole = params.total > 0 ? params.total : undefined;
            const width = 24;
            const filled = whole ? Math.round((params.value / whole) * width) : 0;
            // No estimate from the first half second: the rate is still mostly start-up.
            const eta = whole && rate > 0 && seconds >= 0.5 ? Math.max(0, Math.round((whole - params.value) / rate)) : undefined;
            return `${label} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${humanBytes(params.value)}${whole ? ` / ${humanBytes(whole)}` : ''}  ${humanBytes(rate)}/s${eta !== undefined ? `  ETA ${eta}s` : ''}`;
          },
        });
        bar.start(total ?? 0, done);
      }
      if (total !== undefined) bar.setTotal(total);
      bar.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}
