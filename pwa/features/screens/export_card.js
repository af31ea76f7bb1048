// What the image and the text Export screens share: downloading a file made on click, and the Model
// card's states (no model yet, trained with other artifacts, data changed since training).
import { append, busy, download, h, projectUrl, showError } from './dom.js';
import { artifactsChangedNotice } from './train.js';

/** On a click of `button`: make() → downloaded as `name`, the button showing `text` meanwhile. */
export const saveOnClick = (button, text, make, name) => button.addEventListener('click', () => busy(button, text, async () => {
  try {
    download(await make(), name);
  } catch (error) {
    showError(error, `Could not make ${name}: `);
  }
}));

/**
 * The Model card: `section`, holding what to do when there is no usable model (ready false), or — ready —
 * a warning when the data changed since the model was trained; the screen adds its downloads then.
 */
export function modelCard(project, status, manifest) {
  const section = h('section', { class: 'card', 'aria-labelledby': 'model-export-title' },
    h('h2', { id: 'model-export-title' }, 'Model'));
  if (!status.model) {
    append(section, h('p', {}, 'Train a model first; then download it here.'),
      h('a', { class: 'button primary', href: projectUrl(project.id, 'train') }, 'Go to Train'));
    return { section, ready: false };
  }
  if (status.artifactsChanged) {
    append(section, artifactsChangedNotice(project, status, manifest));
    return { section, ready: false };
  }
  if (status.stale) {
    append(section, h('p', { class: 'warning' }, 'The data changed since this model was trained; ',
      h('a', { href: projectUrl(project.id, 'train') }, 'train again'), ' to include it in the download.'));
  }
  return { section, ready: true };
}
