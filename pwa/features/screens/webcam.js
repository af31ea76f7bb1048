// A camera view: single photos, bursts while a button is held, and frames on demand for live
// prediction. The camera turns on only when asked and off when the screen is left.
import { h, plural } from './dom.js';

const FRAME = 320; // stored frames: centre square, at most this many pixels a side
const BURST_FPS = 5;

/**
 * @param {{onCapture?: (blobs: Blob[]) => void, capture?: boolean}} options
 *   onCapture gets a photo, or a burst's frames once the button is released.
 * @returns {{element: HTMLElement, frame: () => Promise<Blob|null>, stop: () => void, started: () => boolean}}
 */
export function createWebcam({ onCapture = null } = {}) {
  let stream = null;
  let burst = null; // {timer, frames: Blob[], pending: Set<Promise>, dropped: number} while recording
  const video = h('video', { playsinline: true, muted: true, 'aria-label': 'Camera preview' });
  video.muted = true;
  const status = h('p', { class: 'muted', role: 'status' }, 'The camera is off.');
  const startButton = h('button', { type: 'button', class: 'secondary', onclick: () => (stream ? stop() : start()) }, 'Turn camera on');
  const shot = h('button', { type: 'button', class: 'primary', disabled: true, onclick: async () => {
    const blob = await frame();
    if (blob) onCapture?.([blob]);
  } }, 'Take photo');
  const hold = h('button', { type: 'button', class: 'secondary', disabled: true, 'aria-describedby': 'burst-hint' }, 'Hold to record');

  // A frame identical to the one before it (a frozen or covered camera) is not kept twice.
  const keep = async (recording, blob) => {
    const last = recording.frames.at(-1);
    if (last && last.size === blob.size) {
      const [a, b] = (await Promise.all([last.arrayBuffer(), blob.arrayBuffer()])).map((x) => new Uint8Array(x));
      if (a.every((byte, i) => byte === b[i])) {
        recording.dropped++;
        return;
      }
    }
    recording.frames.push(blob);
  };

  const grab = (recording) => {
    const task = frame().then((blob) => blob && keep(recording, blob)).finally(() => {
      recording.pending.delete(task);
      if (burst === recording) {
        status.textContent = `Recording… ${plural(recording.frames.length, 'frame')}${recording.dropped ? ` (${recording.dropped} unchanged)` : ''}`;
      }
    });
    recording.pending.add(task);
  };

  const startBurst = (event) => {
    if (!stream || burst || hold.disabled) return;
    event.preventDefault();
    // Keep the pointer's events on the button while it is held, even if the page scrolls or re-lays out
    // under it: the burst ends when the button is released, not when the pointer seems to leave.
    if (event.pointerId !== undefined) hold.setPointerCapture(event.pointerId);
    hold.classList.add('recording');
    const recording = { frames: [], pending: new Set(), dropped: 0 };
    recording.timer = setInterval(() => grab(recording), 1000 / BURST_FPS);
    burst = recording;
    grab(recording);
  };

  const stopBurst = async () => {
    const recording = burst;
    if (!recording) return;
    burst = null;
    clearInterval(recording.timer);
    hold.classList.remove('recording');
    // Frames already being grabbed when the button came up belong to the burst (a quick press gets one).
    await Promise.all([...recording.pending]);
    const { frames, dropped } = recording;
    status.textContent = `Recorded ${plural(frames.length, 'frame')}.${dropped
      ? ` ${plural(dropped, 'frame')} identical to the one before ${dropped === 1 ? 'was' : 'were'} dropped: the picture did not change (is the camera covered or frozen?).`
      : ''}`;
    if (frames.length) onCapture?.(frames);
  };

  hold.addEventListener('pointerdown', startBurst);
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) hold.addEventListener(type, stopBurst);
  hold.addEventListener('keydown', (event) => { if ((event.key === ' ' || event.key === 'Enter') && !event.repeat) startBurst(event); });
  hold.addEventListener('keyup', (event) => { if (event.key === ' ' || event.key === 'Enter') stopBurst(); });
  hold.addEventListener('blur', stopBurst);
  hold.addEventListener('click', (event) => event.preventDefault());
  hold.addEventListener('contextmenu', (event) => event.preventDefault()); // a long touch is a hold, not a menu

  async function start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      status.textContent = 'This browser gives no camera access here (it needs https or localhost).';
      return;
    }
    try {
      status.textContent = 'Asking for the camera…';
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
      video.srcObject = stream;
      await video.play();
      startButton.textContent = 'Turn camera off';
      shot.disabled = hold.disabled = false;
      status.textContent = 'Camera on.';
      element.dataset.camera = 'on';
    } catch (error) {
      stream = null;
      status.textContent = error.name === 'NotAllowedError'
        ? 'Camera access was refused. Allow it in the browser\'s site settings and try again.'
        : `The camera could not start: ${error.message}`;
    }
  }

  function stop() {
    stopBurst();
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    startButton.textContent = 'Turn camera on';
    shot.disabled = hold.disabled = true;
    status.textContent = 'The camera is off.';
    element.dataset.camera = 'off';
  }

  /** The current frame as a JPEG: the centre square, scaled to at most FRAME px. */
  async function frame() {
    if (!stream || !video.videoWidth) return null;
    const side = Math.min(video.videoWidth, video.videoHeight);
    const size = Math.min(side, FRAME);
    const canvas = new OffscreenCanvas(size, size);
    canvas.getContext('2d').drawImage(video, (video.videoWidth - side) / 2, (video.videoHeight - side) / 2, side, side, 0, 0, size, size);
    return canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
  }

  const element = h('div', { class: 'webcam', dataset: { camera: 'off' } },
    h('div', { class: 'video-frame' }, video),
    h('div', { class: 'row wrap' }, startButton, onCapture && shot, onCapture && hold),
    onCapture && h('small', { class: 'hint', id: 'burst-hint' }, `Hold the button (or Space) to record ${BURST_FPS} frames a second.`),
    status);
  return { element, frame, stop, started: () => !!stream };
}
