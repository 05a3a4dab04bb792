/**
 * The run's loss and accuracy curves as one picture (`curves.png` next to the manifest): an SVG drawn
 * here, rasterised by sharp (librsvg). Left: the loss parts per logged step; right: top-1 of each head
 * (and the teacher) at each evaluation.
 */
import sharp from 'sharp';
import type { TrainingHistory } from './checkpoint';

interface Series {
  readonly label: string;
  readonly color: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  readonly dashed?: boolean;
}

const WIDTH = 960;
const HEIGHT = 400;
const PANEL = { top: 40, bottom: 50, left: 60, right: 20 };

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Round-number ticks covering [lo, hi]. */
function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

function panel(
  x0: number,
  width: number,
  title: string,
  series: readonly Series[],
  yRange?: readonly [number, number],
): string {
  const all = series.flatMap((s) => s.points);
  const parts: string[] = [];
  const left = x0 + PANEL.left;
  const right = x0 + width - PANEL.right;
  const top = PANEL.top;
  const bottom = HEIGHT - PANEL.bottom;
  parts.push(
    `<text x="${(left + right) / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  );
  parts.push(
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#888"/>`,
  );
  if (all.length === 0) {
    parts.push(
      `<text x="${(left + right) / 2}" y="${(top + bottom) / 2}" text-anchor="middle" fill="#888">no data</text>`,
    );
    return parts.join('');
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xMin = Math.min(0, ...xs);
  const xMax = Math.max(...xs, xMin + 1e-9);
  let [yMin, yMax] = yRange ?? [Math.min(...ys), Math.max(...ys)];
  if (yMax - yMin < 1e-9) {
    yMin -= 0.5;
    yMax += 0.5;
  } else if (yRange === undefined) {
    const margin = (yMax - yMin) * 0.05;
    yMin -= margin;
    yMax += margin;
  }
  const sx = (x: number): number => left + ((x - xMin) / (xMax - xMin)) * (right - left);
  const sy = (y: number): number => bottom - ((y - yMin) / (yMax - yMin)) * (bottom - top);
  for (const t of ticks(yMin, yMax)) {
    parts.push(`<line x1="${left}" x2="${right}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${t}</text>`);
  }
  for (const t of ticks(xMin, xMax)) {
    parts.push(`<text x="${sx(t)}" y="${bottom + 16}" text-anchor="middle" font-size="11">${t}</text>`);
  }
  parts.push(
    `<text x="${(left + right) / 2}" y="${bottom + 34}" text-anchor="middle" font-size="12">epoch</text>`,
  );
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const path = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    const dash = s.dashed === true ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    for (const [x, y] of s.points.length <= 30 ? s.points : []) {
      parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
    const ly = top + 14 + i * 16;
    parts.push(
      `<line x1="${right - 130}" x2="${right - 110}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${dash}/>`,
    );
    parts.push(`<text x="${right - 104}" y="${ly}" font-size="12">${escapeXml(s.label)}</text>`);
  });
  return parts.join('');
}

export function curvesSvg(history: TrainingHistory, title: string): string {
  const loss: Series[] = [
    { label: 'total', color: '#1f77b4', points: history.losses.map((p) => [p.epoch, p.total]) },
    { label: 'base (CE)', color: '#2ca02c', points: history.losses.map((p) => [p.epoch, p.base]) },
    {
      label: 'distillation',
      color: '#d62728',
      points: history.losses.filter((p) => p.distillation !== 0).map((p) => [p.epoch, p.distillation]),
    },
  ];
  const head = (
    label: string,
    color: string,
    pick: (e: TrainingHistory['evals'][number]) => number | undefined,
  ): Series => ({
    label,
    color,
    points: history.evals.flatMap((e) => {
      const v = pick(e);
      return v === undefined ? [] : [[e.epoch, v] as const];
    }),
  });
  const accuracy: Series[] = [
    head('cls top-1', '#1f77b4', (e) => e.cls?.top1),
    head('dist top-1', '#d62728', (e) => e.dist?.top1),
    head('avg top-1', '#9467bd', (e) => e.average?.top1),
    { ...head('teacher top-1', '#7f7f7f', (e) => e.teacherTop1), dashed: true },
  ];
  const half = WIDTH / 2;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT + 20}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    panel(0, half, 'training loss', loss) +
    panel(half, half, 'evaluation accuracy', accuracy, [0, 1]) +
    `<text x="${WIDTH / 2}" y="${HEIGHT + 12}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(title)}</text>` +
    `</svg>`
  );
}

export async function renderCurvesPng(history: TrainingHistory, title: string): Promise<Uint8Array> {
  return new Uint8Array(
    await sharp(Buffer.from(curvesSvg(history, title)))
      .png()
      .toBuffer(),
  );
}
