// Classes and their images: add/rename/delete classes; add images by file picker, folder picker,
// drag-and-drop of files and folders, ImageFolder zip, paste, webcam (photo or burst) and drawing;
// select images to move or delete (with undo); warnings when a class is too small to train.
import * as tejas from '../../tejas.js';
import { createDrawing } from './draw.js';
import { createWebcam } from './webcam.js';
import { preparingStatus } from './preparing.js';
import { append, confirmDialog, field, filePicker, h, panelToggle, plural, projectUrl, promptDialog, showError, toast } from './dom.js';
import { createGrids } from './sample_grid.js';

export const MIN_TO_TRAIN = 2;
export const RECOMMENDED = 10;
const CHUNK = 25; // images per save, so progress shows and a failure loses little

const targets = new Map(); // projectId → the class id new samples go to (captures, typed texts)

export async function render(view, { project }) {
  const state = { project, classes: [], samples: [], selected: new Set(), grids: createGrids() };
  const classesBox = h('div', { class: 'classes' });
  const warnings = h('div', { class: 'warnings', 'aria-live': 'polite' });
  const summary = h('p', { class: 'muted' });
  const target = targetSelect(project.id, { id: 'target-class', 'aria-describedby': 'target-hint' });
  const selectionBar = h('div', { class: 'selection-bar', hidden: true, role: 'region', 'aria-label': 'Selected images' });

  const refresh = async () => {
    [state.classes, state.samples] = await Promise.all([tejas.listClasses(project.id), tejas.listSamples(project.id)]);
    const present = new Set(state.samples.map((s) => s.contentId));
    for (const id of state.selected) if (!present.has(id)) state.selected.delete(id);
    summary.textContent = `${plural(state.classes.length, 'class', 'classes')} · ${plural(state.samples.length, 'image')}`;
    fillTarget(target, state.classes, project.id);
    fillWarnings(warnings, state);
    fillClasses(classesBox, state, actions);
    fillSelection(selectionBar, state, actions, 'image');
  };

  /** Add files to a class (by id), in chunks, then report what was added and skipped. */
  const addFiles = async (classId, files, source = 'file') => {
    let added = 0;
    const skipped = [];
    const note = files.length > CHUNK ? toast(`Adding ${files.length} images…`, { seconds: 600 }) : null;
    try {
      for (let i = 0; i < files.length; i += CHUNK) {
        const result = await tejas.addSamples(project.id, classId, files.slice(i, i + CHUNK), { source });
        added += result.added.length;
        skipped.push(...result.skipped);
        if (note) note.firstChild.textContent = `Adding images… ${Math.min(i + CHUNK, files.length)} of ${files.length}`;
      }
    } catch (error) {
      showError(error);
    } finally {
      note?.remove();
      reportAdded(added, skipped, source);
      await refresh();
    }
  };

  /** Files grouped by class name (folder drops and folder picks) → classes made as needed. */
  const addGrouped = async (groups) => {
    for (const [name, files] of groups) {
      let cls = state.classes.find((c) => c.name.toLowerCase() === name.toLowerCase());
      if (!cls) {
        try {
          cls = await tejas.addClass(project.id, name);
          state.classes.push(cls);
        } catch (error) {
          showError(error, `Folder "${name}" skipped: `);
          continue;
        }
      }
      await addFiles(cls.id, files);
    }
  };

  const addZip = async (file) => {
    const note = toast(`Reading ${file.name}…`, { seconds: 600 });
    try {
      const result = await tejas.addDatasetZip(project.id, file, { onProgress: ({ done, total }) => {
        note.firstChild.textContent = `Adding images from ${file.name}… ${done.toLocaleString('en')} of ${total.toLocaleString('en')}`;
      } });
      reportAdded(result.added, result.skipped);
    } catch (error) {
      showError(error, `${file.name}: `);
    } finally {
      note.remove();
      await refresh();
    }
  };

  const targetClass = () => {
    const id = target.value;
    if (!id) showError('Add a class first: images go into a class.');
    return id || null;
  };

  const actions = {
    refresh, addFiles, addGrouped, ...classActions(refresh, 'image'),
    deleteSelected: async () => {
      const ids = [...state.selected];
      const deleted = await tejas.deleteSamples(project.id, ids);
      state.selected.clear();
      toast(`Deleted ${plural(deleted.length, 'image')}.`, { action: { label: 'Undo', run: async () => {
        await tejas.restoreSamples(project.id, deleted);
        await refresh();
      } } });
      await refresh();
    },
    moveSelected: async (classId) => {
      const ids = [...state.selected];
      await tejas.moveSamples(project.id, ids, classId);
      state.selected.clear();
      toast(`Moved ${plural(ids.length, 'image')} to "${state.classes.find((c) => c.id === classId)?.name}".`);
      await refresh();
    },
  };

  const addClassForm = classForm(project.id, refresh);

  // Capture tools, all adding to the target class
  const filesInput = filePicker('Image files', { accept: 'image/*', multiple: true, id: 'add-files' }, async (files) => {
    const id = targetClass();
    if (id) await addFiles(id, files);
  });
  const folderInput = filePicker('A folder of images', { multiple: true, directory: true, id: 'add-folder' }, (files) =>
    addGrouped(groupByFolder(files.map((file) => ({ file, path: file.webkitRelativePath.split('/').slice(0, -1) })))));
  const zipInput = filePicker('A dataset zip', { accept: '.zip,application/zip', id: 'add-zip' }, ([file]) => addZip(file));
  const webcam = createWebcam({ onCapture: async (blobs) => {
    const id = targetClass();
    if (id) await addFiles(id, blobs.map((b, i) => new File([b], `webcam-${stamp()}-${i + 1}.jpg`, { type: 'image/jpeg' })), 'webcam');
  } });
  const drawing = createDrawing({ action: 'Add drawing to class', onDrawing: async (blob) => {
    const id = targetClass();
    if (!id) return;
    await addFiles(id, [new File([blob], `drawing-${stamp()}.png`, { type: 'image/png' })], 'drawing');
    drawing.clear();
  } });
  const panels = { camera: h('div', { class: 'panel', id: 'camera-panel', hidden: true }, webcam.element),
    draw: h('div', { class: 'panel', id: 'draw-panel', hidden: true }, drawing.element) };
  const capture = h('section', { class: 'card capture', 'aria-labelledby': 'capture-title' },
    h('h2', { id: 'capture-title' }, 'Add images'),
    h('div', { class: 'row wrap' }, h('label', { for: 'target-class' }, 'Add to class'), target),
    h('div', { class: 'row wrap tools' },
      h('button', { type: 'button', class: 'secondary', onclick: () => targetClass() && filesInput.click() }, 'Files…'),
      h('button', { type: 'button', class: 'secondary', onclick: () => folderInput.click() }, 'Folder…'),
      h('button', { type: 'button', class: 'secondary', onclick: () => zipInput.click() }, 'Dataset zip…'),
      panelToggle('Camera', panels.camera, { onClose: webcam.stop }), panelToggle('Draw', panels.draw), filesInput, folderInput, zipInput),
    h('small', { class: 'hint', id: 'target-hint' },
      'Or drop images, folders (one per class) or a zip anywhere here, or paste an image (Ctrl+V). '
      + 'Folders and zips go into classes named after their folders.'),
    panels.camera, panels.draw);

  append(view, 
    h('div', { class: 'title-row' }, h('h1', {}, 'Data'), summary),
    h('section', { class: 'card' }, addClassForm),
    capture, warnings, classesBox, selectionBar,
    h('p', { class: 'next' }, h('a', { href: projectUrl(project.id, 'train'), class: 'button primary' }, 'Next: train →')));

  // Drop anywhere: onto a class → that class; elsewhere folders become classes, files go to the target class.
  const onDragOver = (event) => {
    if (![...event.dataTransfer.types].includes('Files')) return;
    event.preventDefault();
    view.classList.add('dragging');
    clearDropTargets();
    event.target.closest?.('.class-card')?.classList.add('drop-target');
  };
  const onDragLeave = (event) => {
    if (!event.relatedTarget || !view.contains(event.relatedTarget)) {
      view.classList.remove('dragging');
      clearDropTargets();
    }
  };
  const onDrop = async (event) => {
    event.preventDefault();
    view.classList.remove('dragging');
    clearDropTargets();
    const classId = event.target.closest?.('.class-card')?.dataset.classId;
    const entries = [...event.dataTransfer.items].filter((i) => i.kind === 'file').map((i) => i.webkitGetAsEntry?.());
    const plainFiles = [...event.dataTransfer.files];
    try {
      const items = entries.every(Boolean) && entries.length ? await readEntries(entries) : plainFiles.map((file) => ({ file, path: [] }));
      const zips = items.filter((i) => /\.zip$/i.test(i.file.name));
      const rest = items.filter((i) => !/\.zip$/i.test(i.file.name));
      for (const zip of zips) await addZip(zip.file);
      if (!rest.length) return;
      if (classId) await addFiles(classId, rest.map((i) => i.file));
      else {
        const loose = rest.filter((i) => !i.path.length).map((i) => i.file);
        const foldered = rest.filter((i) => i.path.length);
        if (foldered.length) await addGrouped(groupByFolder(foldered));
        if (loose.length) {
          const id = targetClass();
          if (id) await addFiles(id, loose);
        }
      }
    } catch (error) {
      showError(error, 'Could not read what was dropped: ');
    }
  };
  const onPaste = async (event) => {
    const files = [...(event.clipboardData?.files ?? [])].filter((f) => f.type.startsWith('image/'));
    if (!files.length) return;
    event.preventDefault();
    const id = targetClass();
    if (id) await addFiles(id, files.map((f, i) => new File([f], f.name && f.name !== 'image.png' ? f.name : `pasted-${stamp()}-${i + 1}.png`, { type: f.type })), 'paste');
  };
  warnings.before(preparingStatus(project.id));
  view.addEventListener('dragover', onDragOver);
  view.addEventListener('dragleave', onDragLeave);
  view.addEventListener('drop', onDrop);
  document.addEventListener('paste', onPaste);
  await refresh();
  return () => {
    state.grids.dispose();
    webcam.stop();
    document.removeEventListener('paste', onPaste);
  };
}

/** A class card's rename and delete (delete asks first: its `noun`s go with it), then `refresh`. */
export function classActions(refresh, noun) {
  return {
    rename: async (cls) => {
      const name = await promptDialog('Rename class', 'Class name', cls.name);
      if (!name || name === cls.name) return;
      try { await tejas.renameClass(cls.id, name); } catch (error) { showError(error); }
      await refresh();
    },
    remove: async (cls, count) => {
      const ok = await confirmDialog(`Delete class "${cls.name}"?`, `Its ${plural(count, noun)} will be deleted too. This cannot be undone.`);
      if (!ok) return;
      await tejas.deleteClass(cls.id);
      toast(`Deleted class "${cls.name}".`);
      await refresh();
    },
  };
}

/** The "New class" form (class-name rules shown under the field); a class made is where new samples go, then `onAdded(cls)` runs. */
export function classForm(projectId, onAdded, { placeholder = 'e.g. cat' } = {}) {
  const { field: nameField, input: className } = field('New class', h('input', {
    type: 'text', required: true, maxlength: 100, placeholder, autocomplete: 'off', 'aria-describedby': 'class-error',
  }));
  const classError = h('p', { class: 'error', id: 'class-error', role: 'alert' });
  const form = h('form', { class: 'row wrap add-class', onsubmit: async (event) => {
    event.preventDefault();
    classError.textContent = '';
    let cls;
    try {
      cls = await tejas.addClass(projectId, className.value.trim());
    } catch (error) {
      classError.textContent = error.message;
      className.setAttribute('aria-invalid', 'true');
      return;
    }
    className.removeAttribute('aria-invalid');
    className.value = '';
    targets.set(projectId, cls.id);
    await onAdded(cls);
  } }, nameField, h('button', { class: 'primary' }, 'Add class'));
  return h('div', {}, form, classError);
}

const clearDropTargets = () => document.querySelectorAll('.class-card.drop-target').forEach((el) => el.classList.remove('drop-target'));

/** Now, for file names of captured images (no characters file systems refuse). */
const stamp = () => new Date().toISOString().replace(/[:.]/g, '-');

function reportAdded(added, skipped, source = 'file') {
  if (!added && !skipped.length) return;
  if (!added && skipped.every((s) => s.reason.startsWith('already in this project'))) {
    const why = source === 'webcam' ? ': the camera picture did not change (is it covered or frozen?)' : '';
    toast(skipped.length === 1 ? `Nothing added: ${skipped[0].name} is ${skipped[0].reason}.`
      : `Nothing added: all ${skipped.length} images are already in this project${why}.`, { kind: 'error', seconds: 12 });
    return;
  }
  const parts = [`Added ${plural(added, 'image')}.`];
  if (skipped.length) {
    const shown = skipped.slice(0, 3).map((s) => `${s.name}: ${s.reason}`).join('; ');
    parts.push(`Skipped ${skipped.length}: ${shown}${skipped.length > 3 ? '; …' : ''}`);
  }
  toast(parts.join(' '), { kind: skipped.length && !added ? 'error' : 'info', seconds: skipped.length ? 12 : 5 });
}

/**
 * Dropped or picked files with their folder path → Map(class name → files). A folder's direct images
 * are a class named after it; a folder of folders is an ImageFolder root (each subfolder a class).
 */
export function groupByFolder(items) {
  const groups = new Map();
  for (const { file, path } of items) {
    const name = path.length >= 2 ? path[1] : path[0];
    if (!name) continue;
    groups.set(name, [...(groups.get(name) ?? []), file]);
  }
  return groups;
}

/** FileSystemEntry objects (from a drop) → [{file, path: folder names}] for every file beneath them. */
async function readEntries(entries) {
  const out = [];
  const walk = async (entry, path) => {
    if (entry.isFile) {
      out.push({ file: await new Promise((resolve, reject) => entry.file(resolve, reject)), path });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, [...path, entry.name]);
      }
    }
  };
  for (const entry of entries) await walk(entry, []);
  return out.filter((i) => !i.file.name.startsWith('.'));
}

/** The "Add to class" select (`props`: its id…); the class picked stays the project's while the app runs. */
export function targetSelect(projectId, props) {
  const select = h('select', props);
  select.addEventListener('change', () => targets.set(projectId, select.value));
  return select;
}

export function fillTarget(select, classes, projectId) {
  const wanted = targets.get(projectId);
  select.replaceChildren(...(classes.length
    ? classes.map((c) => h('option', { value: c.id, selected: c.id === wanted }, c.name))
    : [h('option', { value: '' }, 'No classes yet')]));
  select.disabled = !classes.length;
}

export function fillWarnings(box, { classes, samples }, noun = 'image') {
  const counts = new Map(classes.map((c) => [c.id, 0]));
  samples.forEach((s) => counts.set(s.classId, (counts.get(s.classId) ?? 0) + 1));
  const notes = [];
  if (classes.length < 2) notes.push(`Training needs at least 2 classes; this project has ${classes.length}.`);
  const small = classes.filter((c) => counts.get(c.id) < MIN_TO_TRAIN);
  if (small.length) notes.push(`${small.map((c) => `"${c.name}"`).join(', ')} ${small.length === 1 ? 'has' : 'have'} fewer than ${MIN_TO_TRAIN} ${noun}s: add more to train.`);
  const few = classes.filter((c) => counts.get(c.id) >= MIN_TO_TRAIN && counts.get(c.id) < RECOMMENDED);
  box.replaceChildren(
    ...notes.map((n) => h('p', { class: 'warning', role: 'status' }, h('strong', {}, 'Not ready to train: '), n)),
    ...(few.length ? [h('p', { class: 'tip' }, `Tip: ${few.map((c) => `"${c.name}"`).join(', ')} would do better with ${RECOMMENDED} or more ${noun}s.`)] : []));
}

function fillClasses(box, state, actions) {
  state.grids.clear();
  if (!state.classes.length) {
    box.replaceChildren(h('p', { class: 'empty' }, 'Start by adding a class for each kind of thing to recognise, e.g. “cat” and “dog”.'));
    return;
  }
  const byClass = new Map(state.classes.map((c) => [c.id, []]));
  for (const s of state.samples) byClass.get(s.classId)?.push(s);
  const onCheck = (event) => {
    const { contentId } = event.target.dataset;
    if (event.target.checked) state.selected.add(contentId); else state.selected.delete(contentId);
    fillSelection(document.querySelector('.selection-bar'), state, actions, 'image');
  };
  // each tile: a labelled checkbox over its thumbnail (filled in by the grid when it is shown)
  const tile = (s) => h('label', { class: 'thumb', title: s.name },
    h('input', { type: 'checkbox', checked: state.selected.has(s.contentId), 'aria-label': `Select ${s.name}`, dataset: { contentId: s.contentId }, onchange: onCheck }),
    h('img', { alt: '', width: 96, height: 96, decoding: 'async' }));
  box.replaceChildren(...state.classes.map((cls) => {
    const members = byClass.get(cls.id).sort((a, b) => (a.added < b.added ? -1 : a.added > b.added ? 1 : 0));
    const input = filePicker(`Images for ${cls.name}`, { accept: 'image/*', multiple: true }, (files) => actions.addFiles(cls.id, files));
    const add = h('button', { type: 'button', class: 'secondary small', onclick: () => input.click(), 'aria-label': `Add images to ${cls.name}` }, 'Add images');
    return classCard(cls, members.length, 'image', actions, [add, input],
      members.length
        ? state.grids.grid(members, { label: `Images of ${cls.name}`, tile })
        : h('p', { class: 'muted drop-hint' }, 'Drop images here, or use “Add images”.'));
  }));
  state.grids.update();
}

/** A class's card: its name, how many `noun`s it has (marked when too few to train), `tools`, Rename and Delete; then `body`. */
export function classCard(cls, count, noun, actions, tools, ...body) {
  const headingId = `class-${cls.id}`;
  const warn = count < MIN_TO_TRAIN;
  return h('section', { class: 'class-card card', dataset: { classId: cls.id, className: cls.name }, 'aria-labelledby': headingId },
    h('header', { class: 'row wrap' },
      h('h2', { id: headingId }, cls.name),
      h('span', { class: `count${warn ? ' warn' : ''}`, 'aria-label': `${count} ${noun}s${warn ? ', too few to train' : ''}` }, String(count)),
      h('span', { class: 'spacer' }),
      tools,
      h('button', { type: 'button', class: 'secondary small', onclick: () => actions.rename(cls), 'aria-label': `Rename ${cls.name}` }, 'Rename'),
      h('button', { type: 'button', class: 'danger-outline small', onclick: () => actions.remove(cls, count), 'aria-label': `Delete class ${cls.name}` }, 'Delete')),
    body);
}

/** The bar over selected samples (`noun`s): how many, move them to a class, delete them, clear the selection. */
export function fillSelection(bar, state, actions, noun) {
  const n = state.selected.size;
  bar.hidden = n === 0;
  if (!n) { bar.replaceChildren(); return; }
  const move = h('select', { 'aria-label': `Move selected ${noun}s to class`, id: 'move-class' },
    state.classes.map((c) => h('option', { value: c.id }, c.name)));
  bar.replaceChildren(
    h('strong', {}, `${plural(n, noun)} selected`),
    h('span', { class: 'row' }, move, h('button', { type: 'button', class: 'secondary small', onclick: () => actions.moveSelected(move.value) }, 'Move')),
    h('button', { type: 'button', class: 'danger small', onclick: actions.deleteSelected }, 'Delete'),
    h('button', { type: 'button', class: 'link', onclick: () => { state.selected.clear(); actions.refresh(); } }, 'Clear selection'));
}
