// A bar chart drawn as inline SVG: no library, nothing the CSP (default-src 'self')
// would block (SVG attributes, no style attributes), and the numbers also as a table.
import { formatCount, formatDay, h, table } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

/**
 * @param {string} tag @param {Record<string, string | number>} attributes @param {...Node} children
 * @returns {SVGElement}
 */
function s(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

/**
 * Bars per day with an optional limit line.
 * @param {{title: string, unit: string, points: Array<{day: string, value: number}>, limit?: number | null}} options
 * @returns {HTMLElement}
 */
export function barChart(options) {
  const width = 720;
  const height = 180;
  const left = 44;
  const bottom = 24;
  const top = 22;
  const values = options.points.map((point) => point.value);
  const highest = Math.max(1, ...values, options.limit ?? 0);
  const plotHeight = height - bottom - top;
  const slot = (width - left) / Math.max(1, options.points.length);
  const total = values.reduce((sum, value) => sum + value, 0);
  const id = `chart-${Math.random().toString(36).slice(2, 8)}`;
  const summary = `${options.title}: ${formatCount(total)} ${options.unit} over ${options.points.length} days, at most ${formatCount(Math.max(0, ...values))} in a day${
    options.limit ? `, against a limit of ${formatCount(options.limit)} a day` : ''
  }.`;

  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-title`, focusable: 'false' });
  svg.append(s('title', { id: `${id}-title` }, document.createTextNode(summary)));
  // Axis and scale: 0 and the highest value.
  svg.append(s('line', { x1: left, y1: top + plotHeight, x2: width, y2: top + plotHeight, class: 'axis' }));
  svg.append(s('text', { x: left - 6, y: top + plotHeight, class: 'tick', 'text-anchor': 'end' }, document.createTextNode('0')));
  svg.append(s('text', { x: left - 6, y: top + 10, class: 'tick', 'text-anchor': 'end' }, document.createTextNode(formatCount(highest))));
  options.points.forEach((point, index) => {
    const barHeight = Math.round((point.value / highest) * plotHeight);
    const x = left + index * slot + slot * 0.15;
    const bar = s('rect', { x: x.toFixed(1), y: top + plotHeight - barHeight, width: (slot * 0.7).toFixed(1), height: barHeight, class: 'bar' });
    bar.append(s('title', {}, document.createTextNode(`${formatDay(point.day)}: ${formatCount(point.value)} ${options.unit}`)));
    svg.append(bar);
    const last = options.points.length - 1;
    // A date under every seventh bar and under the last one, unless that would crowd the previous.
    if (index % 7 === 0 || (index === last && last % 7 >= 4)) {
      svg.append(s('text', { x: (x + slot * 0.35).toFixed(1), y: height - 6, class: 'tick', 'text-anchor': 'middle' }, document.createTextNode(formatDay(point.day))));
    }
  });
  if (options.limit) {
    const y = top + plotHeight - Math.round((options.limit / highest) * plotHeight);
    svg.append(s('line', { x1: left, y1: y, x2: width, y2: y, class: 'limit' }));
    svg.append(s('text', { x: width - 4, y: y - 4, class: 'tick limit-label', 'text-anchor': 'end' }, document.createTextNode(`limit ${formatCount(options.limit)}`)));
  }
  return h(
    'figure',
    { class: 'chart-figure' },
    svg,
    h('figcaption', null, summary),
    h(
      'details',
      null,
      h('summary', null, 'Show the numbers'),
      table(`${options.title} per day`, ['Day', options.unit], options.points.map((point) => [point.day, formatCount(point.value)])),
    ),
  );
}
