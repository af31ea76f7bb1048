// A class's images as a virtualised grid: the list is as tall as all its rows, but only the rows near
// the viewport exist as tiles (a few hundred whatever the class holds), and a tile's thumbnail object
// URL is revoked when it leaves, so a 5,000-image project keeps a bounded DOM and bounded decoded images.
import { getThumbnails } from '../dataset/projects.js';
import { h } from './dom.js';

/** Rows rendered beyond each edge of the viewport, as a share of its height. */
const MARGIN = 0.5;
/** A class this small is rendered whole wherever it is (as many tiles as the screen showed before grids were virtual). */
const WHOLE = 60;

/**
 * A virtualised grid: `createGrids()` → {grid(items, options) → <ul>, update(), dispose()}. Every grid
 * of one screen shares the width it last measured (the classes' grids are equally wide), so a grid
 * made during a refresh has its full height before it is first laid out and the page keeps its scroll.
 * Tiles: options.tile(item, index) → the <li>'s content; options.label names the list.
 */
export function createGrids() {
  const grids = new Set();
  const geometry = { columns: 0, row: 0 };
  let frame = 0;
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; update(); });
  };
  const update = () => grids.forEach((g) => g.update());
  const resize = new ResizeObserver(schedule);
  addEventListener('scroll', schedule, { passive: true });
  addEventListener('resize', schedule);

  function grid(items, { label, tile }) {
    const list = h('ul', { class: 'thumbs virtual', 'aria-label': label });
    const shown = new Map(); // index → {li, url}
    let first = 0;
    let end = 0;
    const sizeList = () => {
      const rows = geometry.columns ? Math.ceil(items.length / geometry.columns) : 0;
      if (rows) list.style.height = `${rows * geometry.row}px`;
      list.style.paddingTop = `${Math.floor(first / (geometry.columns || 1)) * geometry.row}px`;
    };
    const measure = () => {
      // the grid's own tracks (CSS decides the tile size, media queries included)
      const style = getComputedStyle(list);
      const tracks = style.gridTemplateColumns.split(' ').filter((t) => t.endsWith('px'));
      if (!tracks.length || !list.clientWidth) return false;
      geometry.columns = tracks.length;
      geometry.row = parseFloat(tracks[0]) + (parseFloat(style.rowGap) || 0);
      return true;
    };
    const remove = (index) => {
      const { li, url } = shown.get(index);
      li.remove();
      if (url) URL.revokeObjectURL(url);
      shown.delete(index);
    };
    const make = (index) => {
      const li = h('li', { 'aria-posinset': index + 1, 'aria-setsize': items.length }, tile(items[index], index));
      shown.set(index, { li, url: null });
      return li;
    };
    const fillThumbnails = async (indices) => {
      let blobs;
      try {
        blobs = await getThumbnails(indices.map((i) => items[i].contentId));
      } catch {
        return;  // a class deleted meanwhile: its grid is gone too
      }
      indices.forEach((index, k) => {
        const entry = shown.get(index);
        if (!entry || !grids.has(controller)) return;  // scrolled away (or re-rendered) before the read came back
        const img = entry.li.querySelector('img');
        if (!blobs[k]) { img.alt = `${img.alt} (image missing)`.trim(); return; }
        entry.url = URL.createObjectURL(blobs[k]);
        img.src = entry.url;
      });
    };
    const controller = {
      update() {
        if (!list.isConnected || !measure()) return;
        const { columns, row } = geometry;
        const top = list.getBoundingClientRect().top;
        const margin = innerHeight * MARGIN;
        const rows = Math.ceil(items.length / columns);
        const firstRow = Math.min(rows, Math.max(0, Math.floor((-top - margin) / row)));
        const endRow = Math.min(rows, Math.max(firstRow, Math.ceil((innerHeight - top + margin) / row)));
        const [from, to] = items.length <= WHOLE ? [0, items.length] : [firstRow * columns, Math.min(items.length, endRow * columns)];
        if (from === first && to === end) { sizeList(); return; }
        for (const index of [...shown.keys()]) if (index < from || index >= to) remove(index);
        // keep the tiles still in range where they are (focus stays), add the new ones at the edges
        const [keptFrom, keptTo] = [Math.max(from, first), Math.min(to, end)];
        const kept = keptFrom < keptTo;
        const head = [];
        const tail = [];
        for (let i = from; i < to; i++) {
          if (kept && i >= keptFrom && i < keptTo) continue;
          (kept && i < keptFrom ? head : tail).push(i);
        }
        list.prepend(...head.map(make));
        list.append(...tail.map(make));
        first = from;
        end = to;
        sizeList();
        if (head.length || tail.length) fillThumbnails([...head, ...tail]);
      },
      dispose() {
        for (const index of [...shown.keys()]) remove(index);
        resize.unobserve(list);
        grids.delete(controller);
      },
    };
    sizeList();
    grids.add(controller);
    resize.observe(list);
    return list;
  }

  return {
    grid,
    update,
    /** Drop every grid (their tiles' object URLs revoked); the screen keeps listening for new ones. */
    clear: () => [...grids].forEach((g) => g.dispose()),
    /** Stop listening too (the screen is left). */
    dispose() {
      [...grids].forEach((g) => g.dispose());
      resize.disconnect();
      removeEventListener('scroll', schedule);
      removeEventListener('resize', schedule);
      cancelAnimationFrame(frame);
    },
  };
}
