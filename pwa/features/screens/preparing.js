// "Preparing N images": a polite status line on a Data screen while background embedding computes
// what Train will need (features/embed/background.js), "ready" once it is done.
import { backgroundEmbedding } from '../../tejas.js';
import { h, plural } from './dom.js';

/** The line's text for a project's background status ('' when there is nothing to say). */
export function preparingText({ total, pending, failed, error, scanned }, noun = 'image') {
  if (error) return `${noun[0].toUpperCase()}${noun.slice(1)}s will be prepared when you train (${error}).`;
  if (!scanned || !total) return '';
  if (pending > 0) return `Preparing ${plural(pending, noun)} for training…`;
  const unreadable = failed ? ` ${plural(failed, noun)} could not be read; training will name ${failed === 1 ? 'it' : 'them'}.` : '';
  return `All ${plural(total - failed, noun)} ready for training.${unreadable}`;
}

/**
 * A status element for project `projectId` (role status, aria-live polite), updated as background
 * embedding goes; data-state is 'preparing' | 'ready' | 'error' | 'idle', data-total the samples
 * counted. Watches the project (its new images are embedded as they arrive). It stops listening once
 * it has been taken out of the page.
 */
export function preparingStatus(projectId, { noun = 'image' } = {}) {
  const element = h('p', { class: 'muted preparing', id: 'preparing', role: 'status', 'aria-live': 'polite' });
  let unsubscribe = () => {};
  let shown = false;
  const update = (status) => {
    if (element.isConnected) shown = true;
    else if (shown) {
      unsubscribe();
      return;
    }
    element.textContent = preparingText(status, noun);
    element.dataset.state = status.error ? 'error' : status.pending > 0 ? 'preparing' : status.ready && status.total ? 'ready' : 'idle';
    element.dataset.total = String(status.total);
    element.dataset.pending = String(status.pending);
  };
  unsubscribe = backgroundEmbedding.subscribe(projectId, update);
  backgroundEmbedding.watch(projectId);
  return element;
}
