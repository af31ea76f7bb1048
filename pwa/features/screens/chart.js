// The live training chart shared by on-device and server runs: loss (left axis) and train/validation
// accuracy (right axis, %) per epoch with uPlot, and the same numbers as a table.
import uPlot from '../../vendor/uplot/uPlot.esm.js';
import { h, percent } from './dom.js';

function chartColors() {
  const style = getComputedStyle(document.documentElement);
  return { loss: style.getPropertyValue('--chart-loss').trim(), train: style.getPropertyValue('--chart-train').trim(),
    validation: style.getPropertyValue('--chart-validation').trim(), axis: style.getPropertyValue('--muted').trim(),
    grid: style.getPropertyValue('--line').trim() };
}

/** A uPlot chart of loss (left axis) and accuracies (right axis, %) per epoch, plus a table of the same numbers. */
export function createChart(container) {
  const c = chartColors();
  const axis = { stroke: c.axis, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid } };
  const opts = {
    width: Math.max(280, container.clientWidth || 600), height: 240,
    scales: { x: { time: false }, loss: { auto: true, range: (u, min, max) => [0, Math.max(max, 0.1) * 1.1] }, acc: { range: [0, 100] } },
    axes: [
      { ...axis, label: 'Epoch', values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) },
      { ...axis, scale: 'loss', label: 'Loss' },
      { ...axis, scale: 'acc', side: 1, label: 'Accuracy %', grid: { show: false } },
    ],
    series: [
      { label: 'Epoch' },
      { label: 'Loss', scale: 'loss', stroke: c.loss, width: 2, points: { show: true } },
      { label: 'Train accuracy', scale: 'acc', stroke: c.train, width: 2, points: { show: true }, value: (u, v) => (v == null ? '–' : `${v.toFixed(1)}%`) },
      { label: 'Validation accuracy', scale: 'acc', stroke: c.validation, width: 2, dash: [6, 4], points: { show: true }, value: (u, v) => (v == null ? '–' : `${v.toFixed(1)}%`) },
    ],
    legend: { live: false },
  };
  const plot = new uPlot(opts, [[], [], [], []], container);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, container.clientWidth), height: 240 }));
  resize.observe(container);
  return {
    set(history) {
      plot.setData([history.map((e) => e.epoch), history.map((e) => e.loss), history.map((e) => e.trainAccuracy * 100),
        history.map((e) => (e.validationAccuracy === undefined ? null : e.validationAccuracy * 100))]);
      container.dataset.points = String(history.length);
    },
    destroy() { resize.disconnect(); plot.destroy(); },
  };
}

export function historyTable(history) {
  return h('table', { class: 'numbers' },
    h('caption', { class: 'visually-hidden' }, 'Loss and accuracy per epoch'),
    h('thead', {}, h('tr', {}, ['Epoch', 'Loss', 'Train accuracy', 'Validation accuracy'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, history.map((e) => h('tr', {}, h('td', {}, String(e.epoch)), h('td', {}, e.loss.toFixed(4)),
      h('td', {}, percent(e.trainAccuracy, 1)), h('td', {}, e.validationAccuracy === undefined ? '–' : percent(e.validationAccuracy, 1))))));
}
